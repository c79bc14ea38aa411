"""Archive one dataset of one business for one business-local day, verified against the source.

Plain functions: the Dagster assets call these for every (day, business) of a run.

Layout: each archiving of a business-day is a new *generation*, a folder of its own
(`business_id=N/gen={G}/{table}.parquet`, G sortable: UTC time + random), and the business-day's
`_reconciliation.json` is its manifest, written last (one atomic replace / one PUT) and naming the
generation and every file (rows, sums, bytes, SHA-256). Readers read the manifest first and only the
files it names, so they see one whole generation, never a mix. Superseded generations stay (listed
under `previous`). The first layout (files directly in `business_id=N/`, a manifest without
`generation`) stays readable: its manifest names those files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path

from pos_exports.archive.capture import LOST, snapshot_capture
from pos_exports.archive.parquet import (
    ArchiveCorrupt,
    key_values,
    open_verified,
    parquet_not_members,
    parquet_totals,
    write_parquet,
)
from pos_exports.archive.tables import Dataset, Scope, Table
from pos_exports.periods import day_window
from pos_exports.source.database import Business, PosReader
from pos_exports.storage import Storage
from pos_exports.storage.base import sha256_file

MARKER = "_reconciliation.json"
log = logging.getLogger(__name__)


class ArchiveError(RuntimeError):
    """A business-day that could not be archived; the message says why and what to do."""


class ReconciliationError(ArchiveError):
    pass


class SnapshotNotCaptured(ArchiveError):
    """A snapshot asked for after its capture window that was never captured: it is lost."""


def partition_prefix(dataset: str, day: dt.date, business_id: int) -> str:
    return f"archive/{dataset}/date={day.isoformat()}/business_id={business_id}"


def table_key(dataset: str, day: dt.date, business_id: int, table: str, generation: str | None = None) -> str:
    """Where a table's file goes: in its generation's folder (without one: the first, flat layout)."""
    folder = partition_prefix(dataset, day, business_id) + (f"/gen={generation}" if generation else "")
    return f"{folder}/{table}.parquet"


def marker_key(dataset: str, day: dt.date, business_id: int) -> str:
    return f"{partition_prefix(dataset, day, business_id)}/{MARKER}"


def new_generation(now: dt.datetime) -> str:
    """A generation id: sortable by time, unique across concurrent runs."""
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"


def load_manifest(storage: Storage, dataset: str, day: dt.date, business_id: int) -> dict | None:
    """The manifest (`_reconciliation.json`) of an archived business-day, or None if it has none."""
    key = marker_key(dataset, day, business_id)
    data = _read(storage, key)
    return None if data is None else parse_manifest(data, storage.uri(key), dataset, day, business_id)


def parse_manifest(data: bytes, uri: str, dataset: str, day: dt.date, business_id: int) -> dict:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ArchiveCorrupt(f"{uri}: not a readable archive manifest ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("tables", []), list):
        raise ArchiveCorrupt(f"{uri}: not an archive manifest (no list of tables)")
    for table in document.get("tables", []):  # first layout: the files beside the manifest
        table.setdefault("key", table_key(dataset, day, business_id, table["table"]))
    return document


def _read(storage: Storage, key: str) -> bytes | None:
    return storage.read_bytes(key) if storage.exists(key) else None


@dataclass
class TableResult:
    table: str
    key: str
    rows: int
    bytes: int
    sha256: str
    sums: dict[str, str]
    # references to another business's rows (shown as "user 7 (not a member of this business)"): column, what, id, rows
    non_members: list[dict] = field(default_factory=list)


@dataclass
class BusinessDayResult:
    dataset: str
    day: dt.date
    business_id: int
    timezone: str
    window: tuple[str, str]
    tables: list[TableResult] = field(default_factory=list)
    kept_existing: bool = False

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    @property
    def non_members(self) -> list[str]:
        """One line per reference to another business's row: `sales.cashier_name: user 2 (1 row)`."""
        return [
            f"{t.table}.{n['column']}: {n['what']} {n['id']} ({n['rows']} row{'s' if n['rows'] != 1 else ''})"
            for t in self.tables
            for n in t.non_members
        ]


def source_totals(reader: PosReader, table: Table, scope: Scope) -> tuple[int, dict[str, Decimal]]:
    """Row count and money sums of the table's rows, computed by the source database itself."""
    body = table.sql(reader.dialect, scope).rsplit("ORDER BY", 1)[0]
    sums = ", ".join(f"CAST(COALESCE(SUM(q.{m}), 0) AS BIGINT) AS {m}" for m in table.money)
    row = reader.rows(f"SELECT COUNT(*) AS row_count{', ' + sums if sums else ''} FROM ({body}) q")[0]
    return int(row["row_count"]), {m: Decimal(int(row[m])) / 100 for m in table.money}


def new_result(dataset: Dataset, business: Business, day: dt.date, now: dt.datetime) -> BusinessDayResult:
    """The (empty) result of archiving a business-day, or ArchiveError if the day has not ended yet."""
    win = day_window(day, business.timezone)
    if now < win.end:
        raise ArchiveError(
            f"{day} has not ended yet in {business.timezone} (it ends {win.end.isoformat()}); archive it after that"
        )
    return BusinessDayResult(
        dataset.name, day, business.id, business.timezone, (win.start.isoformat(), win.end.isoformat())
    )


def scope_of(result: BusinessDayResult) -> Scope:
    return Scope(
        result.business_id, dt.datetime.fromisoformat(result.window[0]), dt.datetime.fromisoformat(result.window[1])
    )


def extract_table(
    reader: PosReader, table: Table, scope: Scope, path: Path, expected: tuple[int, dict[str, Decimal]], key: str
) -> TableResult:
    """Write the table's rows of `scope` to the local Parquet file `path` and reconcile them with the
    source's own count and sums (`expected`); ReconciliationError if they differ."""
    write_parquet(path, table, reader.batches(table.sql(reader.dialect, scope)))
    rows, sums = parquet_totals(path, table.money)
    want_rows, want_sums = expected
    if rows != want_rows or sums != want_sums:
        raise ReconciliationError(
            f"{table.name} does not reconcile with the source: archive {rows} rows {_fmt(sums)}, "
            f"source {want_rows} rows {_fmt(want_sums)}"
        )
    return TableResult(
        table.name,
        key,
        rows,
        path.stat().st_size,
        sha256_file(path),
        {k: str(v) for k, v in sums.items()},
        parquet_not_members(path, table.names),
    )


def archive_business_day(
    reader: PosReader,
    storage: Storage,
    dataset: Dataset,
    business: Business,
    day: dt.date,
    *,
    now: dt.datetime,
    allow_shrink: bool = False,
) -> BusinessDayResult:
    """Extract, write and reconcile one (dataset, business, local day); return what was archived."""
    result = new_result(dataset, business, day, now)
    marker = marker_key(dataset.name, day, business.id)
    storage.sweep_temp(partition_prefix(dataset.name, day, business.id))  # what killed runs left here
    raw = _read(storage, marker)
    previous = None if raw is None else parse_manifest(raw, storage.uri(marker), dataset.name, day, business.id)
    capture = snapshot_capture(day, business.timezone)
    if dataset.kind == "snapshot" and capture.state(now) == LOST:
        if previous is not None:  # captured in time earlier: keep that capture, never overwrite it
            result.kept_existing = True
            names = {f.name for f in fields(TableResult)}
            result.tables = [TableResult(**{k: v for k, v in t.items() if k in names}) for t in previous["tables"]]
            if "dataset" in previous and "date" in previous:  # on storage already: the index may catch up
                _index(previous, raw, now)
            return result
        raise SnapshotNotCaptured(
            f"the {dataset.name} snapshot for {day} cannot be taken now: it was {capture.note(now)}. "
            "Backfill past days with the event datasets only (sales_archive, audit_log_archive)"
        )

    reader.new_snapshot()  # counts and rows of this business-day come from one consistent snapshot
    scope = scope_of(result)
    expected = {t.name: source_totals(reader, t, scope) for t in dataset.tables}
    generation = new_generation(now)

    with contextlib.ExitStack() as publish:  # every file is published only once all are verified
        written: dict[str, Path] = {}
        for table in dataset.tables:
            key = table_key(dataset.name, day, business.id, table.name, generation)
            tmp = written[table.name] = publish.enter_context(storage.staged(key))
            result.tables.append(extract_table(reader, table, scope, tmp, expected[table.name], key))
        if previous is not None and not allow_shrink:
            refuse_lost_keys(dataset, previous, written, lambda table: _held_keys(storage, previous, table))

    # The generation's files are all published; the manifest, written last, makes it the business-day's.
    if _read(storage, marker) != raw:
        raise ArchiveError(
            f"another run published {dataset.name} {day} of business {business.id} meanwhile; the archive keeps "
            f"that one (this run's generation {generation} stays unused). Re-run to archive the day again"
        )
    document = {
        "dataset": dataset.name,
        "kind": dataset.kind,
        "date": day.isoformat(),
        "business_id": business.id,
        "timezone": business.timezone,
        "window_utc": list(result.window),
        "captured_at": now.astimezone(dt.UTC).isoformat() if dataset.kind == "snapshot" else None,
        "reconciled": True,
        "generation": generation,
        "tables": [t.__dict__ for t in result.tables],
        "previous": _history(previous),
    }
    data = json.dumps(document, indent=2, sort_keys=True).encode()
    storage.write_bytes(marker, data)
    _index(document, data, now)  # after the manifest: the index may lag storage, never lead it
    return result


def _index(document: dict, data: bytes, now: dt.datetime) -> None:
    """Record the published manifest in the state database's archive index (a failure leaves it behind,
    which is safe: the day looks unarchived until the next run or `pos-exports archive reindex`)."""
    import sqlalchemy as sa

    from pos_exports.archive import index
    from pos_exports.state import engine

    try:
        index.record_published(engine(), document, data, now)
    except sa.exc.SQLAlchemyError as exc:
        log.warning(
            "archive index not updated for %s %s business %s: %s (run pos-exports archive reindex)",
            document["dataset"],
            document["date"],
            document["business_id"],
            type(exc).__name__,
        )


def _history(previous: dict | None) -> list[dict]:
    """The superseded generations, newest first: what each held and where (they are never deleted here)."""
    if previous is None:
        return []
    entry = {
        "generation": previous.get("generation"),
        "captured_at": previous.get("captured_at"),
        "tables": [
            {k: t.get(k) for k in ("table", "key", "rows", "bytes", "sha256")} for t in previous.get("tables", [])
        ],
    }
    return [entry, *previous.get("previous", [])]


def _held_keys(storage: Storage, previous: dict, table: Table) -> set | None:
    """The primary keys a folder manifest's file of `table` holds (None: the manifest has no such table)."""
    entry = next((t for t in previous.get("tables", []) if t["table"] == table.name), None)
    if entry is None:
        return None
    with open_verified(storage, entry["key"], entry["bytes"], entry["sha256"]) as data:
        return key_values(data, table.key)


def refuse_lost_keys(
    dataset: Dataset, previous: dict, written: dict[str, Path], held: Callable[[Table], set | None]
) -> None:
    """ArchiveError naming the primary keys the archive holds for the day (`held(table)`, from whichever
    layout holds it) that the new files lack."""
    lost: list[str] = []
    for table in dataset.tables:
        try:
            before = held(table)
        except ArchiveCorrupt as exc:
            raise ArchiveError(
                f"cannot compare with the archived day: {exc}. Re-run with allow_shrink: true to archive it anew"
            ) from None
        if before is None:
            continue
        missing = sorted(before - key_values(written[table.name], table.key))
        if missing:
            shown = ", ".join(map(str, missing[:20])) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
            lost.append(f"{table.name} {'/'.join(table.key)} {shown}")
    if lost:
        raise ArchiveError(
            f"the source no longer holds rows the archive has ({'; '.join(lost)}), probably purged or deleted in "
            "the POS; the archive was kept. Re-run with allow_shrink: true only if the source is right "
            "(the archived generation is kept as a previous one)"
        )


def _fmt(sums: dict[str, Decimal]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sums.items()) or "(no money columns)"
