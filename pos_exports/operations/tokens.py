"""Tokens of the HTTP API: created once (the secret shown then, never again), stored as the SHA-256 of the
secret, scoped to one business (or to the data team: any business), optionally read-only, revocable. The time a
token last authenticated is kept to the minute (`last_used_at`), so unused tokens can be found and revoked."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from pos_exports.state import api_tokens

PREFIX = "pxt_"  # recognisable in a leaked-secret scan
STAMP_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most this often: not a write per request


@dataclass(frozen=True)
class Token:
    id: int
    business_id: int | None  # None: data team (any business)
    read_only: bool
    label: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None = None

    @property
    def scope(self) -> str:
        return "data team" if self.business_id is None else f"business {self.business_id}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value  # SQLite: naive UTC


def _token(row: sa.RowMapping) -> Token:
    return Token(
        row["id"],
        row["business_id"],
        bool(row["read_only"]),
        row["label"],
        _aware(row["created_at"]),
        _aware(row["revoked_at"]),
        _aware(row["last_used_at"]),
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


def authenticate(eng: sa.Engine, secret: str, *, now: dt.datetime) -> Token | None:
    """The live (not revoked) token whose secret this is, else None; its `last_used_at` set to `now` when it was
    never used or last stamped STAMP_EVERY ago or more."""
    t = api_tokens
    with eng.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.token_sha256 == digest(secret))).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    token = _token(row)
    if token.last_used_at is None or now - token.last_used_at >= STAMP_EVERY:
        stale = sa.or_(t.c.last_used_at.is_(None), t.c.last_used_at <= now - STAMP_EVERY)
        with eng.begin() as conn:  # the condition again: of concurrent requests only one writes
            conn.execute(sa.update(t).where(t.c.id == token.id, stale).values(last_used_at=now))
        token = dataclasses.replace(token, last_used_at=now)
    return token


def find(eng: sa.Engine) -> list[Token]:
    with eng.connect() as conn:
        return [_token(r) for r in conn.execute(sa.select(api_tokens).order_by(api_tokens.c.id)).mappings()]


def revoke(eng: sa.Engine, token_id: int, *, now: dt.datetime) -> bool:
    """Revoke a token at `now` (False when there is none with that id or it was already revoked)."""
    t = api_tokens
    with eng.begin() as conn:
        done = conn.execute(sa.update(t).where(t.c.id == token_id, t.c.revoked_at.is_(None)).values(revoked_at=now))
    return done.rowcount == 1
