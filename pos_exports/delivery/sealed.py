"""Secrets kept in the state database (a subscription's file password, a business's webhook secret), encrypted at
rest with `POS_EXPORTS_SECRET_KEY`: Fernet (AES-128-CBC with HMAC-SHA256, `cryptography`), so a copy of the
database alone reveals none of them and a tampered value is refused rather than used.

Several keys, comma-separated, rotate: the first seals, every one of them unseals (`reseal` moves a value to the
first). A key is any random text of at least 32 characters (`openssl rand -hex 32`); it is stretched to Fernet's
256-bit key with SHA-256, so operators need not produce Fernet's base64 form.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from pos_exports import config

PREFIX = "sealed:v1:"  # marks a sealed value in the database, so plain text is never taken for one


class SealError(ValueError):
    """No key configured, or a value that no configured key opens (tampered, or sealed with a removed key)."""


def _box() -> MultiFernet:
    secret = config.settings().secret_key
    if secret is None:
        raise SealError("POS_EXPORTS_SECRET_KEY is not set: it encrypts stored secrets (openssl rand -hex 32)")
    keys = [k.strip() for k in secret.get_secret_value().split(",") if k.strip()]
    if any(len(k) < 32 for k in keys):
        raise SealError("POS_EXPORTS_SECRET_KEY: each comma-separated key must have at least 32 characters")
    return MultiFernet([Fernet(base64.urlsafe_b64encode(hashlib.sha256(k.encode()).digest())) for k in keys])


def seal(plain: str) -> str:
    """`plain` encrypted with the first key, as text to store."""
    return PREFIX + _box().encrypt(plain.encode()).decode("ascii")


def unseal(sealed: str) -> str:
    """The text `seal` was given (SealError: not sealed, tampered, or no configured key opens it)."""
    if not sealed.startswith(PREFIX):
        raise SealError("not a sealed value")
    try:
        return _box().decrypt(sealed[len(PREFIX) :].encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError):
        raise SealError(
            "a stored secret does not open with POS_EXPORTS_SECRET_KEY (tampered, or its key was removed)"
        ) from None


def reseal(sealed: str) -> str:
    """The same secret sealed with the first key (key rotation)."""
    return PREFIX + _box().rotate(sealed[len(PREFIX) :].encode("ascii")).decode("ascii")
