"""One delivery: a subscription's period, rendered (or taken from the stored exports) and emailed once.

Plain function; the Dagster delivery job and the `trigger` command call it. The ledger makes it
safe to run again: recipients already `emailed` are never sent to twice.
"""

from __future__ import annotations

import contextlib
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from pos_exports import config
from pos_exports.archive.read import ArchiveMissing, archived
from pos_exports.archive.tables import DATASETS
from pos_exports.automation.retries import is_transient
from pos_exports.delivery import ledger, notify
from pos_exports.delivery.email import Attachment, SmtpSettings, build_message, render_content, send
from pos_exports.delivery.subscriptions import Subscription, filters_for, get_settings
from pos_exports.exports.manifest import read_manifest
from pos_exports.exports.produce import export_period, period_folder
from pos_exports.reports.period import Period, period_for
from pos_exports.source.database import Business
from pos_exports.storage import Storage

CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
    "pdf": "application/pdf",
}
DEFAULT_FROM = "exports@pos-exports.invalid"


@dataclass
class DeliveryOutcome:
    status: str  # "sent" | "already_sent" | "skipped_no_data" | "partial" | "failed"
    folder: str = ""
    results: dict = field(default_factory=dict)
    message: str = ""


def archive_ready(storage: Storage, sub: Subscription, business_id: int, period: Period) -> list[str]:
    """What the period still lacks in the archive (empty: ready to deliver)."""
    missing = []
    for name in sub.datasets:
        days = period.days if DATASETS[name].kind == "event" else period.days[-1:]
        missing += [f"{name} {d}" for d in days if archived(storage, name, business_id, d) is None]
    return missing


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
) -> DeliveryOutcome:
    """Deliver `sub` for one period; every step is recorded per recipient in the ledger."""
    period = period_for(period_kind, period_key)
    rows = ledger.open_rows(eng, sub.id, business.id, period.kind, period.key, sub.recipients, run_id)
    pending = set(ledger.pending_recipients(rows))
    if not pending:
        return DeliveryOutcome("already_sent", message="every recipient was already emailed")
    ids = ledger.mark_processing(eng, [r["id"] for r in rows if r["recipient"] in pending], run_id)
    claimed = [r["recipient"] for r in rows if r["id"] in ids]
    if not claimed:
        return DeliveryOutcome("already_sent", message="another run is delivering this period")
    try:
        missing = archive_ready(storage, sub, business.id, period)
        if missing:
            raise ArchiveMissing(f"the archive does not hold {', '.join(missing[:5])} yet")
        folder, manifest = _files(storage, sub, business, period)
        files = [f for f in manifest["files"] if f["dataset"] in sub.datasets and f["format"] in sub.formats]
        total = sum(f["bytes"] for f in files)
        ledger.mark_completed(eng, ids, [_file_record(storage, folder, f) for f in files], total)
        if sub.only_if_data and not _has_data(files):
            ledger.mark_failed(eng, ids, "skipped: no data in the period (only_if_data)")
            return DeliveryOutcome("skipped_no_data", folder, message="no data in the period; nothing sent")
        settings = get_settings(eng, business.id)
        results = _send(
            settings, storage, sub, business, period, folder, manifest, files, claimed, smtp, outbox_dir, sleep
        )
    except Exception as exc:
        prefix = ledger.TEMPORARY if is_transient(exc) else ""  # the retry sensor takes temporary ones again
        ledger.mark_failed(eng, ids, f"{prefix}{type(exc).__name__}: {exc}", traceback.format_exc())
        raise
    ledger.record_results(eng, sub.id, period.key, results)
    sent = [r for r, res in results.items() if res.status == "emailed"]
    status = "sent" if len(sent) == len(results) else ("partial" if sent else "failed")
    if sent and settings.notify_success:
        notify.queue(
            eng,
            "success",
            f"Delivered: {sub.name} for {period.label}",
            f"The {', '.join(sub.datasets)} export of {business.name} for {period.label} ({business.timezone}) "
            f"was emailed to {', '.join(sent)}.\nFiles: {', '.join(f['name'] for f in files)}",
            list(settings.default_recipients),
            business.id,
        )
        notify.flush(eng, smtp, outbox_dir, sleep=sleep)
    return DeliveryOutcome(status, folder, results, f"{len(sent)} of {len(results)} recipient(s) emailed")


def _files(storage: Storage, sub: Subscription, business: Business, period: Period) -> tuple[str, dict]:
    """The period's stored exports when they fit the subscription (no filters), else a filtered render."""
    filters = {name: f for name in sub.datasets if (f := filters_for(sub, name))}
    if filters:
        folder = f"exports/{business.id}/subscriptions/{sub.id}/{period.kind}/{period.key}"
        export_period(storage, business, period, sub.datasets, sub.formats, filters=filters, folder=folder)
        return folder, read_manifest(storage, folder)
    folder = period_folder(business.id, period)
    manifest = read_manifest(storage, folder) or {"files": []}
    have = {(f["dataset"], f["format"]) for f in manifest["files"]}
    need = [d for d in sub.datasets if any((d, fmt) not in have for fmt in sub.formats)]
    if need:  # the period assets have not rendered these yet: render them where they belong
        export_period(storage, business, period, need, sorted({*sub.formats}), folder=folder)
        manifest = read_manifest(storage, folder)
    return folder, manifest


def _has_data(files: list[dict]) -> bool:
    return any(n for f in files if f["format"] == "csv" for k, n in f["rows"].items() if k != "summary")


def _file_record(storage: Storage, folder: str, f: dict) -> dict:
    keep = ("name", "dataset", "format", "bytes", "sha256")
    return {**{k: f[k] for k in keep}, "uri": storage.uri(f"{folder}/{f['name']}")}


def _send(
    settings, storage, sub, business, period, folder, manifest, files, recipients, smtp, outbox_dir, sleep
) -> dict:
    link = getattr(storage, "presigned_url", storage.uri)  # S3: a link that works for a week
    summary = [
        (f"{name}: {label}", value)
        for name in sub.datasets
        for label, value in manifest.get("summary", {}).get(name, [])[:6]
    ]
    context = {
        "business_name": business.name,
        "period_label": period.label,
        "period_key": period.key,
        "frequency": sub.frequency,
        "datasets": ", ".join(sub.datasets),
        "timezone": sub.timezone or business.timezone,
        "subscription_name": sub.name,
    }
    with contextlib.ExitStack() as stack:  # S3 files are downloaded for the time of sending
        attachments = [
            Attachment(
                f["name"],
                stack.enter_context(storage.local_copy(f"{folder}/{f['name']}")),
                link(f"{folder}/{f['name']}"),
                f["bytes"],
                CONTENT_TYPES[f["format"]],
            )
            for f in files
        ]
        content = render_content(
            subject_template=sub.subject_template,
            message_template=sub.message_template,
            context=context,
            summary=summary,
            files=attachments,
            to=recipients,
            from_name=settings.from_name,
            from_address=(smtp.from_address if smtp and smtp.from_address else DEFAULT_FROM),
            reply_to=settings.reply_to,
            size_budget_bytes=size_budget(),
        )
        return send(build_message(content), recipients, smtp, outbox_dir, **({"sleep": sleep} if sleep else {}))
