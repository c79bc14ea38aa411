"""Export emails: render the content, build a header-safe MIME message, send it over SMTP (or to an outbox).

`POS_EXPORTS_SMTP_URL` selects the transport (DESIGN.md, "email"):

- `smtp://user:pass@host:port`                 plain SMTP (`?starttls=true` upgrades the connection)
- `smtp+starttls://user:pass@host:port`        STARTTLS (default port 587)
- `smtps://user:pass@host:port`                implicit TLS (default port 465)
- query options: `timeout=10` (seconds, default 30), `from=exports@example.com` (sender address),
  `cafile=/path/ca.pem` (trust a private CA for TLS)

Unset, every message is written as an `.eml` file to the outbox folder instead (`send(..., settings=None)`).

The flow for one delivery: `render_content` -> `build_message` -> `send`, which returns one
`RecipientResult` per recipient for `pos_exports.delivery.ledger.record_result`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import inspect
import os
import re
import smtplib
import ssl
import string
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pos_exports import config
from pos_exports.redact import needs_encoding, redact_url, scrub

SMTP_URL_ENV = "POS_EXPORTS_SMTP_URL"
DEFAULT_SIZE_BUDGET = int(config.default("email_max_mb") * 1024 * 1024)
TEMPLATE_KEYS = frozenset(
    {"business_name", "period_label", "period_key", "frequency", "datasets", "timezone", "subscription_name"}
)

# An addr-spec without quoting, comments or a display name: the only recipient form accepted.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})*")


_GETADDRESSES_STRICT = "strict" in inspect.signature(getaddresses).parameters  # 3.11.10+ / 3.12.6+


class EmailHeaderError(ValueError):
    """A header value that could inject headers or address more (or other) people than intended."""


# --------------------------------------------------------------------------------------------- content


@dataclass
class Attachment:
    name: str  # file name shown to the recipient, e.g. "sales.xlsx"
    path: Path | None  # local file to attach (None: only linkable)
    uri: str  # storage path or presigned URL, listed in link mode
    bytes: int
    content_type: str  # "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class EmailContent:
    subject: str
    text: str
    html: str
    from_name: str
    from_address: str
    reply_to: str | None
    to: list[str]
    attachments: list[Attachment]  # empty in link mode
    link_mode: bool
    files: list[Attachment] = field(default_factory=list)  # every file, attached or linked


def fill_template(template: str, context: dict) -> str:
    """`{key}` placeholders filled from `context` for the known keys only; everything else stays literal.

    Same syntax as `str.format_map` (`{{` and `}}` are literal braces) but it never raises and never
    evaluates attribute access, indexing, conversions or format specs (`{x.__class__}`, `{x:>999999999}`),
    so a user-written template cannot read internals or blow up memory.
    """

    def replace(match: re.Match) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        key = match.group(1)
        if key in TEMPLATE_KEYS and key in context:
            return _as_text(context[key])
        return token

    return re.sub(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}", replace, template or "")


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value)
    return str(value)


def human_size(n: int) -> str:
    """`812 B`, `12.3 KB`, `4.5 MB` (binary units, as mail clients show them)."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _budget_label(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def _is_web_link(uri: str) -> bool:
    return uri.lower().startswith(("https://", "http://"))


def _one_line(value: str) -> str:
    """Values substituted into the subject: line breaks become spaces (the template itself is checked later)."""
    return re.sub(r"\s*(?:" + _LINE_BREAKS.pattern + r")+\s*", " ", value)


def render_content(
    *,
    subject_template: str,
    message_template: str,
    context: dict,
    summary: Sequence[tuple[str, str]],
    files: Sequence[Attachment],
    to: Sequence[str],
    from_name: str,
    from_address: str,
    reply_to: str | None,
    size_budget_bytes: int = DEFAULT_SIZE_BUDGET,
    missing: Sequence[str] = (),
) -> EmailContent:
    """The subject and the plain-text and HTML bodies of one export email.

    `missing`: why each export the subscription asks for is not in this email (one plain sentence each).

    When the files together exceed `size_budget_bytes` (or a file has no local copy), nothing is
    attached: both bodies list the links (`Attachment.uri`) and say why.
    """
    files = list(files)
    subject_context = {k: _one_line(_as_text(v)) for k, v in context.items()}
    subject = fill_template(subject_template, subject_context).strip()
    message = fill_template(message_template, context).strip()

    business = _as_text(context.get("business_name"))
    tz_name = _as_text(context.get("timezone")) or "UTC"
    period_label = _as_text(context.get("period_label") or context.get("period_key"))
    period = f"{period_label} ({tz_name})" if period_label else f"({tz_name})"

    total = sum(int(f.bytes or 0) for f in files)
    too_big = total > size_budget_bytes
    unattachable = any(f.path is None for f in files)
    link_mode = bool(files) and (too_big or unattachable)
    if too_big:
        notice = f"The files are larger than {_budget_label(size_budget_bytes)}, so they are linked instead of attached"
    elif link_mode:
        notice = "The files are linked instead of attached"
    else:
        notice = ""

    # ---- plain text
    lines: list[str] = []
    if message:
        lines += [message, ""]
    lines += [f"Business: {business}", f"Period:   {period}", ""]
    if summary:
        width = max(len(str(label)) for label, _ in summary)
        lines.append("Summary")
        lines += [f"  {str(label).ljust(width)}  {value}" for label, value in summary]
        lines.append("")
    if files:
        lines.append(f"Files ({len(files)}, {human_size(total)})")
        if link_mode:
            lines.append(notice + ":")
        for f in files:
            entry = f"  {f.name}  ({human_size(f.bytes)})"
            lines.append(f"{entry}\n    {f.uri}" if link_mode else entry)
        lines.append("")
    else:
        lines += ["No files were produced for this period.", ""]
    if missing:
        lines += ["Not included", *(f"  {m}" for m in missing), ""]
    lines.append(f"This message was sent automatically by the export service. Periods are shown in {tz_name}.")
    text = "\n".join(lines) + "\n"

    # ---- HTML (every value escaped; the template is trusted, the values are not)
    esc = html.escape
    paragraphs = [p for p in re.split(r"\n\s*\n", message) if p.strip()]
    message_html = "\n".join(
        f'<p style="margin:0 0 12px 0;">{esc(p.strip()).replace(chr(10), "<br>")}</p>' for p in paragraphs
    )
    summary_section = ""
    if summary:
        rows = "\n".join(
            f'<tr><td style="padding:4px 8px;border-bottom:1px solid #eef0f2;">{esc(str(label))}</td>'
            f'<td style="padding:4px 8px;border-bottom:1px solid #eef0f2;text-align:right;">{esc(str(value))}</td></tr>'
            for label, value in summary
        )
        summary_section = (
            '<tr><td style="padding:12px 28px 4px 28px;">'
            '<div style="font-size:15px;font-weight:bold;margin-bottom:6px;">Summary</div>'
            '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
            f'style="font-size:14px;border-collapse:collapse;">\n{rows}\n</table></td></tr>'
        )
    file_rows = []
    for f in files:
        name = esc(f.name)
        if link_mode:
            if _is_web_link(f.uri):
                name = f'<a href="{esc(f.uri, quote=True)}" style="color:#2f6fde;">{name}</a>'
            else:
                name = f'{name}<br><span style="font-size:12px;color:#6b7785;">{esc(f.uri)}</span>'
        file_rows.append(
            f'<tr><td style="padding:4px 8px;border-bottom:1px solid #eef0f2;">{name}</td>'
            f'<td style="padding:4px 8px;border-bottom:1px solid #eef0f2;text-align:right;white-space:nowrap;">'
            f"{esc(human_size(f.bytes))}</td></tr>"
        )
    if not files:
        file_rows.append('<tr><td style="padding:4px 8px;">No files were produced for this period.</td></tr>')
    file_rows += [
        f'<tr><td colspan="2" style="padding:4px 8px;background:#fff8e1;">Not included: {esc(m)}</td></tr>'
        for m in missing
    ]
    html_body = _html_template().substitute(
        title=esc(subject),
        business_name=esc(business),
        message=message_html,
        period=esc(period),
        summary_section=summary_section,
        files_heading=esc(f"Files ({len(files)}, {human_size(total)})" if files else "Files"),
        files_notice=(
            f'<p style="margin:0 0 8px 0;font-size:14px;background:#fff8e1;padding:8px;">{esc(notice)}:</p>'
            if link_mode
            else ""
        ),
        file_rows="\n".join(file_rows),
        timezone=esc(tz_name),
    )

    return EmailContent(
        subject=subject,
        text=text,
        html=html_body,
        from_name=from_name,
        from_address=from_address,
        reply_to=reply_to,
        to=list(to),
        attachments=[] if link_mode else files,
        link_mode=link_mode,
        files=files,
    )


def _html_template() -> string.Template:
    source = resources.files("pos_exports.delivery").joinpath("templates", "export_email.html").read_text("utf-8")
    return string.Template(source)


# --------------------------------------------------------------------------------------------- message


# CR and LF, plus everything else `str.splitlines` treats as a line break, and NUL.
_LINE_BREAKS = re.compile("[\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_MIME_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


def _no_line_breaks(what: str, value: str | None) -> None:
    if value is not None and _LINE_BREAKS.search(value):
        raise EmailHeaderError(f"{what} contains a line break: {value!r}")


def check_address(value: str, what: str = "recipient") -> str:
    """`value` if it is exactly one plain address (`a@example.com`); EmailHeaderError otherwise.

    Refused: line breaks, lists (`a@b.com, c@d.com`), display names (`Name <a@b.com>`), comments,
    quoted local parts and non-ASCII addresses.
    """
    if not isinstance(value, str) or not value:
        raise EmailHeaderError(f"{what} is empty")
    _no_line_breaks(what, value)
    parsed = getaddresses([value], strict=True) if _GETADDRESSES_STRICT else getaddresses([value])
    if len(parsed) != 1 or parsed[0] != ("", value) or not _PLAIN_ADDRESS.fullmatch(value):
        raise EmailHeaderError(f"{what} is not exactly one plain address: {value!r}")
    return value


def _msgid_domain(address: str) -> str:
    domain = address.rpartition("@")[2]
    return domain if _PLAIN_ADDRESS.fullmatch(f"x@{domain}") else "localhost"


def message_id_for(subscription_id: int, period_kind: str, period_key: str, recipient: str, from_address: str) -> str:
    """The Message-ID of one export email: the same for every (re)send of that subscription, period and
    recipient, so a resend can be recognised (and mail clients show one message)."""
    digest = hashlib.sha256(f"{subscription_id}|{period_kind}|{period_key}|{recipient.lower()}".encode()).hexdigest()
    key = re.sub(r"[^A-Za-z0-9-]", "", period_key)
    return f"<sub-{subscription_id}.{period_kind}.{key}.{digest[:16]}@{_msgid_domain(from_address)}>"


def build_message(
    content: EmailContent, *, now: dt.datetime | None = None, message_id: str | None = None
) -> EmailMessage:
    """A `multipart/mixed` message (text + HTML alternative, then the attachments), `email.policy.SMTP`.

    `message_id` (`message_id_for`): a stable Message-ID; default a fresh one.

    Raises EmailHeaderError before anything is built for a header value that could inject headers.
    """
    _no_line_breaks("subject", content.subject)
    _no_line_breaks("from name", content.from_name)
    check_address(content.from_address, "from address")
    if content.reply_to:
        check_address(content.reply_to, "reply-to")
    if not content.to:
        raise EmailHeaderError("no recipients")
    for rcpt in content.to:
        check_address(rcpt)
    for att in content.attachments:
        _no_line_breaks("attachment name", att.name)
        if att.path is None:
            raise ValueError(f"attachment {att.name!r} has no local file to attach")

    msg = EmailMessage(policy=SMTP_POLICY)
    msg["Subject"] = content.subject
    msg["From"] = formataddr((content.from_name, content.from_address)) if content.from_name else content.from_address
    msg["To"] = ", ".join(content.to)
    if content.reply_to:
        msg["Reply-To"] = content.reply_to
    msg["Date"] = format_datetime(now or dt.datetime.now(dt.UTC))
    _no_line_breaks("message id", message_id)
    msg["Message-ID"] = message_id or make_msgid(domain=_msgid_domain(content.from_address))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(content.text)
    msg.add_alternative(content.html, subtype="html")
    for att in content.attachments:
        maintype, _, subtype = (att.content_type or "").split(";")[0].strip().lower().partition("/")
        if not (_MIME_TOKEN.fullmatch(maintype) and _MIME_TOKEN.fullmatch(subtype)) or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(
            att.path.read_bytes(), maintype=maintype, subtype=subtype, filename=os.path.basename(att.name)
        )
    return msg


# --------------------------------------------------------------------------------------------- settings


_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: Literal["plain", "starttls", "ssl"] = "plain"
    timeout: float = 30.0
    from_address: str | None = None  # envelope sender and default From address
    cafile: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        """Parse a `POS_EXPORTS_SMTP_URL`; ValueError naming the problem (never showing the password)."""
        shown = mask(url)
        if needs_encoding(url.strip()):
            raise ValueError(f"{SMTP_URL_ENV}: the user name or password {config.ENCODE_HINT}: {shown}")
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

        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise ValueError(f"{SMTP_URL_ENV} has a malformed query string: {shown}") from None
        unknown = sorted(set(query) - {"starttls", "timeout", "from", "cafile"})
        if unknown:
            raise ValueError(
                f"{SMTP_URL_ENV} has unknown option(s) {', '.join(unknown)} "
                f"(known: starttls, timeout, from, cafile): {shown}"
            )

        def one(name: str) -> str | None:
            values = query.get(name)
            if values is None:
                return None
            if len(values) != 1:
                raise ValueError(f"{SMTP_URL_ENV} gives {name} more than once: {shown}")
            return values[0]

        security = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "ssl"}[scheme]
        if (starttls := one("starttls")) is not None:
            flag = starttls.lower()
            if flag not in _TRUE | _FALSE:
                raise ValueError(f"{SMTP_URL_ENV}: starttls must be true or false, not {starttls!r}: {shown}")
            if scheme == "smtps" and flag in _TRUE:
                raise ValueError(f"{SMTP_URL_ENV}: smtps:// is already TLS; starttls does not apply: {shown}")
            if scheme == "smtp+starttls" and flag in _FALSE:
                raise ValueError(f"{SMTP_URL_ENV}: smtp+starttls:// with starttls=false is contradictory: {shown}")
            if scheme == "smtp" and flag in _TRUE:
                security = "starttls"
        timeout = 30.0
        if (raw := one("timeout")) is not None:
            try:
                timeout = float(raw)
            except ValueError:
                timeout = -1
            if not (0 < timeout < float("inf")):
                raise ValueError(f"{SMTP_URL_ENV}: timeout must be a positive number of seconds, not {raw!r}")
        from_address = one("from")
        if from_address is not None:
            try:
                check_address(from_address, "from address")
            except EmailHeaderError as exc:
                raise ValueError(f"{SMTP_URL_ENV}: {exc}") from None
        return cls(
            host=host,
            port=port,
            username=username,
            password=password,
            security=security,
            timeout=timeout,
            from_address=from_address,
            cafile=one("cafile") or None,
        )

    @classmethod
    def from_env(cls) -> SmtpSettings | None:
        """Settings from `POS_EXPORTS_SMTP_URL`, or None (outbox mode) when it is unset or empty."""
        url = config.settings().smtp_url
        return cls.from_url(url) if url else None

    def describe(self) -> str:
        """For logs: `smtps://user@host:465` without the password."""
        scheme = {"plain": "smtp", "starttls": "smtp+starttls", "ssl": "smtps"}[self.security]
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def mask(url: str | None) -> str:
    """The URL with its password replaced by `***` (for logs and error messages), also when malformed."""
    return redact_url(url) if url else ""


# --------------------------------------------------------------------------------------------- sending


Status = Literal["emailed", "retry", "failed", "unknown"]


@dataclass
class RecipientResult:
    # emailed | retry (temporary, nothing delivered: try again later) | failed (permanent) |
    # unknown (the body was sent, then the connection dropped or the reply timed out: maybe delivered)
    status: Status
    code: int | None  # last SMTP reply code, None for connection problems and the outbox
    response: str  # last server reply / error, e.g. "250 OK", "550 5.1.1 no such user"
    attempts: int  # transactions tried for this recipient within this call
    message_id: str
    stage: str = ""  # where it ended: outbox | connect | auth | mail | rcpt | data


class _ReplyRecorder:
    """Keeps the final reply to DATA and each RCPT reply, which `smtplib.SMTP.sendmail` otherwise discards,
    and whether the message body (with its final `.`) was handed over: past that point a lost reply
    leaves the outcome unknown (a server that commits at end-of-data has delivered it)."""

    last_data_reply: tuple[int, bytes] | None = None
    body_sent: bool = False
    _in_data: bool = False

    def rcpt(self, recip, options=()):  # type: ignore[override]
        code, resp = super().rcpt(recip, options)  # type: ignore[misc]
        self.rcpt_replies = {**getattr(self, "rcpt_replies", {}), recip: (code, resp)}
        return code, resp

    def data(self, msg):  # type: ignore[override]
        self._in_data = True
        try:
            code, resp = super().data(msg)  # type: ignore[misc]
        finally:
            self._in_data = False
        self.last_data_reply = (code, resp)
        return code, resp

    def send(self, s):  # type: ignore[override]
        super().send(s)  # type: ignore[misc]
        if self._in_data and isinstance(s, bytes):  # inside DATA, commands are str: this is the body
            self.body_sent = True


class _SMTP(_ReplyRecorder, smtplib.SMTP):
    pass


class _SMTP_SSL(_ReplyRecorder, smtplib.SMTP_SSL):
    pass


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.cafile)


def _open(settings: SmtpSettings) -> smtplib.SMTP:
    """A connected (and authenticated) client; on failure raises with the stage reached in `exc.stage`."""
    stage = "connect"
    client: smtplib.SMTP | None = None
    try:
        if settings.security == "ssl":
            client = _SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=_tls_context(settings))
        else:
            client = _SMTP(settings.host, settings.port, timeout=settings.timeout)
        client.ehlo()
        if settings.security == "starttls":
            client.starttls(context=_tls_context(settings))
            client.ehlo()
        if settings.username:
            stage = "auth"
            client.login(settings.username, settings.password or "")
        return client
    except BaseException as exc:
        if client is not None:
            _close(client)
        exc.stage = stage  # type: ignore[attr-defined]
        raise


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except Exception:
        try:
            client.close()
        except Exception:
            pass


def _reply_text(code: int | None, resp: bytes | str | None) -> str:
    if isinstance(resp, bytes):
        resp = resp.decode("utf-8", "replace")
    resp = scrub(resp or "").replace("\r", " ").replace("\n", " ").strip()
    return f"{code} {resp}".strip() if code is not None else resp


def _classify(code: int | None) -> Status:
    """5xx is permanent; 4xx, unknown codes and connection problems are worth another try."""
    return "failed" if code is not None and 500 <= code <= 599 else "retry"


def _slug(message_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", message_id.strip("<>")).strip("-.")[:120] or "message"


def write_outbox(message: EmailMessage, outbox_dir: Path) -> Path:
    """Write `message` as `{outbox_dir}/{timestamp}-{message-id-slug}.eml`, atomically."""
    outbox_dir = Path(outbox_dir)
    outbox_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = outbox_dir / f"{stamp}-{_slug(str(message['Message-ID'] or ''))}.eml"
    fd, tmp = tempfile.mkstemp(dir=outbox_dir, prefix=".tmp-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(message.as_bytes(policy=SMTP_POLICY))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


def send(
    message: EmailMessage,
    recipients: Sequence[str],
    settings: SmtpSettings | None,
    outbox_dir: Path,
    *,
    retries: int = 3,
    backoff_seconds: Sequence[float] = (1, 4, 15),
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, RecipientResult]:
    """Deliver `message` to `recipients` (the envelope); one `RecipientResult` per distinct recipient.

    Without `settings` the message is written to `outbox_dir` and every recipient counts as emailed.
    With SMTP, one transaction carries every recipient still pending; temporary problems before the
    message body was sent (4xx, connection errors, timeouts) and 4xx replies to the body are retried
    with backoff for the pending recipients only, up to `retries` transactions per recipient; 5xx
    answers are final. A connection lost or a reply timed out AFTER the body was sent is `unknown`
    (the server may have delivered it) and never retried. A recipient accepted once is never sent to
    again within the call.

    Raises EmailHeaderError (before any connection) when a recipient is not one plain address.
    """
    ordered: list[str] = []
    for rcpt in recipients:
        check_address(rcpt)
        if rcpt not in ordered:
            ordered.append(rcpt)
    message_id = str(message["Message-ID"] or "")
    if not ordered:
        return {}

    if settings is None:
        path = write_outbox(message, outbox_dir)
        return {
            r: RecipientResult("emailed", None, f"written to outbox {path}", 1, message_id, "outbox") for r in ordered
        }

    sender = settings.from_address or _sender_of(message)
    results: dict[str, RecipientResult] = {}
    attempts = dict.fromkeys(ordered, 0)
    last: dict[str, tuple[int | None, str, str]] = {}  # the latest temporary problem per recipient
    pending = list(ordered)

    def ambiguous(client: smtplib.SMTP, text: str) -> None:
        """After the body: `unknown` for every recipient the server took at RCPT; the refused keep their reply."""
        replies = getattr(client, "rcpt_replies", {})
        for r in pending:
            r_code, r_resp = replies.get(r, (None, b""))
            if r_code is not None and 200 <= r_code <= 299:
                results[r] = RecipientResult("unknown", None, text, attempts[r], message_id, "data")
            elif _classify(r_code) == "failed":
                results[r] = RecipientResult(
                    "failed", r_code, _reply_text(r_code, r_resp), attempts[r], message_id, "rcpt"
                )
            else:
                last[r] = (r_code, _reply_text(r_code, r_resp), "rcpt")

    def fail_all(code: int | None, text: str, stage: str, status: Status) -> None:
        """The whole transaction failed: final for every pending recipient, or remembered for a retry."""
        for r in pending:
            if status == "failed":
                results[r] = RecipientResult("failed", code, text, attempts[r], message_id, stage)
            else:
                last[r] = (code, text, stage)

    for attempt in range(1, max(1, retries) + 1):
        if not pending:
            break
        if attempt > 1 and backoff_seconds:
            sleep(backoff_seconds[min(attempt - 2, len(backoff_seconds) - 1)])
        for r in pending:
            attempts[r] += 1

        client = None
        try:
            client = _open(settings)
            refused = client.send_message(message, from_addr=sender, to_addrs=list(pending))
            code, resp = client.last_data_reply or (250, b"")
            accepted_text = _reply_text(code, resp)
            still: list[str] = []
            for r in pending:
                if r in refused:
                    r_code, r_resp = refused[r]
                    text = _reply_text(r_code, r_resp)
                    if _classify(r_code) == "failed":
                        results[r] = RecipientResult("failed", r_code, text, attempts[r], message_id, "rcpt")
                    else:
                        last[r] = (r_code, text, "rcpt")
                        still.append(r)
                else:
                    results[r] = RecipientResult("emailed", code, accepted_text, attempts[r], message_id, "data")
            pending = still
            continue
        except smtplib.SMTPRecipientsRefused as exc:
            still = []
            for r in pending:
                r_code, r_resp = exc.recipients.get(r, (None, b"no reply"))
                text = _reply_text(r_code, r_resp)
                if _classify(r_code) == "failed":
                    results[r] = RecipientResult("failed", r_code, text, attempts[r], message_id, "rcpt")
                else:
                    last[r] = (r_code, text, "rcpt")
                    still.append(r)
            pending = still
            continue
        except smtplib.SMTPSenderRefused as exc:
            fail_all(exc.smtp_code, _reply_text(exc.smtp_code, exc.smtp_error), "mail", _classify(exc.smtp_code))
        except smtplib.SMTPDataError as exc:
            fail_all(exc.smtp_code, _reply_text(exc.smtp_code, exc.smtp_error), "data", _classify(exc.smtp_code))
        except smtplib.SMTPResponseException as exc:  # connect / EHLO / STARTTLS / AUTH answered with an error
            stage = getattr(exc, "stage", "connect")
            fail_all(exc.smtp_code, _reply_text(exc.smtp_code, exc.smtp_error), stage, _classify(exc.smtp_code))
        except ssl.SSLCertVerificationError as exc:  # configuration, not luck: retrying will not help
            fail_all(None, f"TLS certificate verification failed: {exc}", "connect", "failed")
        except (smtplib.SMTPServerDisconnected, TimeoutError, OSError) as exc:  # incl. a reply that timed out
            if client is not None and client.body_sent:
                # The body went out, the reply did not come back: maybe delivered. Never sent again here.
                ambiguous(
                    client, f"no reply after the message body ({_lost(exc, settings)}); it may have been delivered"
                )
            else:
                fail_all(None, _lost(exc, settings), getattr(exc, "stage", "data"), "retry")
        except smtplib.SMTPException as exc:  # e.g. STARTTLS or AUTH not supported by the server: configuration
            fail_all(None, f"{exc.__class__.__name__}: {scrub(exc)}", getattr(exc, "stage", "connect"), "failed")
        finally:
            if client is not None:
                _close(client)
        pending = [r for r in pending if r not in results]

    for r in pending:
        code, text, stage = last.get(r, (None, "not attempted", ""))
        results[r] = RecipientResult("retry", code, text, attempts[r], message_id, stage)
    return {r: results[r] for r in ordered}


def _lost(exc: BaseException, settings: SmtpSettings) -> str:
    """What went wrong with the connection, in one line."""
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return f"timed out after {settings.timeout:g} s: {scrub(exc)}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"server disconnected: {scrub(exc)}"
    return f"connection error: {exc.__class__.__name__}: {scrub(exc)}"


def _sender_of(message: EmailMessage) -> str:
    addresses = getaddresses([str(message["From"] or "")])
    if not addresses or not addresses[0][1]:
        raise EmailHeaderError("the message has no From address to use as the envelope sender")
    return addresses[0][1]
