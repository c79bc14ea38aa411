"""Secrets never leave the process: URLs and free text are redacted before they reach a message.

`redact_url` hides the password of one URL, also when the URL is malformed (a password with an
unencoded `#`, `/`, `?` or `@`); `scrub` does the same for every URL in a free text (a driver's
exception message, a log line, an alert) and also hides, wherever they appear, the secrets held
by the environment (the passwords of the configured URLs, the AWS secret key). This module
imports only `core` (where the rule of a URL's credentials lives) so that every layer can use it.

Why not `sqlalchemy.engine.make_url(...).render_as_string(hide_password=True)`: its pattern stops
the password at the first `@` (so `p@ss` shows `ss`) and reads `smtp://host:25?from=a@b.com` as a
password, so it is neither safe nor faithful for the URLs that matter here.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, unquote

from pos_exports.core.urls import HIDDEN, credentials_span, redact_url
from pos_exports.core.urls import needs_encoding as needs_encoding  # its rule lives in core.urls

# Variables holding URLs with credentials, and variables that are secrets as a whole.
SECRET_URL_ENVS = ("POS_DATABASE_URL", "POS_EXPORTS_SMTP_URL", "POS_EXPORTS_STATE_URL", "DAGSTER_POSTGRES_URL")
SECRET_ENVS = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "POS_EXPORTS_LINK_SECRET",
    "POS_EXPORTS_SECRET_KEY",
)
# Shorter secrets are not replaced in free text (a 3-character password would garble every message);
# the URL rule still hides them inside URLs.
MIN_KNOWN_SECRET = 4

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
# `password=...` in libpq key/value strings and logs, `'password': '...'` in dict reprs.
_SECRET_KEY = r"\w*(?:password|passwd|pwd|secret|token)\w*"
_KEY_VALUE = re.compile(rf"(?i)\b({_SECRET_KEY}\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&,;'\")]+)")
_KEY_QUOTED = re.compile(rf"(?i)(['\"]{_SECRET_KEY}['\"]\s*:\s*)('[^']*'|\"[^\"]*\")")


def _password_of(url: str) -> str | None:
    span = credentials_span(url)
    if span is None:
        return None
    _, colon, password = url[span[0] : span[1]].partition(":")
    return password if colon and password else None


def known_secrets() -> list[str]:
    """The secrets the environment holds, in every spelling a message may show (raw, decoded, encoded)."""
    found: set[str] = set()
    for name in SECRET_ENVS:
        if value := os.environ.get(name, "").strip():
            found.add(value)
    for name in SECRET_URL_ENVS:
        if password := _password_of(os.environ.get(name, "").strip()):
            decoded = unquote(password)
            found.update({password, decoded, quote(decoded, safe=""), quote(decoded)})
            # A parser that splits inside an unencoded password echoes its pieces: hide those too.
            found.update(re.split(r"[#/?@:&=%]", password))
    return sorted((s for s in found if len(s) >= MIN_KNOWN_SECRET), key=len, reverse=True)


def scrub(text: object) -> str:
    """`text` with every URL's password, every `password=...` value and every known secret hidden."""
    text = "" if text is None else str(text)
    for secret in known_secrets():
        text = text.replace(secret, HIDDEN)
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    text = _KEY_VALUE.sub(lambda m: m.group(1) + HIDDEN, text)
    return _KEY_QUOTED.sub(lambda m: f"{m.group(1)}'{HIDDEN}'", text)
