"""`manifest.json`: what a period folder holds, and what it was reconciled against.

One manifest per `exports/{business_id}/{period kind}/{period key}/`. It lists every file with its
dataset, format, bytes, SHA-256 and rows per section (a CSV file holds one table: `sales.csv`,
`sales-summary.csv`, `sales-line_items.csv` ... are each listed), the period's UTC window and time zone, and the
archive's reconciled source counts for the period, the summary figures and the email's `headline` per
dataset, and under `missing` each dataset that could not be
produced with its reason. It holds no wall-clock time, so re-rendering an
unchanged archive gives the same manifest.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from decimal import Decimal

from pos_exports.archive.read import archived
from pos_exports.archive.tables import SNAPSHOT_TABLES
from pos_exports.storage import Storage

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class FileEntry:
    name: str
    dataset: str
    format: str
    bytes: int
    sha256: str
    rows: dict[str, int]


def source_counts(storage: Storage, dataset: str, business_id: int, days: list[dt.date]) -> dict:
    """Rows and money sums per table that the archive reconciled with the POS, over the period's days."""
    out: dict[str, dict] = {}
    for day in days:
        record = archived(storage, dataset, business_id, day) or {"tables": []}
        for table in record["tables"]:
            if table["table"] in SNAPSHOT_TABLES and day != days[-1]:
                continue  # a snapshot counts once: as of the end of the period
            entry = out.setdefault(table["table"], {"rows": 0, "sums": {}})
            entry["rows"] += table["rows"]
            for column, value in table["sums"].items():
                entry["sums"][column] = str(Decimal(entry["sums"].get(column, "0")) + Decimal(value))
    return out


def read_manifest(storage: Storage, folder: str) -> dict | None:
    key = f"{folder}/{MANIFEST}"
    return json.loads(storage.read_bytes(key)) if storage.exists(key) else None


def write_manifest(
    storage: Storage,
    folder: str,
    header: dict,
    entries: list[FileEntry],
    sources: dict[str, dict],
    summaries: dict[str, list] | None = None,
    missing: dict[str, dict] | None = None,
    headlines: dict[str, list] | None = None,
) -> dict:
    """Merge this render's files into the folder's manifest (other datasets' entries are kept).

    `missing` records the datasets this render could not produce, `{dataset: {"reason", "detail"}}`;
    a dataset rendered again drops out of it. `headlines`: the figures the email shows per dataset
    (`exports.headline`).
    """
    current = read_manifest(storage, folder) or {}
    # a (dataset, format) rendered again is listed as this render made it (a CSV table dropped is no longer listed)
    rendered = {e.name for e in entries} | {(e.dataset, e.format) for e in entries}
    kept = [
        f for f in current.get("files", []) if f["name"] not in rendered and (f["dataset"], f["format"]) not in rendered
    ]
    files = kept + [asdict(e) for e in entries]
    attempted = {e.dataset for e in entries} | set(missing or {})
    gaps = {d: m for d, m in current.get("missing", {}).items() if d not in attempted} | (missing or {})
    document = {
        **header,
        "files": sorted(files, key=lambda f: f["name"]),
        "reconciled_source_counts": {**current.get("reconciled_source_counts", {}), **sources},
        "summary": {**current.get("summary", {}), **(summaries or {})},
        "headline": {**current.get("headline", {}), **(headlines or {})},
        **({"missing": dict(sorted(gaps.items()))} if gaps else {}),
    }
    storage.write_bytes(f"{folder}/{MANIFEST}", json.dumps(document, indent=2, sort_keys=True).encode())
    return document
