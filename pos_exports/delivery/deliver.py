"""One delivery: a subscription's period, rendered (or taken from the stored exports) and emailed once.

Plain function; the Dagster delivery job and the `trigger` / `resend` commands call it. The ledger
makes it safe to run again, also twice at once or after a crash: only the run that claimed a
recipient's row (`ledger.claim_sending`) sends to it, and an ambiguous outcome is `unknown`, never
sent again without an explicit resend.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from pos_exports import config
from pos_exports.archive import capture
from pos_exports.archive.read import ArchiveMissing, archived_days
from pos_exports.archive.tables import DATASETS
from pos_exports.core.errors import ErrorKind
from pos_exports.delivery import ledger, notify
from pos_exports.delivery.email import (
    Attachment,
    RecipientResult,
    SmtpSettings,
    ascii_mail_filename,
    build_message,
    mail_filename,
    message_id_for,
    render_content,
    send,
    zip_files,
)
from pos_exports.delivery.links import email_links
from pos_exports.delivery.subscriptions import Subscription, filters_for, get_settings
from pos_exports.exports.manifest import read_manifest
from pos_exports.exports.produce import export_period, period_folder, plain_reason
from pos_exports.render.csvs import SUMMARY
from pos_exports.reports.model import COMPARISON
from pos_exports.reports.period import Period, period_for
from pos_exports.source.database import Business
from pos_exports.state import engine
from pos_exports.storage import Storage
from pos_exports.transient import is_transient

CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
    "pdf": "application/pdf",
    "zip": "application/zip",
}
DEFAULT_FROM = "exports@pos-exports.invalid"


@dataclass
class DeliveryOutcome:
    status: str  # "sent" | "already_sent" | "skipped_no_data" | "partial" | "failed" | "unknown"
    folder: str = ""
    results: dict = field(default_factory=dict)
    message: str = ""
    missing: list[str] = field(default_factory=list)  # "customers 2025-11-30: snapshot never captured: lost ..."


@dataclass(frozen=True)
class ArchiveGap:
    """A (dataset, day) a period needs that the archive index lacks."""

    dataset: str
    day: dt.date
    lost: bool = False  # a snapshot past its capture window (`archive.capture`): it will never be archived

    def __str__(self) -> str:
        return f"{self.dataset} {self.day}"


Wanted = tuple[Subscription, int, str, Period]  # subscription, business id, business zone, period


def archive_gaps(wanted: Sequence[Wanted], now: dt.datetime, eng=None) -> list[list[ArchiveGap]]:
    """What each (subscription, business, zone, period) lacks in the archive, from the state database's index
    alone: one query per dataset for all of them, no storage call (the index may lag storage, never lead it:
    a day it lacks is archived again by the catch-up, which indexes it). A snapshot past its capture window is
    `lost`: waiting for it would be waiting forever."""
    eng = eng or engine()
    need: dict[str, tuple[set[int], set[dt.date]]] = {}
    days_of: list[dict[str, list[dt.date]]] = []
    for sub, business_id, _, period in wanted:
        days = {n: period.days if DATASETS[n].kind == "event" else period.days[-1:] for n in sub.datasets}
        days_of.append(days)
        for name, ds in days.items():
            ids, all_days = need.setdefault(name, (set(), set()))
            ids.add(business_id)
            all_days.update(ds)
    have = {name: archived_days(eng, name, ids, ds) for name, (ids, ds) in need.items()}
    out = []
    for (_, business_id, zone, _), days in zip(wanted, days_of, strict=True):
        gaps = []
        for name, ds in days.items():
            for d in ds:
                if (business_id, d) not in have[name]:
                    snapshot = DATASETS[name].kind == "snapshot"
                    lost = snapshot and capture.snapshot_capture(d, zone).state(now) == capture.LOST
                    gaps.append(ArchiveGap(name, d, lost))
        out.append(gaps)
    return out


def missing_archive(
    sub: Subscription, business_id: int, zone: str, period: Period, now: dt.datetime
) -> list[ArchiveGap]:
    """What one period lacks in the archive (`archive_gaps`; empty: complete)."""
    return archive_gaps([(sub, business_id, zone, period)], now)[0]


def archive_ready(sub: Subscription, business_id: int, zone: str, period: Period, now: dt.datetime) -> list[str]:
    """What the period still waits for in the archive at `now`, as `"sales 2025-03-07"` (empty: ready to deliver;
    a snapshot lost for good is not waited for, the delivery says it is missing)."""
    return [str(g) for g in missing_archive(sub, business_id, zone, period, now) if not g.lost]


def archive_missing_message(business_id: int, missing: list[ArchiveGap]) -> str:
    """One line saying what is missing and the command that archives it (a permanent failure, not retried)."""
    days = sorted({g.day for g in missing})
    datasets = [n for n in DATASETS if n in {g.dataset for g in missing}]
    span = days[0].isoformat() if len(days) == 1 else f"{days[0]} to {days[-1]} ({len(days)} days)"
    command = f"pos-exports archive --date {days[0]}" + (f" --to {days[-1]}" if len(days) > 1 else "")
    command += "".join(f" --dataset {n}" for n in datasets) + f" --business-id {business_id}"
    return (
        f"the archive of {span} is not there yet ({', '.join(datasets)} of business {business_id}): "
        f"run `{command}` (or wait for the daily archive), then deliver again"
    )


def sender_address(smtp: SmtpSettings | None) -> str:
    """The From address of export emails (and the domain of their Message-IDs)."""
    return smtp.from_address if smtp and smtp.from_address else DEFAULT_FROM


def size_budget() -> int:
    return int(config.settings().email_max_mb * 1024 * 1024)


def deliver(
    eng: sa.Engine,
    storage: Storage,
    sub: Subscription,
    business: Business,
    period_kind: str,
    period_key: str,
    *,
    run_id: str,
    smtp: SmtpSettings | None,
    outbox_dir: Path,
    sleep=None,
    resend: bool = False,
    recipients: list[str] | None = None,
    clock: Callable[[], dt.datetime],
    now: dt.datetime | None = None,
) -> DeliveryOutcome:
    """Deliver `sub` for one period; every step is recorded per recipient in the ledger.

    `clock` is the caller's clock (the ClockResource's `now`): the outcomes are stamped with `clock()` as they
    happen, so the history says when each message went out, not when the batch began. `now` is when the
    delivery starts (what is due, what the archive holds; default `clock()`).

    Raises ArchiveMissing (with `archive_missing_message`) before anything is written when the
    period's archive is incomplete. A snapshot past its capture window never comes: the period is delivered
    without it (said in the email, the ledger's `missing` and the outcome), or, when nothing else is asked for,
    ArchiveMissing says so. Each recipient gets its own message with a stable Message-ID
    (`message_id_for`), sent only after `ledger.claim_sending` succeeded. `resend` also sends to the
    recipients whose outcome is `unknown` (they may get a second copy); `recipients` limits the delivery.
    """
    period = period_for(period_kind, period_key)
    now = now or clock()
    gaps, lost, datasets = _deliverable(sub, business, period, now)
    from_address = sender_address(smtp)
    rows = ledger.open_rows(eng, sub.id, business.id, period.kind, period.key, sub.recipients, run_id, now=now)
    if gone := ledger.expire_claims(eng, rows, now):  # claimed by a run that died before recording the outcome
        alert_unknown(eng, gone, from_address, now=now)
        rows = ledger.open_rows(eng, sub.id, business.id, period.kind, period.key, sub.recipients, run_id, now=now)
    if recipients is not None:
        wanted = {ledger.normalize_recipient(r) for r in recipients}
        rows = [r for r in rows if r["recipient"] in wanted]
    pending = set(ledger.pending_recipients(rows, resend=resend, now=now))
    if not pending:
        unknown = [r["recipient"] for r in rows if r["status"] == "unknown"]
        if unknown:
            _flush(eng, smtp, outbox_dir, sleep, bool(gone), now)
            return DeliveryOutcome(
                "unknown",
                message=f"the outcome for {', '.join(unknown)} is unknown; not sent again "
                f"(`pos-exports resend {sub.id} --period {period.key}` sends it again, at the risk of a second copy)",
            )
        return DeliveryOutcome("already_sent", message="every recipient was already emailed (or is being emailed)")
    ids = ledger.mark_processing(
        eng, [r["id"] for r in rows if r["recipient"] in pending], run_id, resend=resend, now=now
    )
    claimed = [r for r in rows if r["id"] in ids]
    if not claimed:
        return DeliveryOutcome("already_sent", message="another run is delivering this period")
    try:
        folder, manifest = _files(storage, sub, business, period, datasets, now)
        files = [f for f in manifest["files"] if f["dataset"] in datasets and f["format"] in sub.formats]
        total = sum(f["bytes"] for f in files)
        ledger.mark_completed(eng, ids, [_file_record(storage, folder, f) for f in files], total, lost, now=clock())
        if sub.only_if_data and not _has_data(files):
            ledger.mark_skipped(eng, ids, "skipped: no data in the period (only_if_data)", now=now)
            return DeliveryOutcome("skipped_no_data", folder, message="no data in the period; nothing sent")
        settings = get_settings(eng, business.id)
        messages = _messages(
            settings, storage, sub, business, period, folder, manifest, files, claimed, from_address, gaps, now, clock
        )
        results = _send_claimed(eng, messages, run_id, smtp, outbox_dir, sleep, clock)
    except Exception as exc:
        kind = ErrorKind.of(is_transient(exc))  # the retry sensor takes transient ones again
        ledger.mark_failed(eng, ids, f"{type(exc).__name__}: {exc}", traceback.format_exc(), kind=kind, now=clock())
        raise
    sent = [r for r, res in results.items() if res.status == "emailed"]
    unknown = [r for r, res in results.items() if res.status == "unknown"]
    if unknown:
        alert_unknown(
            eng,
            [
                {**row, "error": ledger.UNKNOWN + results[row["recipient"]].response}
                for row in claimed
                if row["recipient"] in unknown
            ],
            from_address,
            now=now,
        )
    if sent and settings.notify_success:
        notify.queue(
            eng,
            "success",
            f"Delivered: {sub.name} for {period.label}",
            f"The {', '.join(sub.datasets)} export of {business.name} for {period.label} ({business.timezone}) "
            f"was emailed to {', '.join(sent)}.\nFiles: {', '.join(f['name'] for f in files)}",
            list(settings.default_recipients),
            business.id,
            now=now,
        )
    _flush(eng, smtp, outbox_dir, sleep, bool(unknown or gone or (sent and settings.notify_success)), now)
    return _outcome(folder, results, sent, unknown, lost)


def _deliverable(
    sub: Subscription, business: Business, period: Period, now: dt.datetime
) -> tuple[list, list[dict], list[str]]:
    """(gaps, lost snapshots, datasets to deliver); ArchiveMissing when the archive is still to come or nothing
    is left. A snapshot never captured will never be: the period goes without it, saying what and why."""
    gaps = missing_archive(sub, business.id, business.timezone, period, now)
    if waiting := [g for g in gaps if not g.lost]:
        raise ArchiveMissing(archive_missing_message(business.id, waiting))
    lost = [
        {
            "dataset": g.dataset,
            "day": g.day.isoformat(),
            "reason": "snapshot " + capture.snapshot_capture(g.day, business.timezone).note(now),
        }
        for g in gaps
    ]
    datasets = [d for d in sub.datasets if d not in {g.dataset for g in gaps}]
    if not datasets:
        raise ArchiveMissing(
            f"nothing to deliver for {period.label}: "
            + "; ".join(f"{m['dataset']} {m['day']}: {m['reason']}" for m in lost)
        )
    return gaps, lost, datasets


def _send_claimed(
    eng, messages, run_id: str, smtp, outbox_dir: Path, sleep, clock: Callable[[], dt.datetime]
) -> dict[str, RecipientResult]:
    """Send each message whose row this run claims (`ledger.claim_sending`), recording each outcome."""
    results: dict[str, RecipientResult] = {}
    for row, message in messages:
        if not ledger.claim_sending(eng, row["id"], run_id, now=clock()):
            continue  # another run took this recipient over: only the claimant sends
        try:
            res = send(message, [row["recipient"]], smtp, outbox_dir, **({"sleep": sleep} if sleep else {}))
        except Exception as exc:  # after the claim, an unexpected error may have left a message behind
            res = {row["recipient"]: RecipientResult("unknown", None, f"{type(exc).__name__}: {exc}", 1, "", "")}
        results[row["recipient"]] = res[row["recipient"]]
        ledger.record_result(eng, row["id"], run_id, results[row["recipient"]], now=clock())
    return results


def _outcome(folder: str, results: dict, sent: list[str], unknown: list[str], lost: list[dict]) -> DeliveryOutcome:
    if unknown:
        status = "unknown"
    elif results and len(sent) == len(results):
        status = "sent"
    else:
        status = "partial" if sent else ("failed" if results else "already_sent")
    text = f"{len(sent)} of {len(results)} recipient(s) emailed"
    missing = [f"{m['dataset']} {m['day']}: {m['reason']}" for m in lost]
    if missing:
        text += "; not included (never archived): " + "; ".join(missing)
    if unknown:
        who = ", ".join(unknown)
        text += f"; the outcome for {who} is unknown (not sent again; see `pos-exports resend`)"
    return DeliveryOutcome(status, folder, results, text, missing)


def _flush(eng: sa.Engine, smtp: SmtpSettings | None, outbox_dir: Path, sleep, queued: bool, now: dt.datetime) -> None:
    if queued:
        notify.flush(eng, smtp, outbox_dir, sleep=sleep, now=now)


def alert_unknown(eng: sa.Engine, rows: list[dict], from_address: str = DEFAULT_FROM, *, now: dt.datetime) -> None:
    """Tell the data team which recipients may or may not have an export, and how to send it again.

    `rows`: ledger rows (subscription_id, business_id, period_kind, period_key, recipient, error).
    """
    by_delivery: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["subscription_id"], row["business_id"], row["period_kind"], row["period_key"])
        by_delivery.setdefault(key, []).append(row)
    for (sub_id, business_id, kind, key), items in by_delivery.items():
        lines = [
            f"The {kind} export of subscription {sub_id} (business {business_id}) for "
            f"{period_for(kind, key).label} may or may not have reached these recipients:",
            "",
        ]
        for row in items:
            mid = message_id_for(sub_id, kind, key, row["recipient"], from_address)
            lines.append(f"- {row['recipient']} (Message-ID {mid}): {row.get('error') or 'outcome unknown'}")
        lines += [
            "",
            "Not sent again automatically: ask the recipient, or look for the Message-ID in the mail log.",
            f"To send it again (the recipient may then have it twice): `pos-exports resend {sub_id} --period {key} "
            "--yes`, or launch delivery_job with `resend_unknown: true`.",
        ]
        notify.queue(
            eng,
            "failure",
            f"[pos_exports] delivery outcome unknown: subscription {sub_id} {key}",
            "\n".join(lines),
            notify.data_team(),
            business_id,
            now=now,
        )


def _files(
    storage: Storage, sub: Subscription, business: Business, period: Period, datasets: list[str], now: dt.datetime
) -> tuple[str, dict]:
    """The period's stored exports of `datasets` when they fit the subscription (no filters), else a filtered
    render."""
    filters = {name: f for name in datasets if (f := filters_for(sub, name))}
    if filters:
        folder = f"exports/{business.id}/subscriptions/{sub.id}/{period.kind}/{period.key}"
        export_period(storage, business, period, datasets, sub.formats, filters=filters, folder=folder, now=now)
        return folder, read_manifest(storage, folder)
    folder = period_folder(business.id, period)
    manifest = read_manifest(storage, folder) or {"files": []}
    have = {(f["dataset"], f["format"]) for f in manifest["files"]}
    need = [d for d in datasets if any((d, fmt) not in have for fmt in sub.formats)]
    if need:  # the period assets have not rendered these yet: render them where they belong
        export_period(storage, business, period, need, sorted({*sub.formats}), folder=folder, now=now)
        manifest = read_manifest(storage, folder)
    return folder, manifest


_NOT_PERIOD_DATA = frozenset({SUMMARY, COMPARISON})  # sections with rows whatever the period holds


def _has_data(files: list[dict]) -> bool:
    return any(n for f in files if f["format"] == "csv" for k, n in f["rows"].items() if k not in _NOT_PERIOD_DATA)


def _file_record(storage: Storage, folder: str, f: dict) -> dict:
    keep = ("name", "dataset", "format", "bytes", "sha256")
    return {**{k: f[k] for k in keep}, "uri": storage.uri(f"{folder}/{f['name']}")}


def manage_line(sub: Subscription, contact: str | None) -> str:
    """How a recipient changes or stops the subscription (closes every export email)."""
    who = f"write to {contact}" if contact else "ask the team that runs your POS exports"
    return (
        f'You receive this through the {sub.frequency} subscription "{sub.name}" (number {sub.id}). '
        f"To change or stop it, {who}."
    )


def email_summary(manifest: dict, datasets: Sequence[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(heading, figures) per dataset for the email: the manifest's `headline` (`exports.headline`); a manifest
    written before headlines existed gives its first summary figures."""
    groups = []
    for name in datasets:
        rows = manifest.get("headline", {}).get(name)
        if rows is None:
            rows = manifest.get("summary", {}).get(name, [])[:6]
        groups.append((dataset_words(name).capitalize(), [(str(label), str(value)) for label, value in rows]))
    return groups


def dataset_words(name: str) -> str:
    """A dataset's name in words, for subjects and headings: `audit_log` -> `audit log`."""
    return name.replace("_", " ")


def _zipped(stack: contextlib.ExitStack, business, period: Period, files: list[dict], linked: list[Attachment]):
    """The attachments: each file as it is, but a dataset's CSV files (one per table) in one zip,
    `{business}_{dataset}_{period}.csv.zip`, holding them under their ASCII mail names (the main table and the
    summary first)."""
    csvs: dict[str, list[tuple[dict, Attachment]]] = {}
    for f, att in zip(files, linked, strict=True):
        if f["format"] == "csv":
            csvs.setdefault(f["dataset"], []).append((f, att))
    out: list[Attachment] = []
    for f, att in zip(files, linked, strict=True):
        group = csvs.get(f["dataset"], []) if f["format"] == "csv" else []
        if len(group) <= 1:
            out.append(att)
        elif f is group[0][0]:  # the zip takes the place of the dataset's first CSV file
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pos-mail-")))
            members = [(g["name"], m.path) for g, m in group]
            path = csv_zip(business, period.key, f["dataset"], members, folder)
            name = mail_filename(business.name, f"{f['dataset']}.csv.zip", period.key)
            out.append(Attachment(name, path, "", path.stat().st_size, CONTENT_TYPES["zip"], path.name))
    return out


def csv_zip(business: Business, period_key: str, dataset: str, members: list[tuple[str, Path]], folder: Path) -> Path:
    """A dataset's CSV tables (stored name, file) in one zip as the email attaches it: in `folder`, named
    `{business}_{dataset}_{period}.csv.zip`, holding them under their ASCII mail names (the main table and the
    summary first), with fixed timestamps: the same files give the same zip."""
    first = (f"{dataset}.csv", f"{dataset}-summary.csv")  # the main table, then its summary, then the rest
    ordered = sorted(members, key=lambda m: (*(m[0] != n for n in first), m[0]))
    named = [(ascii_mail_filename(business.name, business.id, n, period_key), p) for n, p in ordered]
    return zip_files(named, folder / ascii_mail_filename(business.name, business.id, f"{dataset}.csv.zip", period_key))


def _messages(settings, storage, sub, business, period, folder, manifest, files, rows, from_address, gaps, now, clock):
    """(row, message) for each claimed row: one message per recipient, with its stable Message-ID; `gaps`: the
    datasets not included, each said in plain words (`plain_reason`, as the exports' manifest does). With a
    public URL, each carries its recipient's signed download and one-click unsubscribe links (`delivery.links`)."""
    missing = [f"{plain_reason(g.dataset, period, ArchiveMissing())}." for g in gaps]
    missing = [m[0].upper() + m[1:] for m in missing]
    link = getattr(storage, "presigned_url", storage.uri)  # S3: a link that works for a week
    summary = email_summary(manifest, sub.datasets)
    context = {
        "business_name": business.name,
        "period_label": period.label,
        "period_key": period.key,
        "frequency": sub.frequency,
        "datasets": ", ".join(dataset_words(d) for d in sub.datasets),  # "audit log", as the reader says it
        # The period is the business's days: always stated in its zone (the subscription's only sets the hour).
        "timezone": business.timezone,
        "subscription_name": sub.name,
    }
    with contextlib.ExitStack() as stack:  # S3 files are downloaded for the time of sending
        linked = [
            Attachment(
                mail_filename(business.name, f["name"], period.key),
                stack.enter_context(storage.local_copy(f"{folder}/{f['name']}")),
                link(f"{folder}/{f['name']}"),
                f["bytes"],
                CONTENT_TYPES[f["format"]],
                ascii_mail_filename(business.name, business.id, f["name"], period.key),
            )
            for f in files
        ]
        attachments = _zipped(stack, business, period, files, linked)
        team = notify.data_team()
        reply_to = settings.reply_to or (team[0] if team else None)
        for row in rows:
            unsubscribe = None
            if team:  # RFC 2369: a mail to the data team naming the subscription and the recipient
                unsubscribe = f"mailto:{team[0]}?subject=" + quote(
                    f"Unsubscribe subscription {sub.id} {row['recipient']}"
                )
            content = render_content(
                subject_template=sub.subject_template,
                message_template=sub.message_template,
                context=context,
                summary_groups=summary,
                files=attachments,
                linked=linked,
                to=[row["recipient"]],
                from_name=settings.from_name,
                from_address=from_address,
                reply_to=reply_to,
                size_budget_bytes=size_budget(),
                manage=manage_line(sub, reply_to),
                unsubscribe=unsubscribe,
                missing=missing,
                links=email_links(row["id"], sub.id, row["recipient"], now),
            )
            mid = message_id_for(sub.id, period.kind, period.key, row["recipient"], from_address)
            yield row, build_message(content, now=clock(), message_id=mid)  # dated when it is built and sent
