"""The archive as Delta Lake tables (`POS_EXPORTS_ARCHIVE_LAYOUT=delta`).

One Delta table per archived table at `archive/tables/{table}/` (`sales`, `sale_items`, ...), partitioned by
the business-local day (`business_date`), with `business_id` a column: the files of a day do not grow with
the number of businesses. Per (dataset, day) of a run every business is extracted to a local Parquet file
per table and reconciled with the source as in the folder layout (each business on its own); then all
reconciled businesses are committed per table in ONE transaction (a predicate overwrite of exactly their
rows of that day), and only then their reconciliation records, one row per (dataset, business, day) in the
small Delta table `archive/tables/_reconciliation/`, naming per table the Delta version that holds the
business-day with its rows and money sums. Readers read each table at the version the record names (a run
committing meanwhile, or one that died between its data commit and its record, is never seen) and check
the rows and sums they read against the record.

Nothing is removed automatically: the tables are created with log and file retention of 100 years, so
earlier versions stay readable until the guarded `pos-exports archive vacuum`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pos_exports.archive.capture import LOST, snapshot_capture
from pos_exports.archive.extract import (
    ArchiveError,
    BusinessDayResult,
    SnapshotNotCaptured,
    TableResult,
    _held_keys,
    extract_table,
    load_manifest,
    new_result,
    refuse_lost_keys,
    scope_of,
    source_totals,
)
from pos_exports.archive.parquet import ROW_GROUP_ROWS, ArchiveCorrupt, ArchiveUnavailable
from pos_exports.archive.tables import Dataset, Table
from pos_exports.source.database import Business, PosReader
from pos_exports.storage import Storage
from pos_exports.transient import is_transient

if TYPE_CHECKING:  # pyarrow.dataset (and with it pandas) is imported where a Delta table is read, not by every reader
    import pyarrow.dataset as ds

log = logging.getLogger(__name__)

TABLES = "archive/tables"
RECORDS = "_reconciliation"
PARTITION = "business_date"
# Nothing goes without an explicit, guarded vacuum: delta-rs otherwise drops log entries older than
# 30 days when it checkpoints, and vacuum's default keeps removed files 7 days only.
PROPERTIES = {
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.enableExpiredLogCleanup": "false",
    "delta.deletedFileRetentionDuration": "interval 36500 days",
}
COMMIT_TOKEN = "pos_exports.commit"
COMMIT_ATTEMPTS = 3
RECORD_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("business_id", pa.int64()),
        (PARTITION, pa.date32()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("record", pa.string()),  # the record as JSON (the folder layout's manifest equivalent)
    ]
)


def table_key(name: str) -> str:
    """The storage key of a Delta table (`archive/tables/{name}`)."""
    return f"{TABLES}/{name}"


def table_uri(storage: Storage, name: str) -> str:
    return storage.uri(table_key(name))


def _options(storage: Storage) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((storage.table_options() or {}).items()))


def writer_properties():
    """The Parquet settings of every data file written (compaction included: without them it drops zstd)."""
    from deltalake import WriterProperties

    return WriterProperties(compression="ZSTD", max_row_group_size=ROW_GROUP_ROWS)


def delta_schema(table: Table) -> pa.Schema:
    """The Delta table's columns: the archived table's, `business_id` if it has none, and `business_date`."""
    schema = table.schema
    if "business_id" not in schema.names:
        schema = schema.append(pa.field("business_id", pa.int64()))
    return schema.append(pa.field(PARTITION, pa.date32()))


def _day_filter(business_ids: list[int] | int, day: dt.date) -> ds.Expression:
    ids = [business_ids] if isinstance(business_ids, int) else business_ids
    import pyarrow.dataset as ds

    return (ds.field(PARTITION) == pa.scalar(day, pa.date32())) & ds.field("business_id").isin(ids)


def _predicate(day: dt.date, business_ids: list[int], dataset: str | None = None) -> str:
    ids = ", ".join(str(int(b)) for b in business_ids)
    where = f"{PARTITION} = '{day.isoformat()}' AND business_id IN ({ids})"
    return f"dataset = '{dataset}' AND {where}" if dataset else where


# ---------------------------------------------------------------- reading


@lru_cache(maxsize=256)
def _pinned(uri: str, version: int, options: tuple[tuple[str, str], ...]) -> ds.Dataset:
    """The Arrow dataset of a Delta table at one version: the log is replayed once per (table, version) in
    a process, not once per business read."""
    from deltalake import DeltaTable

    return DeltaTable(uri, version=version, storage_options=dict(options) or None).to_pyarrow_dataset()


_records_table: dict[str, object] = {}  # uri -> DeltaTable of the records at its latest version seen
_records_by_version: dict[str, tuple[int, dict]] = {}


def records(storage: Storage) -> dict[tuple[str, int, dt.date], dict]:
    """Every reconciliation record at the records table's latest version, by (dataset, business_id, day)
    (empty when no business-day was ever archived as a Delta table). Parsed once per version."""
    from deltalake import DeltaTable

    uri, options = table_uri(storage, RECORDS), _options(storage)
    table = _records_table.get(uri)
    if table is None:
        if not DeltaTable.is_deltatable(uri, dict(options) or None):
            return {}
        table = _records_table[uri] = DeltaTable(uri, storage_options=dict(options) or None)
    else:
        table.update_incremental()
    version = table.version()
    cached = _records_by_version.get(uri)
    if cached is not None and cached[0] == version:
        return cached[1]
    data = table.to_pyarrow_dataset().to_table(columns=["dataset", "business_id", PARTITION, "record"])
    found = {
        (d, int(b), day): json.loads(r)
        for d, b, day, r in zip(*(data.column(c).to_pylist() for c in data.column_names), strict=True)
    }
    _records_by_version[uri] = (version, found)
    return found


def record(storage: Storage, dataset: str, business_id: int, day: dt.date) -> dict | None:
    """The reconciliation record of a business-day archived as Delta tables, or None."""
    return records(storage).get((dataset, business_id, day))


def read_record_table(
    storage: Storage, rec: dict, table: Table, columns: list[str] | None = None, shared: DayReads | None = None
) -> pa.Table:
    """One table's rows of a business-day, read at the version its record names and checked against the
    record's rows and money sums (ArchiveCorrupt naming the table, version and file otherwise); in
    primary-key order, as the folder layout's files are. With `shared` (a run reading many businesses) the
    rows are a slice of the table-day read once at that version, else a read of this business's rows."""
    entry = next((t for t in rec.get("tables", []) if t.get("table") == table.name), None)
    business_id, day = int(rec["business_id"]), dt.date.fromisoformat(rec["date"])
    uri = table_uri(storage, table.name)
    what = f"{uri} version {entry and entry.get('version')}: the {table.name} rows of business {business_id} on {day}"
    if entry is None or not isinstance(entry.get("version"), int):
        raise ArchiveCorrupt(
            f"the reconciliation record of {rec.get('dataset')} {day} business {business_id} "
            f"names no version of {table.name}"
        )
    wanted = list(columns or table.schema.names)
    needed = wanted + [c for c in (*table.key, *table.money) if c not in wanted]
    data = shared.rows(storage, table, entry["version"], day, business_id) if shared is not None else None
    if data is None:
        data = _business_rows(storage, table, entry["version"], day, business_id, needed, what)
    data = data.select(needed)
    sums = {m: Decimal(str(pc.sum(data.column(m)).as_py() or "0.00")) for m in table.money}
    want = {m: Decimal(v) for m, v in entry.get("sums", {}).items()}
    if data.num_rows != entry.get("rows") or sums != want:
        raise ArchiveCorrupt(
            f"{what} are {data.num_rows} rows {_sums(sums)}, but the reconciliation record says "
            f"{entry.get('rows')} rows {_sums(want)}"
        )
    if data.num_rows > 1:
        data = data.take(pc.sort_indices(data, [(k, "ascending") for k in table.key]))
    return data.select(wanted)


def _pinned_dataset(storage: Storage, table: Table, version: int, what: str) -> ds.Dataset:
    try:
        return _pinned(table_uri(storage, table.name), version, _options(storage))
    except Exception as exc:  # a missing or unreadable log: deltalake raises its own errors and OSError
        if is_transient(exc):  # storage unreachable for now (not the log's fault): worth another attempt
            raise ArchiveUnavailable(f"{what} cannot be read now: {_cause(exc)}") from None
        raise ArchiveCorrupt(f"{what} cannot be read: {_first_line(exc)}") from None


def _fragment_table(storage: Storage, table: Table, fragment, what: str, **scan) -> pa.Table:
    """One data file's rows (ArchiveCorrupt naming the file; ArchiveUnavailable when storage is unreachable)."""
    try:
        return fragment.to_table(**scan)
    except (OSError, pa.ArrowException) as exc:
        uri = table_uri(storage, table.name)
        path = fragment.path if "://" in fragment.path or fragment.path.startswith("/") else f"{uri}/{fragment.path}"
        if is_transient(exc):
            raise ArchiveUnavailable(f"{what}: file {path} cannot be read now: {_cause(exc)}") from None
        raise ArchiveCorrupt(f"{what}: file {path} cannot be read: {_first_line(exc)}") from None


def _business_rows(
    storage: Storage, table: Table, version: int, day: dt.date, business_id: int, needed: list[str], what: str
) -> pa.Table:
    """This business's rows of the table-day at `version` (a filter on business_id over the day's files)."""
    import pyarrow.dataset as ds

    dataset = _pinned_dataset(storage, table, version, what)
    schema = pa.schema([delta_schema(table).field(c) for c in needed])
    parts = [
        # the fragments are of the day's partition already; its files hold business_id, not business_date
        _fragment_table(storage, table, f, what, columns=needed, filter=ds.field("business_id") == business_id)
        for f in dataset.get_fragments(filter=_day_filter(business_id, day))
    ]
    return pa.concat_tables([p.cast(schema) for p in parts]) if parts else schema.empty_table()


@dataclass
class _Group:
    rows: pa.Table  # one row group's rows (every column but business_date), ordered by business_id
    spans: dict[int, tuple[int, int]]  # business_id -> (offset, length) in `rows`
    last: int  # the greatest business_id it holds


@dataclass
class DayReads:
    """What a run reading many businesses shares (`archive.read.shared_days`): the reconciliation records,
    read once; and the row groups of each (table, version, day) that two or more records name, each decoded
    once and handed to every business it holds as a slice (found by offset, not by a filter over the day
    per read). A business's row groups are known from their business_id statistics; one whose greatest
    business_id is below the business asked for is dropped (a run goes through its businesses in id order),
    and decoded groups are kept while they fit `budget` bytes (past it a group is read for the one business
    that needs it, as outside a run). When a shared read fails, the business's own read reports why."""

    budget: int
    used: int = 0
    found: dict[tuple, dict] = field(default_factory=dict)  # (uri, options) -> records
    named: dict[tuple, int] | None = None  # (table, version, day) -> how many records name it
    layouts: dict[tuple, list[tuple[object, int, int]] | None] = field(default_factory=dict)
    groups: dict[tuple, _Group] = field(default_factory=dict)

    def records(self, storage: Storage) -> dict[tuple[str, int, dt.date], dict]:
        key = (table_uri(storage, RECORDS), _options(storage))
        if key not in self.found:
            self.found[key] = records(storage)
            self.named = None
        return self.found[key]

    def _shared_by_many(self, table: str, version: int, day: dt.date) -> bool:
        if self.named is None:
            self.named = {}
            for found in self.found.values():
                for rec in found.values():
                    for t in rec.get("tables", []):
                        key = (t.get("table"), t.get("version"), rec.get("date"))
                        self.named[key] = self.named.get(key, 0) + 1
        return self.named.get((table, version, day.isoformat()), 0) >= 2

    def rows(self, storage: Storage, table: Table, version: int, day: dt.date, business_id: int) -> pa.Table | None:
        """The business's rows (every column) from the shared row groups, or None: read them on their own."""
        key = (table_uri(storage, table.name), _options(storage), version, day)
        if key not in self.layouts:
            self.layouts[key] = None
            if self._shared_by_many(table.name, version, day):
                with contextlib.suppress(Exception):  # the business's own read then says what is wrong
                    self.layouts[key] = _row_groups(storage, table, version, day)
        layout = self.layouts[key]
        if layout is None:
            return None
        for passed in [k for k, g in self.groups.items() if g.last < business_id]:
            self.used -= self.groups.pop(passed).rows.nbytes
        parts = []
        try:
            for n, (fragment, low, high) in enumerate(layout):
                if low <= business_id <= high:
                    group = self._group((*key, n), storage, table, fragment)
                    start, length = group.spans.get(business_id, (0, 0))
                    parts.append(group.rows.slice(start, length))
        except Exception:
            self.layouts[key] = None  # from now on each business of it is read on its own
            return None
        return pa.concat_tables(parts) if parts else _file_schema(table).empty_table()

    def _group(self, key: tuple, storage: Storage, table: Table, fragment) -> _Group:
        group = self.groups.get(key)
        if group is not None:
            return group
        what = f"{table_uri(storage, table.name)}: the {table.name} rows of {key[3]}"
        schema = _file_schema(table)
        data = _fragment_table(storage, table, fragment, what, columns=schema.names).cast(schema).combine_chunks()
        ids = data.column("business_id").combine_chunks()
        if len(ids) > 1 and not pc.all(pc.greater_equal(ids[1:], ids[:-1])).as_py():
            # a replaced business's rows sit after the others': stable sort (file order kept within a business)
            data = data.take(pc.sort_indices(data, [("business_id", "ascending")]))
            ids = data.column("business_id").combine_chunks()
        runs = pc.run_end_encode(ids)
        ends = runs.run_ends.to_pylist()
        spans = zip(runs.values.to_pylist(), [0, *ends[:-1]] if ends else [], ends, strict=True)
        group = _Group(data, {int(b): (start, end - start) for b, start, end in spans}, max(ids.to_pylist(), default=0))
        if self.used + data.nbytes <= self.budget:
            self.groups[key] = group
            self.used += data.nbytes
        return group


def _file_schema(table: Table) -> pa.Schema:
    """The columns a data file of the table holds (the partition column is in its path)."""
    schema = delta_schema(table)
    return schema.remove(schema.get_field_index(PARTITION))


def _row_groups(storage: Storage, table: Table, version: int, day: dt.date) -> list[tuple[object, int, int]]:
    """The row groups of a table-day at `version`, in the order a scan reads them, with the least and the
    greatest business_id each holds (from the files' statistics; unknown: every business)."""
    import pyarrow.dataset as ds

    what = f"{table_uri(storage, table.name)} version {version}: the {table.name} rows of {day}"
    dataset = _pinned_dataset(storage, table, version, what)
    out = []
    for fragment in dataset.get_fragments(filter=ds.field(PARTITION) == pa.scalar(day, pa.date32())):
        for group in fragment.split_by_row_group():
            stats = (group.row_groups[0].statistics or {}).get("business_id") or {}
            low, high = stats.get("min"), stats.get("max")
            out.append((group, -(2**63) if low is None else low, 2**63 - 1 if high is None else high))
    return out


def read_record_batches(
    storage: Storage,
    rec: dict,
    table: Table,
    columns: list[str] | None = None,
    batch_rows: int = 64 * 1024,
    shared: DayReads | None = None,
) -> Iterator[pa.RecordBatch]:
    data = read_record_table(storage, rec, table, columns, shared)
    yield from data.combine_chunks().to_batches(max_chunksize=batch_rows) or [
        pa.RecordBatch.from_pylist([], schema=data.schema)
    ]


def _cause(exc: BaseException) -> str:
    """The first and the last line of a deltalake error (its last names the network's cause), uncoloured."""
    lines = [re.sub(r"\x1b\[[0-9;]*m|↳", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}" + (f" ... {lines[-1]}" if len(lines) > 1 else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _sums(sums: dict[str, Decimal]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sums.items()) or "(no money columns)"


def held_keys(storage: Storage, previous: dict, table: Table) -> set | None:
    """The primary keys the archive holds for a table of a business-day, in whichever layout holds it."""
    if previous.get("layout") != "delta":
        return _held_keys(storage, previous, table)
    if not any(t.get("table") == table.name for t in previous.get("tables", [])):
        return None
    data = read_record_table(storage, previous, table, list(table.key))
    values = [data.column(c).to_pylist() for c in table.key]
    return set(values[0]) if len(table.key) == 1 else set(zip(*values, strict=True))


def current(storage: Storage, dataset: str, business_id: int, day: dt.date, found: dict | None = None) -> dict | None:
    """What a business-day is archived as now: its Delta record (in `found`, the records already read, when
    given), else its folder manifest, else None."""
    rec = (records(storage) if found is None else found).get((dataset, business_id, day))
    return rec or load_manifest(storage, dataset, day, business_id)


# ---------------------------------------------------------------- writing


@dataclass
class Staged:
    """A business-day extracted to local files and reconciled, waiting for its dataset-day's commit."""

    result: BusinessDayResult
    files: dict[str, Path] = field(default_factory=dict)
    previous: dict | None = None


def stage_business_day(
    reader: PosReader,
    storage: Storage,
    dataset: Dataset,
    business: Business,
    day: dt.date,
    *,
    now: dt.datetime,
    folder: Path,
    allow_shrink: bool = False,
) -> Staged:
    """Extract and reconcile one (dataset, business, day) into local Parquet files under `folder`, with the
    same rules as the folder layout (a snapshot past its window keeps its earlier capture; lost primary
    keys are refused unless `allow_shrink`)."""
    result = new_result(dataset, business, day, now)
    previous = current(storage, dataset.name, business.id, day)
    capture = snapshot_capture(day, business.timezone)
    if dataset.kind == "snapshot" and capture.state(now) == LOST:
        if previous is not None:  # captured in time earlier: keep that capture, never overwrite it
            names = {f.name for f in fields(TableResult)}
            result.kept_existing = True
            result.tables = [
                TableResult(**{"key": "", "bytes": 0, "sha256": "", **{k: v for k, v in t.items() if k in names}})
                for t in previous["tables"]
            ]
            return Staged(result, previous=previous)
        raise SnapshotNotCaptured(
            f"the {dataset.name} snapshot for {day} cannot be taken now: it was {capture.note(now)}. "
            "Backfill past days with the event datasets only (sales_archive, audit_log_archive)"
        )
    reader.new_snapshot()  # counts and rows of this business-day come from one consistent snapshot
    scope = scope_of(result)
    expected = {t.name: source_totals(reader, t, scope) for t in dataset.tables}
    staged = Staged(result, previous=previous)
    for table in dataset.tables:
        path = staged.files[table.name] = folder / f"{dataset.name}.{business.id}.{table.name}.parquet"
        result.tables.append(extract_table(reader, table, scope, path, expected[table.name], table_key(table.name)))
    if previous is not None and not allow_shrink:
        refuse_lost_keys(dataset, previous, staged.files, lambda table: held_keys(storage, previous, table))
    return staged


def _with_partition(batch: pa.RecordBatch, table: Table, business_id: int, day: dt.date) -> pa.RecordBatch:
    arrays, names = list(batch.columns), list(batch.schema.names)
    if "business_id" not in names:
        arrays.append(pa.array([business_id] * batch.num_rows, pa.int64()))
        names.append("business_id")
    arrays.append(pa.array([day] * batch.num_rows, pa.date32()))
    return pa.RecordBatch.from_arrays(arrays, schema=delta_schema(table))


def commit_rows(
    storage: Storage,
    name: str,
    schema: pa.Schema,
    batches: Callable[[], Iterator[pa.RecordBatch]],
    predicate: str,
) -> int:
    """Replace the rows matching `predicate` of the Delta table `name` by `batches` in one transaction
    (the table is created, with PROPERTIES, on first use); returns the version committed. A commit that
    lost a race with another writer is retried from the new version."""
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError

    uri, options = table_uri(storage, name), dict(_options(storage)) or None
    token = secrets.token_hex(8)
    for attempt in range(COMMIT_ATTEMPTS):
        exists = DeltaTable.is_deltatable(uri, options)
        before = DeltaTable(uri, storage_options=options).version() if exists else -1
        try:
            write_deltalake(
                uri,
                pa.RecordBatchReader.from_batches(schema, batches()),
                mode="overwrite",
                predicate=predicate,
                partition_by=[PARTITION],
                configuration=None if exists else PROPERTIES,
                storage_options=options,
                writer_properties=writer_properties(),
                commit_properties=CommitProperties(custom_metadata={COMMIT_TOKEN: token}),
            )
            break
        except CommitFailedError:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
    table = DeltaTable(uri, storage_options=options)
    if table.version() == before + 1:  # nobody else committed meanwhile: the new version is ours
        return table.version()
    for entry in table.history(limit=table.version() - before):  # ours is among the versions since
        if entry.get(COMMIT_TOKEN) == token:
            return int(entry["version"])
    raise ArchiveError(f"{uri}: the commit just made is not in the table's history")


def commit_dataset_day(
    storage: Storage, dataset: Dataset, day: dt.date, staged: list[Staged], now: dt.datetime
) -> list[tuple[Staged, BusinessDayResult | Exception]]:
    """Commit the staged businesses of one dataset-day: one transaction per table, then their records
    (last), then the index. Each business gets its result, or the exception that kept it out."""
    todo = sorted((s for s in staged if not s.result.kept_existing), key=lambda s: s.result.business_id)
    outcome: list[tuple[Staged, BusinessDayResult | Exception]] = [
        (s, s.result) for s in staged if s.result.kept_existing
    ]
    if not todo:
        return outcome
    ids = [s.result.business_id for s in todo]
    versions: dict[str, int] = {}
    try:
        for table in dataset.tables:

            def batches(table: Table = table) -> Iterator[pa.RecordBatch]:
                for s in todo:
                    for batch in pq.ParquetFile(s.files[table.name]).iter_batches(batch_size=ROW_GROUP_ROWS):
                        yield _with_partition(batch, table, s.result.business_id, day)

            versions[table.name] = commit_rows(storage, table.name, delta_schema(table), batches, _predicate(day, ids))
    except Exception as exc:  # nothing recorded: readers keep the versions the records name
        return outcome + [(s, exc) for s in todo]

    # The records, last. A business-day recorded by another run meanwhile keeps that run's record.
    latest = records(storage)
    documents: list[dict] = []
    for s in todo:
        seen = s.previous if s.previous is not None and s.previous.get("layout") == "delta" else None
        if latest.get((dataset.name, s.result.business_id, day)) != seen:
            outcome.append(
                (
                    s,
                    ArchiveError(
                        f"another run recorded {dataset.name} {day} of business {s.result.business_id} meanwhile; "
                        "the archive keeps that one. Re-run to archive the day again"
                    ),
                )
            )
            continue
        documents.append(_record(dataset, s, versions, now))
    if documents:
        try:
            record_all(storage, dataset.name, day, documents, now)
        except Exception as exc:
            recorded = {d["business_id"] for d in documents}
            return outcome + [(s, exc) for s in todo if s.result.business_id in recorded]
    done = {d["business_id"] for d in documents}
    return outcome + [(s, s.result) for s in todo if s.result.business_id in done]


def record_all(storage: Storage, dataset: str, day: dt.date, documents: list[dict], now: dt.datetime) -> None:
    """Commit the records of business-days of one dataset-day (one transaction, after their data), then
    index them."""
    rows = pa.table(
        {
            "dataset": [d["dataset"] for d in documents],
            "business_id": [d["business_id"] for d in documents],
            PARTITION: [day] * len(documents),
            "recorded_at": [now.astimezone(dt.UTC)] * len(documents),
            "record": [json.dumps(d, sort_keys=True) for d in documents],
        },
        schema=RECORD_SCHEMA,
    )
    ids = [d["business_id"] for d in documents]
    commit_rows(storage, RECORDS, RECORD_SCHEMA, lambda: iter(rows.to_batches()), _predicate(day, ids, dataset))
    _index(documents, now)


def _record(dataset: Dataset, s: Staged, versions: dict[str, int], now: dt.datetime) -> dict:
    r = s.result
    return {
        "layout": "delta",
        "dataset": dataset.name,
        "kind": dataset.kind,
        "date": r.day.isoformat(),
        "business_id": r.business_id,
        "timezone": r.timezone,
        "window_utc": list(r.window),
        "captured_at": now.astimezone(dt.UTC).isoformat() if dataset.kind == "snapshot" else None,
        "recorded_at": now.astimezone(dt.UTC).isoformat(),
        "reconciled": True,
        "tables": [
            {
                "table": t.table,
                "key": table_key(t.table),
                "version": versions[t.table],
                "rows": t.rows,
                "bytes": t.bytes,
                "sums": t.sums,
                "non_members": t.non_members,
            }
            for t in r.tables
        ],
        "previous": _history(s.previous),
    }


def _history(previous: dict | None) -> list[dict]:
    """What the business-day was archived as before, newest first (earlier Delta versions stay readable)."""
    if previous is None:
        return []
    entry = {
        "layout": previous.get("layout", "folders"),
        "generation": previous.get("generation"),
        "captured_at": previous.get("captured_at"),
        "tables": [
            {k: t[k] for k in ("table", "key", "version", "rows", "bytes", "sha256") if k in t}
            for t in previous.get("tables", [])
        ],
    }
    return [entry, *previous.get("previous", [])]


def record_bytes(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True).encode()


def _index(documents: list[dict], now: dt.datetime) -> None:
    """Record the records just committed in the state database's archive index (after them: it may lag)."""
    import sqlalchemy as sa

    from pos_exports.archive import index
    from pos_exports.state import engine

    try:
        index.upsert(engine(), [index.index_row(d, record_bytes(d), now) for d in documents])
    except sa.exc.SQLAlchemyError as exc:
        log.warning(
            "archive index not updated for %d record(s): %s (run pos-exports archive reindex)",
            len(documents),
            type(exc).__name__,
        )


# ---------------------------------------------------------------- maintenance (explicit, never automatic)

VACUUM_FLOOR_DAYS = 30  # `archive vacuum` never removes history younger than this


def data_tables() -> list[str]:
    from pos_exports.archive.tables import DATASETS

    return [t.name for d in DATASETS.values() for t in d.tables]


def _table_spec(name: str) -> tuple[str, Table]:
    from pos_exports.archive.tables import DATASETS

    return next((d.name, t) for d in DATASETS.values() for t in d.tables if t.name == name)


def check_vacuum(table: str, keep_days: int) -> None:
    """ValueError (one line naming the option) for a table or a retention `archive vacuum` refuses."""
    if table not in data_tables():
        raise ValueError(f"--table: {table!r} is not an archive table (one of {', '.join(data_tables())})")
    if keep_days < VACUUM_FLOOR_DAYS:
        raise ValueError(f"--keep-days: {keep_days} is below the floor of {VACUUM_FLOOR_DAYS} days; refused")


def repin(storage: Storage, table: str, now: dt.datetime) -> int:
    """Point every record of `table` at the table's latest version, once the rows and sums read there are
    the record's (so that a vacuum, which keeps only the latest version's files for good, leaves every record
    readable). ArchiveError naming the business-days whose latest rows differ (a commit without a record):
    re-archive those first. Returns the records moved."""
    from deltalake import DeltaTable

    latest = DeltaTable(table_uri(storage, table), storage_options=dict(_options(storage)) or None).version()
    dataset, spec = _table_spec(table)
    moved: dict[dt.date, list[dict]] = {}
    differ = []
    for (name, business_id, day), rec in records(storage).items():
        entry = next((t for t in rec["tables"] if t["table"] == table), None)
        if name != dataset or entry is None or entry["version"] == latest:
            continue
        candidate = {**rec, "tables": [{**t, "version": latest} if t is entry else t for t in rec["tables"]]}
        try:
            read_record_table(storage, candidate, spec)
        except ArchiveCorrupt:
            differ.append(f"{name} {day} business {business_id}")
            continue
        moved.setdefault(day, []).append(candidate)
    if differ:
        raise ArchiveError(
            f"{table}: the latest version differs from the record for {', '.join(differ[:10])}"
            f"{' ...' if len(differ) > 10 else ''}; re-archive those business-days before a vacuum"
        )
    for day, documents in sorted(moved.items()):
        record_all(storage, dataset, day, documents, now)
    return sum(len(d) for d in moved.values())


def vacuum(storage: Storage, table: str, keep_days: int, *, yes: bool = False) -> list[str]:
    """The files of `table` no longer in its latest version and removed more than `keep_days` ago: listed
    (dry run, the default) or, with `yes`, deleted after every record is re-pinned to the latest version."""
    from deltalake import DeltaTable

    check_vacuum(table, keep_days)
    uri, options = table_uri(storage, table), dict(_options(storage)) or None
    hours = keep_days * 24
    # our floor is the guard: the table's own deletedFileRetentionDuration (100 years) would refuse any
    files = DeltaTable(uri, storage_options=options).vacuum(
        retention_hours=hours, dry_run=True, enforce_retention_duration=False
    )
    if yes and files:
        repin(storage, table, dt.datetime.now(dt.UTC))
        files = DeltaTable(uri, storage_options=options).vacuum(
            retention_hours=hours, dry_run=False, enforce_retention_duration=False
        )
    return files


def compact(storage: Storage, tables: list[str] | None = None) -> dict[str, dict]:
    """Rewrite each day of a table held in more than one file into few files sorted on business_id
    (`optimize.z_order`, which compacts too: a business's rows are read without scanning the others'), and
    compact the records; earlier versions stay readable. Returns, per table, the files before and after."""
    from deltalake import DeltaTable

    out = {}
    options = dict(_options(storage)) or None
    for name in tables or [*data_tables(), RECORDS]:
        uri = table_uri(storage, name)
        if not DeltaTable.is_deltatable(uri, options):
            continue
        table = DeltaTable(uri, storage_options=options)
        before = len(table.file_uris())
        if name == RECORDS:
            table.optimize.compact(writer_properties=writer_properties())
        else:  # a day of several files (replacements, migration) is rewritten sorted on business_id
            actions = pa.table(table.get_add_actions(flatten=True))
            days = pc.value_counts(actions.column(f"partition.{PARTITION}")).to_pylist() if actions.num_rows else []
            for count in days:
                if count["counts"] > 1:
                    table.optimize.z_order(
                        ["business_id"],
                        partition_filters=[(PARTITION, "=", count["values"].isoformat())],
                        writer_properties=writer_properties(),
                    )
        out[name] = {"files_before": before, "files_after": len(DeltaTable(uri, storage_options=options).file_uris())}
    return out
