"""Render one business's period into storage: reports from the archive -> files -> manifest."""

from __future__ import annotations

import datetime as dt

from pos_exports.archive.read import ArchiveMissing, shared_reads
from pos_exports.archive.tables import DATASETS
from pos_exports.exports.headline import headline
from pos_exports.exports.manifest import FileEntry, source_counts, write_manifest
from pos_exports.failures import ON_OUR_SIDE, TEMPORARY
from pos_exports.render import render_files
from pos_exports.render.text import figure_text
from pos_exports.reports import BUILDERS
from pos_exports.reports.model import Figure
from pos_exports.reports.period import Period, span_label
from pos_exports.source.database import Business
from pos_exports.storage import Storage
from pos_exports.storage.base import sha256_file
from pos_exports.transient import is_transient


def period_folder(business_id: int, period: Period) -> str:
    return f"exports/{business_id}/{period.kind}/{period.key}"


SNAPSHOT_NAMES = {"customers": "customer list", "inventory": "stock list"}  # as a business says it


def export_period(
    storage: Storage,
    business: Business,
    period: Period,
    datasets: list[str],
    formats: list[str],
    *,
    filters: dict[str, dict] | None = None,
    folder: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[str, list[FileEntry]]:
    """Build, render and publish every (dataset, format) of a business-period; update the manifest.

    Each file is published atomically; the manifest is written last, so it never lists a file that
    is not there. Returns the folder and the files written; the first failure is raised. `now` is the instant
    a missing snapshot is judged by (can it still be captured?).
    """
    folder, entries, _ = _export(storage, business, period, datasets, formats, filters, folder, isolate=False, now=now)
    return folder, entries


def export_available(
    storage: Storage, business: Business, period: Period, files: list[tuple[str, str]], now: dt.datetime | None = None
) -> tuple[str, list[FileEntry], dict[str, Exception]]:
    """Like `export_period` for these (dataset, format), but a dataset that cannot be produced does not
    withhold the others.

    Returns the folder, the files written and the cause per dataset not produced; those are recorded
    under `missing` in the manifest with their plain-language reason (`plain_reason`).
    """
    datasets = list(dict.fromkeys(d for d, _ in files))
    formats = {d: [f for dd, f in files if dd == d] for d in datasets}
    return _export(storage, business, period, datasets, formats, None, None, isolate=True, now=now)


def plain_reason(dataset: str, period: Period, exc: BaseException) -> str:
    """Why a dataset's export could not be produced, in words its business can read."""
    if isinstance(exc, ArchiveMissing):
        if DATASETS[dataset].kind == "snapshot":
            return (
                f"the {SNAPSHOT_NAMES.get(dataset, dataset)} as of {span_label(period.last_day, period.last_day)} "
                "was not captured in time, and the point-of-sale system keeps no history of it"
            )
        return "some days of the period are not archived yet"
    return TEMPORARY if is_transient(exc) else ON_OUR_SIDE


def _export(storage, business, period, datasets, formats, filters, folder, *, isolate: bool, now=None):
    folder = folder or period_folder(business.id, period)
    entries: list[FileEntry] = []
    sources: dict[str, dict] = {}
    summaries: dict[str, list] = {}
    headlines: dict[str, list] = {}
    failed: dict[str, Exception] = {}
    with shared_reads():  # each business-day file is read once for the report's passes and every format
        for dataset in datasets:
            try:
                report = BUILDERS[dataset](storage, business, period, (filters or {}).get(dataset), now=now)
                for fmt in formats[dataset] if isinstance(formats, dict) else formats:
                    for name, write in render_files(report, fmt):  # CSV: one file per table
                        with storage.staged(f"{folder}/{name}") as tmp:
                            rows = write(tmp)
                            entries.append(FileEntry(name, dataset, fmt, tmp.stat().st_size, sha256_file(tmp), rows))
            except Exception as exc:
                if not isolate:
                    raise
                failed[dataset] = exc  # the formats already published stay listed: they are complete files
                continue
            sources[dataset] = source_counts(storage, dataset, business.id, period.days)
            summaries[dataset] = [[f.label, summary_text(f, business.timezone)] for f in report.summary]
            headlines[dataset] = headline(report)
    win = period.window(business.timezone)  # the reports' own window (and fixed document date)
    header = {
        "business_id": business.id,
        "business_name": business.name,
        "currency": business.currency,
        "timezone": business.timezone,
        "period": {
            "kind": period.kind,
            "key": period.key,
            "label": period.label,
            "first_day": period.first_day.isoformat(),
            "last_day": period.last_day.isoformat(),
        },
        "window_utc": [_utc(win.start), _utc(win.end)],
        "generated_at": _utc(win.end),
        **({"filters": {d: {k: str(v) for k, v in f.items()} for d, f in filters.items()}} if filters else {}),
    }
    missing = {
        d: {"reason": plain_reason(d, period, exc), "detail": f"{type(exc).__name__}: {exc}"}
        for d, exc in failed.items()
    }
    write_manifest(storage, folder, header, entries, sources, summaries, missing, headlines)
    return folder, entries, failed


def summary_text(figure: Figure, timezone: str) -> str:
    """A summary figure as a reader sees it in the manifest and the email: as the PDF shows it (`1,234.50`,
    `15.47%`, times in business time), one rule for both (`render.text.figure_text`)."""
    return figure_text(figure.value, figure.kind, timezone, display=True)


def _utc(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).isoformat()
