"""Which failures may pass on their own (and are worth another attempt).

Kept apart from `defs.retries` (Dagster's retry policy) so that what only renders or reads the
archive, and must know whether a failure is temporary, does not import Dagster.
"""

from __future__ import annotations

import smtplib
import socket

from pos_exports.source.database import PosSourceError

# object_store (the Rust S3 client under deltalake) reports storage it could not reach as an OSError whose
# text names the cause, after its own retries: the network's fault, not the data's
UNREACHABLE = (
    "error sending request",
    "tcp connect error",
    "connection refused",
    "connection reset",
    "operation timed out",
    "dns error",
    "service unavailable",
    "slow down",
)


def is_transient(exc: BaseException) -> bool:
    """A failure that may well pass on its own: a lost connection, a timeout, S3 throttling, SMTP 4xx."""
    if isinstance(exc, ConnectionError | TimeoutError | socket.timeout | smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, PosSourceError):
        return "cannot connect" in str(exc)
    from botocore.exceptions import ClientError  # on use: a render that fails on nothing never needs botocore
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, BotoConnectionError):
        return True
    if isinstance(exc, OSError) and any(m in str(exc).lower() for m in UNREACHABLE):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or exc.response.get("Error", {}).get("Code") in ("SlowDown", "Throttling")
    return False
