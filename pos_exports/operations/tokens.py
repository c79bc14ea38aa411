"""Tokens of the HTTP API: created once (the secret shown then, never again), stored as the SHA-256 of the
secret, scoped to one business (or to the data team: any business), optionally read-only, revocable."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from pos_exports.state import api_tokens

PREFIX = "pxt_"  # recognisable in a leaked-secret scan


@dataclass(frozen=True)
class Token:
    id: int
    business_id: int | None  # None: data team (any business)
    read_only: bool
    label: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def scope(self) -> str:
        return "data team" if self.business_id is None else f"business {self.business_id}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _token(row: sa.RowMapping) -> Token:
    return Token(
        row["id"], row["business_id"], bool(row["read_only"]), row["label"], row["created_at"], row["revoked_at"]
    )


def create(
    eng: sa.Engine, business_id: int | None, *, now: dt.datetime, read_only: bool = False, label: str | None = None
) -> tuple[Token, str]:
    """A new token (created at `now`) and its secret (256 random bits): the caller shows the secret once; only its
    digest is kept."""
    secret = PREFIX + secrets.token_urlsafe(32)
    with eng.begin() as conn:
        new_id = conn.execute(
            sa.insert(api_tokens).values(
                token_sha256=digest(secret), business_id=business_id, read_only=read_only, label=label, created_at=now
            )
        ).inserted_primary_key[0]
    return Token(new_id, business_id, read_only, label, now, None), secret


def authenticate(eng: sa.Engine, secret: str) -> Token | None:
    """The live (not revoked) token whose secret this is, else None."""
    t = api_tokens
    with eng.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.token_sha256 == digest(secret))).mappings().first()
    return None if row is None or row["revoked_at"] is not None else _token(row)


def find(eng: sa.Engine) -> list[Token]:
    with eng.connect() as conn:
        return [_token(r) for r in conn.execute(sa.select(api_tokens).order_by(api_tokens.c.id)).mappings()]


def revoke(eng: sa.Engine, token_id: int, *, now: dt.datetime) -> bool:
    """Revoke a token at `now` (False when there is none with that id or it was already revoked)."""
    t = api_tokens
    with eng.begin() as conn:
        done = conn.execute(sa.update(t).where(t.c.id == token_id, t.c.revoked_at.is_(None)).values(revoked_at=now))
    return done.rowcount == 1
