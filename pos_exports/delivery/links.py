"""Signed, expiring links in export emails (issue 15, item 6), served by `pos_exports.service.links`.

- download: "the files of delivery D for recipient R" (D is the ledger row of that recipient's email);
- unsubscribe: "pause subscription S, asked by recipient R": one click (RFC 8058), the `List-Unsubscribe` header's
  https URL beside the data team's mailto.

A token is the payload signed with HMAC-SHA256 by itsdangerous (`POS_EXPORTS_LINK_SECRET`, a salt per purpose so a
download token never unsubscribes); it carries its own expiry (`POS_EXPORTS_LINK_DAYS` after the email), checked
against the `now` the caller passes. Only with `POS_EXPORTS_PUBLIC_URL` set do emails carry links; without it
they are as before. The secret never leaves this module: not in a token, a URL, a message or a log line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from pos_exports import config
from pos_exports.delivery.email import EmailLinks

DOWNLOAD, UNSUBSCRIBE = "download", "unsubscribe"


class LinkError(ValueError):
    """A link that is not one of ours, or was altered (one line, never the secret)."""


class LinkExpired(LinkError):
    """A genuine link past its expiry."""


@dataclass(frozen=True)
class Link:
    purpose: str  # DOWNLOAD | UNSUBSCRIBE
    target: int  # the delivery (ledger row) id, or the subscription id
    recipient: str
    expires: dt.datetime


def _serializer(purpose: str, secret: str | None) -> URLSafeSerializer:
    if secret is None:
        value = config.settings().link_secret
        if value is None:
            raise LinkError("links are not configured: set POS_EXPORTS_LINK_SECRET (and POS_EXPORTS_PUBLIC_URL)")
        secret = value.get_secret_value()
    return URLSafeSerializer(secret, salt=f"pos-exports {purpose}")


def sign(
    purpose: str, target: int, recipient: str, now: dt.datetime, *, days: int | None = None, secret: str | None = None
) -> str:
    """A token for `purpose` on `target` for `recipient`, valid `days` (default `POS_EXPORTS_LINK_DAYS`) from
    `now`."""
    expires = now + dt.timedelta(days=config.settings().link_days if days is None else days)
    payload = {"t": int(target), "r": recipient, "e": int(expires.timestamp())}
    return _serializer(purpose, secret).dumps(payload)


def verify(purpose: str, token: str, now: dt.datetime, *, secret: str | None = None) -> Link:
    """The link a token stands for; LinkError when it is not a genuine `purpose` token, LinkExpired past its
    expiry."""
    try:
        payload = _serializer(purpose, secret).loads(token)
        target, recipient, expires = int(payload["t"]), str(payload["r"]), int(payload["e"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise LinkError(f"this {purpose} link is not valid (altered or incomplete)") from None
    when = dt.datetime.fromtimestamp(expires, dt.UTC)
    if now >= when:
        raise LinkExpired(f"this {purpose} link expired on {when:%Y-%m-%d %H:%M} UTC")
    return Link(purpose, target, recipient, when)


def email_links(delivery_id: int, subscription_id: int, recipient: str, now: dt.datetime) -> EmailLinks | None:
    """The download and one-click unsubscribe links of one recipient's email, or None without
    `POS_EXPORTS_PUBLIC_URL` (the email then carries none)."""
    settings = config.settings()
    if not settings.public_url:
        return None
    download = sign(DOWNLOAD, delivery_id, recipient, now)
    unsubscribe = sign(UNSUBSCRIBE, subscription_id, recipient, now)
    expires = now + dt.timedelta(days=settings.link_days)
    return EmailLinks(
        f"{settings.public_url}/links/download/{download}",
        f"{settings.public_url}/links/unsubscribe/{unsubscribe}",
        f"{expires.astimezone(dt.UTC):%Y-%m-%d} (UTC)",
    )
