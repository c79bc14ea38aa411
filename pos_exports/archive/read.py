"""Reading the archive back: what the reports are built from (never the POS)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pos_exports.archive.extract import marker_key, table_key
from pos_exports.archive.tables import DATASETS
from pos_exports.source.database import Business
from pos_exports.storage import Storage

BATCH_ROWS = 64 * 1024
BUSINESSES_KEY = "archive/businesses.json"


class ArchiveMissing(LookupError):
    """A business-day the archive does not hold (not archived yet, or never captured)."""


def archived(storage: Storage, dataset: str, business_id: int, day: dt.date) -> dict | None:
    """The reconciliation record of an archived business-day, or None."""
    key = marker_key(dataset, day, business_id)
    return json.loads(storage.read_bytes(key)) if storage.exists(key) else None


def missing_days(storage: Storage, dataset: str, business_id: int, days: list[dt.date]) -> list[dt.date]:
    return [d for d in days if archived(storage, dataset, business_id, d) is None]


def table_schema(dataset: str, table: str) -> pa.Schema:
    return next(t.schema for t in DATASETS[dataset].tables if t.name == table)


def read_batches(
    storage: Storage, dataset: str, table: str, business_id: int, days: list[dt.date], columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream one archive table over the given days, oldest first; a missing day is an error."""
    for day in days:
        if archived(storage, dataset, business_id, day) is None:
            raise ArchiveMissing(f"{dataset} for business {business_id} on {day} is not in the archive")
        with storage.local_copy(table_key(dataset, day, business_id, table)) as path:
            yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns)


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
