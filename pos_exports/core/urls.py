"""The rules of the project's URLs, shared by every layer (the settings check them, the POS source, the state
database and the email sender parse them): where a URL's credentials are (and whether they need percent-encoding),
how one is shown without its password, and what a POS database URL and an SMTP URL must look like. Messages name
the variable and never show a password.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from pos_exports.core.addresses import header_address_problem
from pos_exports.core.fields import Flag, problems

HIDDEN = "***"
ENCODE_HINT = (
    "holds a character that must be percent-encoded (@ / ? # or a % not followed by two hex digits), "
    "e.g. %23 for #, %2F for /, %3F for ?, %40 for @"
)
SMTP_URL_ENV = "POS_EXPORTS_SMTP_URL"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9._%\-]*)(:\d*)?")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SQLITE_PREFIX = "sqlite:///"
_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg", "postgresql+adbc")
_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class UrlError(ValueError):
    """A URL that cannot be used; the message names the variable and the problem."""


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


def mask(url: str | None) -> str:
    """The URL with its password replaced by `***` (for logs and error messages), also when malformed."""
    return redact_url(url) if url else ""


# --------------------------------------------------------------------------------------------- POS database


def parse_database_url(url: str) -> tuple[str, str]:
    """Validate a `POS_DATABASE_URL`; return (dialect name, connection target)."""
    url = (url or "").strip()
    if needs_encoding(url):
        raise UrlError(f"POS_DATABASE_URL {redact_url(url)!r}: the user name or password {ENCODE_HINT}")
    if url.startswith(_SQLITE_PREFIX):
        path = url[len(_SQLITE_PREFIX) :]
        if not path:
            raise UrlError(f"POS_DATABASE_URL {url!r} names no SQLite file (expected sqlite:///path/to/pos.db)")
        return "sqlite", path
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in _PG_SCHEMES:
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise UrlError(f"POS_DATABASE_URL {redact_url(url)!r} is not a valid URL: {exc}") from None
        if not (parts.hostname or "host=" in parts.query) or not parts.path.strip("/"):
            raise UrlError(
                f"POS_DATABASE_URL {redact_url(url)!r} is incomplete: expected postgresql://user:password@host:port/dbname"
            )
        return "postgresql", urlunsplit(parts._replace(scheme="postgresql"))
    # Not echoed: a value without a known scheme may be anything, a bare password included.
    shown = f"scheme {scheme!r}" if re.fullmatch(r"[a-z][a-z0-9+.-]{0,30}", scheme) else "no known scheme://"
    raise UrlError(
        f"POS_DATABASE_URL has {shown}, which is not supported: expected postgresql://user:password@host:port/dbname "
        "or sqlite:///path/to/pos.db"
    )


# --------------------------------------------------------------------------------------------- SMTP


class SmtpUrl(BaseModel):
    """What a `POS_EXPORTS_SMTP_URL` says (`delivery.email.SmtpSettings` adds how it is used)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    security: Literal["plain", "starttls", "ssl"] = "plain"
    timeout: float = 30.0
    from_address: str | None = None  # envelope sender and default From address
    cafile: str | None = None


SmtpModel = TypeVar("SmtpModel", bound=SmtpUrl)


def parse_smtp_url(url: str, model: type[SmtpModel] = SmtpUrl) -> SmtpModel:
    """Parse a `POS_EXPORTS_SMTP_URL` into `model` (`SmtpUrl` or a subclass); ValueError naming the problem
    (never showing the password)."""

    shown = mask(url)
    if needs_encoding(url.strip()):
        raise ValueError(f"{SMTP_URL_ENV}: the user name or password {ENCODE_HINT}: {shown}")
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise ValueError(f"{SMTP_URL_ENV} is not a valid URL ({exc.__class__.__name__}): {shown}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(
            f"{SMTP_URL_ENV} has unsupported scheme {scheme or '(none)'!r}; "
            f"expected smtp://, smtp+starttls:// or smtps://: {shown}"
        )
    try:
        host = parts.hostname
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError(f"{SMTP_URL_ENV} has an invalid port (expected 1-65535): {shown}") from None
    if not host:
        raise ValueError(f"{SMTP_URL_ENV} has no host: {shown}")
    if parts.path not in ("", "/"):
        raise ValueError(f"{SMTP_URL_ENV} must not have a path: {shown}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise ValueError(f"{SMTP_URL_ENV} has a password but no user name: {shown}")

    options = _smtp_options(parts.query, shown)
    return model(
        host=host,
        port=port,
        username=username,
        password=password,
        security=_smtp_security(scheme, options.starttls, shown),
        timeout=options.timeout,
        from_address=options.from_,
        cafile=options.cafile or None,
    )


def _seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1
    if not (0 < seconds < float("inf")):
        raise ValueError(f"{value!r} is not a positive number of seconds")
    return seconds


def _sender(value: Any) -> str:
    if problem := header_address_problem(value, "from address"):
        raise ValueError(problem)
    return value


class SmtpOptions(BaseModel):
    """The query options of `POS_EXPORTS_SMTP_URL` (each given at most once; any other is refused)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    starttls: Flag | None = None  # upgrade a plain smtp:// connection
    timeout: Annotated[float, BeforeValidator(_seconds)] = 30.0  # seconds
    from_: Annotated[str, BeforeValidator(_sender)] | None = Field(None, alias="from")  # sender address
    cafile: str | None = None  # a private CA to trust for TLS


def _smtp_options(query_text: str, shown: str) -> SmtpOptions:
    """The URL's query options (`SmtpOptions`), each given at most once."""
    try:
        query = parse_qs(query_text, keep_blank_values=True, strict_parsing=bool(query_text))
    except ValueError:
        raise ValueError(f"{SMTP_URL_ENV} has a malformed query string: {shown}") from None
    for name, values in query.items():
        if len(values) != 1:
            raise ValueError(f"{SMTP_URL_ENV} gives {name} more than once: {shown}")
    try:
        return SmtpOptions.model_validate({name: values[0] for name, values in query.items()})
    except ValidationError as exc:
        found = problems(exc)
        unknown = sorted(name for name, kind, _ in found if kind == "extra_forbidden")
        if unknown:
            known = ", ".join(f.alias or name for name, f in SmtpOptions.model_fields.items())
            raise ValueError(
                f"{SMTP_URL_ENV} has unknown option(s) {', '.join(unknown)} (known: {known}): {shown}"
            ) from None
        name, _, message = found[0]
        raise ValueError(f"{SMTP_URL_ENV}: {name}: {message}: {shown}") from None


def _smtp_security(scheme: str, starttls: bool | None, shown: str) -> Literal["plain", "starttls", "ssl"]:
    security = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "ssl"}[scheme]
    if starttls is None:
        return security
    if scheme == "smtps" and starttls:
        raise ValueError(f"{SMTP_URL_ENV}: smtps:// is already TLS; starttls does not apply: {shown}")
    if scheme == "smtp+starttls" and not starttls:
        raise ValueError(f"{SMTP_URL_ENV}: smtp+starttls:// with starttls=false is contradictory: {shown}")
    return "starttls" if scheme == "smtp" and starttls else security
