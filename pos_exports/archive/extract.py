"""Archive one dataset of one business for one business-local day, verified against the source.

Plain functions: the Dagster assets call these for every (day, business) of a run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal

from pos_exports.archive.capture import LOST, snapshot_capture
from pos_exports.archive.parquet import parquet_not_members, parquet_totals, write_parquet
from pos_exports.archive.tables import Dataset, Scope, Table
from pos_exports.periods import day_window
from pos_exports.source.database import Business, PosReader
from pos_exports.storage import Storage
from pos_exports.storage.base import sha256_file

MARKER = "_reconciliation.json"


class ArchiveError(RuntimeError):
    """A business-day that could not be archived; the message says why and what to do."""


class ReconciliationError(ArchiveError):
    pass


class SnapshotNotCaptured(ArchiveError):
    """A snapshot asked for after its capture window that was never captured: it is lost."""


def partition_prefix(dataset: str, day: dt.date, business_id: int) -> str:
    return f"archive/{dataset}/date={day.isoformat()}/business_id={business_id}"


def table_key(dataset: str, day: dt.date, business_id: int, table: str) -> str:
    return f"{partition_prefix(dataset, day, business_id)}/{table}.parquet"


def marker_key(dataset: str, day: dt.date, business_id: int) -> str:
    return f"{partition_prefix(dataset, day, business_id)}/{MARKER}"


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
    win = day_window(day, business.timezone)
    result = BusinessDayResult(
        dataset.name, day, business.id, business.timezone, (win.start.isoformat(), win.end.isoformat())
    )
    if now < win.end:
        raise ArchiveError(
            f"{day} has not ended yet in {business.timezone} (it ends {win.end.isoformat()}); archive it after that"
        )
    marker = marker_key(dataset.name, day, business.id)
    previous = json.loads(storage.read_bytes(marker)) if storage.exists(marker) else None
    capture = snapshot_capture(day, business.timezone)
    if dataset.kind == "snapshot" and capture.state(now) == LOST:
        if previous is not None:  # captured in time earlier: keep that capture, never overwrite it
            result.kept_existing = True
            result.tables = [TableResult(**t) for t in previous["tables"]]
            return result
        raise SnapshotNotCaptured(
            f"the {dataset.name} snapshot for {day} cannot be taken now: it was {capture.note(now)}. "
            "Backfill past days with the event datasets only (sales_archive, audit_log_archive)"
        )

    reader.new_snapshot()  # counts and rows of this business-day come from one consistent snapshot
    scope = Scope(business.id, win.start, win.end)
    expected = {t.name: source_totals(reader, t, scope) for t in dataset.tables}
    if previous is not None and not allow_shrink:
        before = {t["table"]: t["rows"] for t in previous["tables"]}
        shrunk = {n: (before[n], rows) for n, (rows, _) in expected.items() if rows < before.get(n, 0)}
        if shrunk:
            detail = ", ".join(f"{n}: {old} archived, {new} in the source" for n, (old, new) in shrunk.items())
            raise ArchiveError(
                f"the source now holds fewer rows than the archive ({detail}), probably purged by the POS; "
                "the archive was kept. Re-run with allow_shrink: true only if the source is right"
            )

    with contextlib.ExitStack() as publish:  # every file is published only once all are verified
        for table in dataset.tables:
            key = table_key(dataset.name, day, business.id, table.name)
            tmp = publish.enter_context(storage.staged(key))
            write_parquet(tmp, table, reader.batches(table.sql(reader.dialect, scope)))
            rows, sums = parquet_totals(tmp, table.money)
            want_rows, want_sums = expected[table.name]
            if rows != want_rows or sums != want_sums:
                raise ReconciliationError(
                    f"{table.name} does not reconcile with the source: archive {rows} rows {_fmt(sums)}, "
                    f"source {want_rows} rows {_fmt(want_sums)}"
                )
            result.tables.append(
                TableResult(
                    table.name,
                    key,
                    rows,
                    tmp.stat().st_size,
                    sha256_file(tmp),
                    {k: str(v) for k, v in sums.items()},
                    parquet_not_members(tmp, table.names),
                )
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
        "tables": [t.__dict__ for t in result.tables],
    }
    storage.write_bytes(marker, json.dumps(document, indent=2, sort_keys=True).encode())
    return result


def _fmt(sums: dict[str, Decimal]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sums.items()) or "(no money columns)"
