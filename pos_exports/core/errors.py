"""What kind of failure an error is: the one typed answer to "is it worth another attempt?".

Stored with each failed delivery (`deliveries.error_kind`) and read by every decision (the retry sensor, the
alerts, the statistics); the error text stays for people and is never parsed for it.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    TRANSIENT = "transient"  # may pass on its own (a lost connection, SMTP 4xx): retried automatically
    PERMANENT = "permanent"  # the same attempt fails the same way: retried only when someone asks

    @classmethod
    def of(cls, transient: bool) -> ErrorKind:
        return cls.TRANSIENT if transient else cls.PERMANENT
