"""Secrets never leave the process: URLs and free text are redacted before they reach a message.

`redact_url` hides the password of one URL, also when the URL is malformed (a password with an
unencoded `#`, `/`, `?` or `@`); `scrub` does the same for every URL in a free text (a driver's
exception message, a log line, an alert) and also hides, wherever they appear, the secrets held
by the environment (the passwords of the configured URLs, the AWS secret key). This module
imports nothing of the project so that every layer can use it.

Why not `sqlalchemy.engine.make_url(...).render_as_string(hide_password=True)`: its pattern stops
the password at the first `@` (so `p@ss` shows `ss`) and reads `smtp://host:25?from=a@b.com` as a
password, so it is neither safe nor faithful for the URLs that matter here.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, unquote

HIDDEN = "***"

# Variables holding URLs with credentials, and variables that are secrets as a whole.
SECRET_URL_ENVS = ("POS_DATABASE_URL", "POS_EXPORTS_SMTP_URL", "POS_EXPORTS_STATE_URL", "DAGSTER_POSTGRES_URL")
SECRET_ENVS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# Shorter secrets are not replaced in free text (a 3-character password would garble every message);
# the URL rule still hides them inside URLs.
MIN_KNOWN_SECRET = 4

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9._%\-]*)(:\d*)?")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
# `password=...` in libpq key/value strings and logs, `'password': '...'` in dict reprs.
_SECRET_KEY = r"\w*(?:password|passwd|pwd|secret|token)\w*"
_KEY_VALUE = re.compile(rf"(?i)\b({_SECRET_KEY}\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&,;'\")]+)")
_KEY_QUOTED = re.compile(rf"(?i)(['\"]{_SECRET_KEY}['\"]\s*:\s*)('[^']*'|\"[^\"]*\")")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _tail_is_broken(tail: str) -> bool:
    """Does the part after the authority (`/path?query#fragment`) hold an `@` it cannot hold legitimately?"""
    path, _, fragment = tail.partition("#")
    path, _, query = path.partition("?")
    if "@" in path or "@" in fragment:
        return True
    return any("@" in pair.partition("=")[0] for pair in query.split("&"))


def _plausible_end(rest: str) -> bool:
    """After a userinfo's `@`: `host[:port]` then nothing, or `/`, `?`, `#` and a tail without stray `@`."""
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return bool(_HOST_PORT.fullmatch(rest[:cut])) and not _tail_is_broken(rest[cut:])


def credentials_span(url: str) -> tuple[int, int, bool] | None:
    """Where `user[:password]` is in `url`: (start, end, well_formed); None when it holds none.

    `well_formed` is False when the user name or password holds a `/`, `?` or `#` (or an `@` that a
    strict parser splits on) that should have been percent-encoded: the span then reaches the `@`
    that most plausibly ends the credentials, erring towards hiding more.
    """
    match = _SCHEME.match(url)
    if not match:
        return None
    start = match.end()
    rest = url[start:]
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    if cut == 0:
        return None  # no authority (`sqlite:///path`): an `@` there is part of a path
    authority, tail = rest[:cut], rest[cut:]
    if "@" not in rest:
        # `user:password` with the host forgotten: nothing tells where the password ends, hide the rest.
        return (start, len(url), True) if ":" in authority and not _HOST_PORT.fullmatch(authority) else None
    if not _tail_is_broken(tail):
        if "@" in authority:
            at = authority.rindex("@")
            return start, start + at, "@" not in authority[:at]
        if _HOST_PORT.fullmatch(authority):
            return None  # `@` only in query values (`?from=exports@example.com`)
    ats = [i for i, c in enumerate(rest) if c == "@"]
    at = next((i for i in ats if _plausible_end(rest[i + 1 :])), ats[-1])
    return start, start + at, False


def needs_encoding(url: str) -> bool:
    """True when the URL's user name or password holds a character that must be percent-encoded."""
    span = credentials_span(url)
    if span is None:
        return False
    start, end, well_formed = span
    return not well_formed or bool(_BAD_PERCENT.search(url[start:end]))


def redact_url(url: str) -> str:
    """`url` with its password replaced by `***` (the user name stays); unchanged when it has none.

    A value that is not a URL at all (no `scheme://`) is hidden whole: it may be a bare password.
    """
    if not isinstance(url, str):
        url = str(url)
    if url and not _SCHEME.match(url):
        return HIDDEN
    span = credentials_span(url)
    if span is None:
        return url
    start, end, _ = span
    user, colon, _password = url[start:end].partition(":")
    if not colon:
        return url
    return f"{url[:start]}{user}:{HIDDEN}{url[end:]}"


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
