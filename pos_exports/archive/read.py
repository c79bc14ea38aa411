"""Reading the archive back: what the reports are built from (never the POS).

Every reader goes through the business-day's reconciliation record, whichever layout holds the day: in
the Delta tables (`archive/delta.py`: its record names the table versions, whose rows are checked against
the record's rows and money sums) or else in the folders (the manifest `_reconciliation.json`, written last:
only the files it names are read, each checked against its size and SHA-256 while it is read). Data that
does not match is an `ArchiveCorrupt` error naming it, never data read silently. A day migrated or
re-archived as Delta tables is read from them; a day not migrated yet still from its folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from pos_exports.archive import delta
from pos_exports.archive.parquet import ArchiveCorrupt, open_verified
from pos_exports.archive.tables import DATASETS
from pos_exports.source.database import Business
from pos_exports.storage import Storage

BATCH_ROWS = 64 * 1024
BUSINESSES_KEY = "archive/businesses.json"
# Decoded Arrow memory the shared reads of a scope may keep (peak RSS): one budget for a run's Delta row groups
# (`shared_days`) and the files and sections of the export being built in it (`shared_reads`) together.
SHARED_READ_BYTES = 256 * 1024 * 1024


def __getattr__(name: str):
    """`archived_days` (the index's reader: coverage, readiness) is still importable from here, but imported
    only when asked for: the index needs SQLAlchemy and the state database, which rendering does not."""
    if name == "archived_days":
        from pos_exports.archive.index import archived_days

        return archived_days
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ArchiveMissing(LookupError):
    """A business-day the archive does not hold (not archived yet, or never captured)."""


@dataclass
class _Shared:
    days: delta.DayReads  # the enclosing `shared_days` scope: its records, row groups and budget
    manifests: dict[tuple, dict | None] = field(default_factory=dict)
    tables: dict[tuple, pa.Table] = field(default_factory=dict)
    batches: dict[object, list[pa.RecordBatch]] = field(default_factory=dict)  # see `shared_batches`
    used: int = 0


_SHARED: ContextVar[_Shared | None] = ContextVar("pos_exports_shared_reads", default=None)
_DAYS: ContextVar[delta.DayReads | None] = ContextVar("pos_exports_shared_days", default=None)


@contextlib.contextmanager
def shared_days(budget: int = SHARED_READ_BYTES) -> Iterator[None]:
    """Within this block (a run that reads many businesses: an exports run) the Delta reconciliation
    records are read once, and each row group of a Delta table-day at the version the records name is
    decoded once and sliced per business, so that a business's read costs the same whatever the fleet's
    size (`delta.DayReads`; within `budget` bytes of decoded row groups, beyond it a row group is read for
    the one business that needs it).
    Every business's rows are still checked against its own record. A record committed after the block
    began is not seen in it (as a `shared_reads` block keeps the manifests it read). Nested blocks share
    the outer one."""
    if _DAYS.get() is not None:
        yield
        return
    token = _DAYS.set(delta.DayReads(budget))
    try:
        yield
    finally:
        _DAYS.reset(token)


@contextlib.contextmanager
def shared_reads(budget: int = SHARED_READ_BYTES) -> Iterator[None]:
    """Within this block (one export) each business-day record or manifest and each file is read, verified
    and decoded once, however often the reports ask for it (a report's first pass and its sections, once
    per rendered format), and each report section is built once for all formats (`shared_batches`).

    It opens a `shared_days` scope when none is open (an export on its own: the CLI, an on-demand or a
    delivery run), so the Delta records are read once per export, not once per lookup. What it keeps counts
    against that scope's one budget (`budget` when it opens the scope; within a run, the run's), first come
    first kept; past it files are read from storage each time, as outside the block, and on leaving the
    block its files and sections are dropped. Nested blocks share the outer one.
    """
    if _SHARED.get() is not None:
        yield
        return
    with shared_days(budget):
        shared = _Shared(_DAYS.get())
        token = _SHARED.set(shared)
        try:
            yield
        finally:
            _SHARED.reset(token)
            shared.days.used -= shared.used


def shared_batches(token: object, produce: Callable[[], Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
    """`produce()`'s batches; within a `shared_reads` block the batches of a first complete pass are kept
    (within the budget) and handed out again to later passes with the same `token`: a report section is
    then built once for all the formats rendered from it."""
    shared = _SHARED.get()
    if shared is None:
        yield from produce()
        return
    kept = shared.batches.get(token)
    if kept is not None:
        yield from kept
        return
    collected: list[pa.RecordBatch] | None = []
    size = 0
    for batch in produce():
        if collected is not None:
            size += batch.nbytes
            if shared.days.used + size <= shared.days.budget:
                collected.append(batch)
            else:
                collected = None  # too big to keep: later passes build it again
        yield batch
    if collected is not None:  # reached only when the caller read every batch
        shared.batches[token] = collected
        _keep(shared, size)


def _keep(shared: _Shared, size: int) -> None:
    shared.used += size
    shared.days.used += size


def archived(storage: Storage, dataset: str, business_id: int, day: dt.date) -> dict | None:
    """The reconciliation record of an archived business-day (Delta record, else folder manifest), or None;
    read once within a `shared_reads` block."""
    shared, days = _SHARED.get(), _DAYS.get()
    found = days.records(storage) if days is not None else None
    if shared is None:
        return delta.current(storage, dataset, business_id, day, found)
    key = (id(storage), dataset, business_id, day)
    if key not in shared.manifests:
        shared.manifests[key] = delta.current(storage, dataset, business_id, day, found)
    return shared.manifests[key]


def _shared_table(storage: Storage, entry: dict) -> pa.Table | None:
    """The whole decoded file of a manifest entry when a `shared_reads` block keeps it (None: read it)."""
    shared = _SHARED.get()
    if shared is None:
        return None
    key = (id(storage), entry["key"])
    table = shared.tables.get(key)
    if table is None and shared.days.used < shared.days.budget:
        with open_verified(storage, entry["key"], entry["bytes"], entry["sha256"]) as data:
            table = pq.ParquetFile(pa.py_buffer(data.to_pybytes())).read()  # a copy: the map closes, the table stays
        shared.tables[key] = table
        _keep(shared, table.nbytes)
    return table


def table_file(storage: Storage, dataset: str, business_id: int, day: dt.date, table: str) -> str | None:
    """The key of the file the business-day's manifest names for `table` (its current generation), or None."""
    manifest = archived(storage, dataset, business_id, day) or {}
    return next((t["key"] for t in manifest.get("tables", []) if t.get("table") == table), None)


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
            yield from delta.read_record_batches(storage, manifest, spec, columns, BATCH_ROWS, _DAYS.get())
            continue
        entry = next((t for t in manifest.get("tables", []) if t.get("table") == table), None)
        if entry is None or "sha256" not in entry or "bytes" not in entry:
            raise ArchiveCorrupt(
                f"the archive manifest of {dataset} {day} business {business_id} names no verifiable {table} file"
            )
        whole = _shared_table(storage, entry)
        if whole is not None:
            yield from (whole.select(columns) if columns else whole).to_batches(max_chunksize=BATCH_ROWS)
            continue
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
