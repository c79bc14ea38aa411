"""Export emails: render the content, build a header-safe MIME message, send it over SMTP (or to an outbox).

`POS_EXPORTS_SMTP_URL` selects the transport (README, "Delivery"):

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
import functools
import hashlib
import os
import re
import smtplib
import ssl
import tempfile
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import jinja2

from pos_exports import config
from pos_exports.core.addresses import LINE_BREAKS as _LINE_BREAKS
from pos_exports.core.addresses import address_problem, header_address_problem
from pos_exports.core.catalog import PLACEHOLDERS
from pos_exports.core.clock import utc_now
from pos_exports.core.urls import SMTP_URL_ENV as SMTP_URL_ENV  # named here for the callers of SmtpSettings
from pos_exports.core.urls import SmtpUrl, parse_smtp_url
from pos_exports.core.urls import mask as mask
from pos_exports.redact import scrub

# Headers set raw (an attachment's two file names) are sent as written, already folded.
SMTP_POLICY = SMTP.clone(refold_source="none")
DEFAULT_SIZE_BUDGET = int(config.default("email_max_mb") * 1024 * 1024)


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
    ascii_name: str = ""  # the ASCII file name (`ascii_mail_filename`); default `ascii_filename(name)`


@dataclass(frozen=True)
class EmailLinks:
    """The signed links of one recipient's email (`delivery.links`)."""

    download: str  # https://.../links/download/TOKEN: the files of this delivery
    unsubscribe: str  # https://.../links/unsubscribe/TOKEN: one-click (POST) pause of the subscription
    expires: str  # when they stop working, as the email says it: `2025-05-09 (UTC)`


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
    unsubscribe: str | None = None  # a `mailto:` or https URL for List-Unsubscribe (RFC 2369)
    one_click: str | None = None  # the signed https URL of a one-click unsubscribe (RFC 8058), listed first


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
        if key in PLACEHOLDERS and key in context:
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
    summary: Sequence[tuple[str, str]] = (),
    files: Sequence[Attachment],
    to: Sequence[str],
    from_name: str,
    from_address: str,
    reply_to: str | None,
    size_budget_bytes: int = DEFAULT_SIZE_BUDGET,
    manage: str = "",
    unsubscribe: str | None = None,
    missing: Sequence[str] = (),
    summary_groups: Sequence[tuple[str, Sequence[tuple[str, str]]]] = (),
    linked: Sequence[Attachment] = (),
    links: EmailLinks | None = None,
) -> EmailContent:
    """The subject and the plain-text and HTML bodies of one export email.

    `missing`: why each export the subscription asks for is not in this email (one plain sentence each).
    `summary_groups`: the summary as (heading, figures) per dataset (`Sales`: net sales, refunds ...); a plain
    `summary` is shown under the heading "Summary".

    When the files together exceed `size_budget_bytes` (or a file has no local copy), nothing is
    attached: both bodies list the links (`Attachment.uri`) of `linked` (default: `files`; the CSV files one
    by one where `files` holds their zip) and say why. `manage` (how to change or stop
    the subscription) closes both bodies; `unsubscribe` becomes the List-Unsubscribe header. `links` (only when
    the service's public URL is configured): the signed download link in both bodies, and the one-click
    unsubscribe in the footer and in List-Unsubscribe beside the mailto.
    """
    files = list(files)
    groups = [(str(h), [(str(k), str(v)) for k, v in rows]) for h, rows in summary_groups if rows]
    if summary:
        groups.insert(0, ("Summary", [(str(label), str(value)) for label, value in summary]))
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
    listed = list(linked) if link_mode and linked else files

    values = {
        "subject": subject,
        "message": message,
        "paragraphs": [p.strip().split("\n") for p in re.split(r"\n\s*\n", message) if p.strip()],
        "business": business,
        "period": period,
        "groups": groups,
        "label_width": max((len(label) for _, rows in groups for label, _ in rows), default=0),
        "files": [
            {"name": f.name, "size": human_size(f.bytes), "uri": f.uri, "web": _is_web_link(f.uri)} for f in listed
        ],
        "total_size": human_size(sum(int(f.bytes or 0) for f in listed)),
        "link_mode": link_mode,
        "notice": notice,
        "timezone": tz_name,
        "manage": manage,
        "missing": list(missing),
        "download_url": links.download if links else None,
        "unsubscribe_url": links.unsubscribe if links else None,
        "links_expire": links.expires if links else None,
    }
    text = _templates(html=False).render(values)
    html_body = _templates(html=True).render(values)

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
        files=listed,
        unsubscribe=unsubscribe,
        one_click=links.unsubscribe if links else None,
    )


@functools.cache
def _templates(*, html: bool) -> jinja2.Template:
    """The email body templates (`templates/export_email.{html,txt}.j2`); HTML is autoescaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pos_exports.delivery", "templates"),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template("export_email.html.j2" if html else "export_email.txt.j2")


# --------------------------------------------------------------------------------------------- message


_MIME_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


def _no_line_breaks(what: str, value: str | None) -> None:
    if value is not None and _LINE_BREAKS.search(value):
        raise EmailHeaderError(f"{what} contains a line break: {value!r}")


def check_address(value: str, what: str = "recipient") -> str:
    """`value` if it is exactly one plain address (`a@example.com`); EmailHeaderError otherwise.

    Refused: line breaks, lists (`a@b.com, c@d.com`), display names (`Name <a@b.com>`), comments,
    quoted local parts and non-ASCII addresses.
    """
    if problem := header_address_problem(value, what):  # the rule: core.addresses
        raise EmailHeaderError(problem)
    return value


def _msgid_domain(address: str) -> str:
    domain = address.rpartition("@")[2]
    return domain if address_problem(f"x@{domain}", public=False) is None else "localhost"


def message_id_for(subscription_id: int, period_kind: str, period_key: str, recipient: str, from_address: str) -> str:
    """The Message-ID of one export email: the same for every (re)send of that subscription, period and
    recipient, so a resend can be recognised (and mail clients show one message)."""
    digest = hashlib.sha256(f"{subscription_id}|{period_kind}|{period_key}|{recipient.lower()}".encode()).hexdigest()
    key = re.sub(r"[^A-Za-z0-9-]", "", period_key)
    return f"<sub-{subscription_id}.{period_kind}.{key}.{digest[:16]}@{_msgid_domain(from_address)}>"


def build_message(content: EmailContent, *, now: dt.datetime, message_id: str | None = None) -> EmailMessage:
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
    msg["Date"] = format_datetime(now)
    _no_line_breaks("message id", message_id)
    msg["Message-ID"] = message_id or make_msgid(domain=_msgid_domain(content.from_address))
    msg["Auto-Submitted"] = "auto-generated"
    unsubscribe = [u for u in (content.one_click, content.unsubscribe) if u]
    for url in unsubscribe:
        _no_line_breaks("unsubscribe link", url)
        if not url.isascii():
            raise EmailHeaderError(f"unsubscribe link is not ASCII (percent-encode it): {url!r}")
    if unsubscribe:  # raw: folded would make a long link an RFC 2047 encoded word that mail clients do not read
        msg.set_raw("List-Unsubscribe", ",\r\n ".join(f"<{u}>" for u in unsubscribe))
    if content.one_click:  # RFC 8058: a mail client may POST to the https URL to unsubscribe in one click
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(content.text)
    msg.add_alternative(content.html, subtype="html")
    for att in content.attachments:
        maintype, _, subtype = (att.content_type or "").split(";")[0].strip().lower().partition("/")
        if not (_MIME_TOKEN.fullmatch(maintype) and _MIME_TOKEN.fullmatch(subtype)) or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        name = os.path.basename(att.name)
        safe = att.ascii_name or ascii_filename(name)
        msg.add_attachment(att.path.read_bytes(), maintype=maintype, subtype=subtype, filename=safe)
        if safe != name:  # the ASCII name for every client, the original (RFC 2231) for those that read it
            part = msg.get_payload()[-1]
            del part["Content-Disposition"]
            part.set_raw(
                "Content-Disposition", f"attachment;\r\n filename=\"{safe}\";\r\n filename*=utf-8''{quote(name)}"
            )
    return msg


def _ascii_slug(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower().replace("'", "")
    return re.sub(r"-*_-*", "_", re.sub(r"[^a-z0-9._]+", "-", folded)).strip("-_.")


def ascii_filename(name: str) -> str:
    """`Kofi's Corner Shop_sales_2026-11-30.xlsx` -> `kofis-corner-shop_sales_2026-11-30.xlsx`: ASCII letters,
    digits, `.`, `_` and `-` only (accents folded, other scripts dropped), never empty."""
    return _ascii_slug(name) or "export"


def mail_filename(business_name: str, stored_name: str, period_key: str) -> str:
    """The name a file carries in an email, unique in a Downloads folder: business, file, period
    (`Kofi's Corner Shop_sales_2026-11-30.xlsx`, `..._sales_2026-11-30.csv.zip`); `ascii_mail_filename` gives
    its ASCII form."""
    stem, dot, ext = stored_name.partition(".")  # the whole extension: `.csv.zip`
    business = _LINE_BREAKS.sub(" ", business_name).replace("/", "-").replace("\\", "-").strip()[:80]
    return f"{business}_{stem or ext}_{period_key}{dot if stem else ''}{ext if stem else ''}"


def ascii_mail_filename(business_name: str, business_id: int, stored_name: str, period_key: str) -> str:
    """The ASCII form of `mail_filename`; a business name without ASCII letters or digits (`東京文具店`) is
    `business-{id}` there, so the name still says whose file it is (`business-7_audit_log_2026-11-30.csv`)."""
    business = _ascii_slug(business_name) or f"business-{business_id}"
    return ascii_filename(mail_filename(business, stored_name, period_key))


ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same files give the same zip, so a resend carries the same bytes


def zip_files(members: Sequence[tuple[str, Path]], target: Path) -> Path:
    """Write `members` (name in the zip, file) into the zip `target`, deflated, with fixed timestamps."""
    import zipfile

    with zipfile.ZipFile(target, "w") as archive:
        for name, path in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            archive.writestr(info, path.read_bytes())
    return target


# --------------------------------------------------------------------------------------------- settings


class SmtpSettings(SmtpUrl):
    """Where and how export emails are sent (`POS_EXPORTS_SMTP_URL`, parsed by `from_url`)."""

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        """Parse a `POS_EXPORTS_SMTP_URL`; ValueError naming the problem (never showing the password)."""
        return parse_smtp_url(url, cls)

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
    stamp = utc_now().strftime("%Y%m%dT%H%M%S%fZ")
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

    transaction = _Transaction(settings, message, settings.from_address or _sender_of(message), ordered)
    for attempt in range(1, max(1, retries) + 1):
        if not transaction.pending:
            break
        if attempt > 1 and backoff_seconds:
            sleep(backoff_seconds[min(attempt - 2, len(backoff_seconds) - 1)])
        transaction.attempt()
    return transaction.finish()


class _Transaction:
    """The recipients of one `send`: who is still pending, each one's outcome, its latest temporary problem."""

    def __init__(self, settings: SmtpSettings, message: EmailMessage, sender: str, ordered: list[str]) -> None:
        self.settings, self.message, self.sender, self.ordered = settings, message, sender, ordered
        self.message_id = str(message["Message-ID"] or "")
        self.results: dict[str, RecipientResult] = {}
        self.attempts = dict.fromkeys(ordered, 0)
        self.last: dict[str, tuple[int | None, str, str]] = {}  # the latest temporary problem per recipient
        self.pending = list(ordered)

    def _result(self, r: str, status: Status, code: int | None, text: str, stage: str) -> None:
        self.results[r] = RecipientResult(status, code, text, self.attempts[r], self.message_id, stage)

    def _rcpt_reply(self, r: str, code: int | None, resp: bytes | str | None) -> bool:
        """Record a refusal at RCPT: final for 5xx, remembered for a retry otherwise (True: still pending)."""
        text = _reply_text(code, resp)
        if _classify(code) == "failed":
            self._result(r, "failed", code, text, "rcpt")
            return False
        self.last[r] = (code, text, "rcpt")
        return True

    def _fail_all(self, code: int | None, text: str, stage: str, status: Status) -> None:
        """The whole transaction failed: final for every pending recipient, or remembered for a retry."""
        for r in self.pending:
            if status == "failed":
                self._result(r, "failed", code, text, stage)
            else:
                self.last[r] = (code, text, stage)

    def _ambiguous(self, client: smtplib.SMTP, text: str) -> None:
        """After the body: `unknown` for every recipient the server took at RCPT; the refused keep their reply."""
        replies = getattr(client, "rcpt_replies", {})
        for r in self.pending:
            code, resp = replies.get(r, (None, b""))
            if code is not None and 200 <= code <= 299:
                self._result(r, "unknown", None, text, "data")
            else:
                self._rcpt_reply(r, code, resp)

    def attempt(self) -> None:
        """One SMTP transaction for every pending recipient."""
        for r in self.pending:
            self.attempts[r] += 1
        client = None
        try:
            client = _open(self.settings)
            refused = client.send_message(self.message, from_addr=self.sender, to_addrs=list(self.pending))
            code, resp = client.last_data_reply or (250, b"")
            for r in self.pending:
                if r in refused:
                    self._rcpt_reply(r, *refused[r])
                else:
                    self._result(r, "emailed", code, _reply_text(code, resp), "data")
        except smtplib.SMTPRecipientsRefused as exc:
            for r in self.pending:
                self._rcpt_reply(r, *exc.recipients.get(r, (None, b"no reply")))
        except Exception as exc:  # noqa: BLE001 (classified below; anything else is re-raised)
            self._failed(exc, client)
        finally:
            if client is not None:
                _close(client)
        self.pending = [r for r in self.pending if r not in self.results]

    def _failed(self, exc: Exception, client: smtplib.SMTP | None) -> None:
        """A transaction that failed as a whole, by where and how (most specific first: every SMTP error is
        an OSError too)."""
        if isinstance(exc, smtplib.SMTPResponseException):  # MAIL, DATA, or connect/EHLO/STARTTLS/AUTH refused
            if isinstance(exc, smtplib.SMTPSenderRefused):
                stage = "mail"
            elif isinstance(exc, smtplib.SMTPDataError):
                stage = "data"
            else:
                stage = getattr(exc, "stage", "connect")
            self._fail_all(exc.smtp_code, _reply_text(exc.smtp_code, exc.smtp_error), stage, _classify(exc.smtp_code))
        elif isinstance(exc, ssl.SSLCertVerificationError):  # configuration, not luck: retrying will not help
            self._fail_all(None, f"TLS certificate verification failed: {exc}", "connect", "failed")
        elif isinstance(exc, smtplib.SMTPException) and not isinstance(exc, smtplib.SMTPServerDisconnected):
            # e.g. STARTTLS or AUTH not supported by the server: configuration, final
            self._fail_all(None, f"{exc.__class__.__name__}: {scrub(exc)}", getattr(exc, "stage", "connect"), "failed")
        elif isinstance(exc, OSError):  # disconnected, refused, reset, a reply that timed out
            if client is not None and client.body_sent:
                # The body went out, the reply did not come back: maybe delivered. Never sent again here.
                lost = _lost(exc, self.settings)
                self._ambiguous(client, f"no reply after the message body ({lost}); it may have been delivered")
            else:
                self._fail_all(None, _lost(exc, self.settings), getattr(exc, "stage", "data"), "retry")
        else:
            raise exc

    def finish(self) -> dict[str, RecipientResult]:
        """Every recipient's outcome; those still pending after the last attempt are `retry`."""
        for r in self.pending:
            code, text, stage = self.last.get(r, (None, "not attempted", ""))
            self._result(r, "retry", code, text, stage)
        return {r: self.results[r] for r in self.ordered}


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
