"""Reading the archive back: what the reports are built from (never the POS).

Every reader goes through the business-day's reconciliation record, whichever layout holds the day: in
the Delta tables (`archive/delta.py`: its record names the table versions, whose rows are checked against
the record's rows and money sums) or else in the folders (the manifest `_reconciliation.json`, written last:
only the files it names are read, each checked against its size and SHA-256 while it is read). Data that
does not match is an `ArchiveCorrupt` error naming it, never data read silently. A day migrated or
re-archived as Delta tables is read from them; a day not migrated yet still from its folder.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pos_exports.archive import delta
from pos_exports.archive.extract import MARKER, parse_manifest
from pos_exports.archive.index import archived_days  # noqa: F401 (the index's reader: coverage, readiness)
from pos_exports.archive.parquet import ArchiveCorrupt, open_verified
from pos_exports.archive.tables import DATASETS
from pos_exports.source.database import Business
from pos_exports.storage import Storage

BATCH_ROWS = 64 * 1024
BUSINESSES_KEY = "archive/businesses.json"


class ArchiveMissing(LookupError):
    """A business-day the archive does not hold (not archived yet, or never captured)."""


def archived(storage: Storage, dataset: str, business_id: int, day: dt.date) -> dict | None:
    """The reconciliation record of an archived business-day (Delta record, else folder manifest), or None."""
    return delta.current(storage, dataset, business_id, day)


def table_file(storage: Storage, dataset: str, business_id: int, day: dt.date, table: str) -> str | None:
    """The key of the file the business-day's manifest names for `table` (its current generation), or None."""
    manifest = archived(storage, dataset, business_id, day) or {}
    return next((t["key"] for t in manifest.get("tables", []) if t.get("table") == table), None)


def archived_business_ids(storage: Storage, dataset: str, day: dt.date) -> set[int]:
    """Businesses whose `dataset` on `day` is archived whole: a manifest whose every file is in storage with
    its size (one listing and one manifest read per business; the SHA-256 is checked when a file is read)."""
    ids = {b for d, b, on in delta.records(storage) if d == dataset and on == day}
    listing = storage.sizes(f"archive/{dataset}/date={day.isoformat()}/")
    for key in listing:
        folder, _, name = key.rpartition("/")
        business = folder.rpartition("/business_id=")[2]
        if name != MARKER or not business.lstrip("-").isdigit():
            continue
        try:
            manifest = parse_manifest(storage.read_bytes(key), storage.uri(key), dataset, day, int(business))
        except (ArchiveCorrupt, KeyError):
            continue
        if all(t["key"] in listing and listing[t["key"]] == t.get("bytes") for t in manifest.get("tables", [])):
            ids.add(int(business))
    return ids


def missing_days(storage: Storage, dataset: str, business_id: int, days: list[dt.date]) -> list[dt.date]:
    return [d for d in days if archived(storage, dataset, business_id, d) is None]


def table_schema(dataset: str, table: str) -> pa.Schema:
    return next(t.schema for t in DATASETS[dataset].tables if t.name == table)


def read_batches(
    storage: Storage, dataset: str, table: str, business_id: int, days: list[dt.date], columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream one archive table over the given days, oldest first; a missing day is an error."""
    for day in days:
        manifest = archived(storage, dataset, business_id, day)
        if manifest is None:
            raise ArchiveMissing(f"{dataset} for business {business_id} on {day} is not in the archive")
        if manifest.get("layout") == "delta":
            spec = next(t for t in DATASETS[dataset].tables if t.name == table)
            yield from delta.read_record_batches(storage, manifest, spec, columns, BATCH_ROWS)
            continue
        entry = next((t for t in manifest.get("tables", []) if t.get("table") == table), None)
        if entry is None or "sha256" not in entry or "bytes" not in entry:
            raise ArchiveCorrupt(
                f"the archive manifest of {dataset} {day} business {business_id} names no verifiable {table} file"
            )
        with open_verified(storage, entry["key"], entry["bytes"], entry["sha256"]) as data:
            yield from pq.ParquetFile(pa.BufferReader(data)).iter_batches(batch_size=BATCH_ROWS, columns=columns)


def read_table(
    storage: Storage, dataset: str, table: str, business_id: int, days: list[dt.date], columns: list[str] | None = None
) -> pa.Table:
    """A whole (small) archive table over the given days."""
    schema = table_schema(dataset, table)
    if columns:
        schema = pa.schema([schema.field(c) for c in columns])
    return pa.Table.from_batches(list(read_batches(storage, dataset, table, business_id, days, columns)), schema)


def save_businesses(storage: Storage, businesses: list[Business]) -> None:
    """Keep the businesses' names, zones and currencies beside the archive, so exports never need the POS."""
    document = [b.__dict__ for b in businesses]
    data = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode()
    if not storage.exists(BUSINESSES_KEY) or storage.read_bytes(BUSINESSES_KEY) != data:
        storage.write_bytes(BUSINESSES_KEY, data)


def load_businesses(storage: Storage) -> list[Business]:
    """The businesses as last seen by the archive (empty before the first archive run)."""
    if not storage.exists(BUSINESSES_KEY):
        return []
    return [Business(**b) for b in json.loads(storage.read_bytes(BUSINESSES_KEY))]
