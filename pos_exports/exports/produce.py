"""Render one business's period into storage: reports from the archive -> files -> manifest."""

from __future__ import annotations

import datetime as dt

from pos_exports.exports.manifest import FileEntry, source_counts, write_manifest
from pos_exports.render import RENDERERS
from pos_exports.reports import BUILDERS
from pos_exports.reports.model import Figure
from pos_exports.reports.period import Period
from pos_exports.source.database import Business
from pos_exports.storage import Storage
from pos_exports.storage.base import sha256_file


def period_folder(business_id: int, period: Period) -> str:
    return f"exports/{business_id}/{period.kind}/{period.key}"


def export_period(
    storage: Storage,
    business: Business,
    period: Period,
    datasets: list[str],
    formats: list[str],
    *,
    filters: dict[str, dict] | None = None,
    folder: str | None = None,
) -> tuple[str, list[FileEntry]]:
    """Build, render and publish every (dataset, format) of a business-period; update the manifest.

    Each file is published atomically; the manifest is written last, so it never lists a file that
    is not there. Returns the folder and the files written.
    """
    folder = folder or period_folder(business.id, period)
    entries: list[FileEntry] = []
    sources: dict[str, dict] = {}
    summaries: dict[str, list] = {}
    header: dict = {}
    for dataset in datasets:
        report = BUILDERS[dataset](storage, business, period, (filters or {}).get(dataset))
        for fmt in formats:
            name = f"{dataset}.{fmt}"
            with storage.staged(f"{folder}/{name}") as tmp:
                rows = RENDERERS[fmt](report, tmp)
                entries.append(FileEntry(name, dataset, fmt, tmp.stat().st_size, sha256_file(tmp), rows))
        sources[dataset] = source_counts(storage, dataset, business.id, period.days)
        summaries[dataset] = [[f.label, figure_text(f)] for f in report.summary]
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
            "window_utc": [_utc(report.window_start), _utc(report.window_end)],
            "generated_at": _utc(report.generated_at),
            **({"filters": {d: {k: str(v) for k, v in f.items()} for d, f in filters.items()}} if filters else {}),
        }
    write_manifest(storage, folder, header, entries, sources, summaries)
    return folder, entries


def figure_text(figure: Figure) -> str:
    """A summary figure as a reader sees it (manifest, email)."""
    value = figure.value
    if value is None:
        return ""
    if figure.kind == "money":
        return f"{value:,.2f}"
    if figure.kind == "percent":
        return f"{float(value) * 100:.2f} %"
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def _utc(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).isoformat()
