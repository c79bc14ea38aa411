"""What every report builder shares: archive checks, the report header, streamed sections."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from pos_exports.archive import capture
from pos_exports.archive.read import ArchiveMissing, archived, missing_days, read_table, shared_batches
from pos_exports.core.clock import utc_now
from pos_exports.reports.model import Column, Report, Section, table_section
from pos_exports.reports.period import Period
from pos_exports.source.database import Business
from pos_exports.storage import Storage

BATCH_ROWS = 64 * 1024


def require_days(storage: Storage, dataset: str, business: Business, period: Period) -> None:
    """Every day of an event period is archived, or ArchiveMissing naming the missing days."""
    missing = missing_days(storage, dataset, business.id, period.days)
    if missing:
        shown = ", ".join(d.isoformat() for d in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ArchiveMissing(
            f"the {dataset} archive of business {business.id} ({business.name}) lacks {len(missing)} of the "
            f"{len(period.days)} day(s) of {period.label}: {shown}. Archive those days first "
            f"({dataset}_archive partitions), then export again"
        )


def require_snapshot(
    storage: Storage, dataset: str, business: Business, period: Period, now: dt.datetime | None = None
) -> dict:
    """The reconciliation record of the snapshot at the end of the period, or ArchiveMissing saying whether it can
    still be captured (and how) or is lost, by the same rule as the archive and the retention guard."""
    day = period.last_day
    record = archived(storage, dataset, business.id, day)
    if record is None:
        now = now or utc_now()
        window = capture.snapshot_capture(day, business.timezone)
        what = f"the {dataset} snapshot of {day.isoformat()} (the end of {period.label}) for business {business.id} "
        what += f"({business.name})"
        state = window.state(now)
        if state == capture.LOST:
            raise ArchiveMissing(f"{what} was {window.note(now)}; so this export cannot be produced for that period")
        if state == capture.OPEN:
            raise ArchiveMissing(
                f"{what} is not in the archive yet and {window.note(now)}. Capture it now: "
                f"`{capture.archive_command(dataset, day, business.id)}` (or materialize the {dataset}_archive "
                f"partition {day.isoformat()}), then export again"
            )
        raise ArchiveMissing(f"{what} is {window.note(now)}")
    return record


def new_report(dataset: str, title: str, business: Business, period: Period, filters: dict) -> Report:
    win = period.window(business.timezone)
    return Report(
        dataset=dataset,
        title=title,
        business_id=business.id,
        business_name=business.name,
        currency=business.currency,
        timezone=business.timezone,
        period_kind=period.kind,
        period_key=period.key,
        period_label=period.label,
        window_start=win.start,
        window_end=win.end,
        filters=dict(filters),
    )


def stream_section(
    key: str,
    title: str,
    columns: tuple[Column, ...],
    schema: pa.Schema,
    tables: Callable[[], Iterable[pa.Table]],
    row_count: int,
    pdf_rows: int = 50,
) -> Section:
    """A section whose rows are produced lazily (one table per archive day, say) as record batches of
    exactly `schema` (one empty batch when there are no rows); `tables` is called again per renderer."""

    token = object()
    produce = lazy_batches(schema, tables)

    def batches() -> Iterator[pa.RecordBatch]:
        return shared_batches(token, produce)  # built once for every format of an export (`shared_reads`)

    return Section(key, title, columns, batches, row_count, pdf_rows)


def lazy_batches(schema: pa.Schema, tables: Callable[[], Iterable[pa.Table]]) -> Callable[[], Iterator[pa.RecordBatch]]:
    """Record batches of exactly `schema` from the tables `tables()` produces when asked (one empty batch when
    there are no rows); a reader that stops early (the PDF's first rows) reads no further tables."""

    def produce() -> Iterator[pa.RecordBatch]:
        produced = False
        for table in tables():
            if table.num_rows:
                table = table.select(schema.names).cast(schema)
                for batch in table.combine_chunks().to_batches(max_chunksize=BATCH_ROWS):
                    produced = True
                    yield batch
        if not produced:
            yield pa.RecordBatch.from_pylist([], schema=schema)

    return produce


def pdf_sorted(
    section: Section, keys: list[tuple[str, str]], order: str, ranks: dict[str, tuple[str, ...]] | None = None
) -> Section:
    """An in-memory section whose PDF shows its rows sorted by `keys` (a stable sort, done when the PDF reads
    them); a column named in `ranks` sorts by the position of its value in the given tuple (others last)."""
    ranks = ranks or {}

    def batches() -> Iterator[pa.RecordBatch]:
        table = pa.Table.from_batches(list(section.batches()))
        if not table.num_rows:
            yield from table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
            return
        sort_keys = []
        for name, direction in keys:
            if name in ranks:
                position = pc.fill_null(pc.index_in(table[name], value_set=pa.array(ranks[name])), len(ranks[name]))
                table = table.append_column(f"_rank_{name}", position)
                name = f"_rank_{name}"
            sort_keys.append((name, direction))
        yield from table.sort_by(sort_keys).select(section_names).to_batches()

    section_names = [c.name for c in section.columns]
    return section.ordered_for_pdf(batches, order)


def schema_of(columns: tuple[Column, ...], timezone: str, types: dict[str, pa.DataType] | None = None) -> pa.Schema:
    """The Arrow schema of a section: each column's type from its kind (model.py conventions), unless
    given in `types` (int32 quantities, say); datetimes in the business zone."""
    kinds = {
        "text": pa.string(),
        "int": pa.int64(),
        "money": pa.decimal128(18, 2),
        "percent": pa.float64(),
        "datetime": pa.timestamp("us", tz=timezone),
        "date": pa.date32(),
        "json": pa.string(),
        "code": pa.string(),
    }
    types = types or {}
    return pa.schema([(c.name, types.get(c.name) or kinds[c.kind]) for c in columns])


def rows_section(
    key: str, title: str, columns: tuple[Column, ...], schema: pa.Schema, rows: list[dict], pdf_rows: int = 50
) -> Section:
    """A small in-memory section (breakdowns, counts) from Python rows of exact values."""
    return memory_section(key, title, columns, pa.Table.from_pylist(rows, schema=schema), pdf_rows)


def memory_section(key: str, title: str, columns: tuple[Column, ...], table: pa.Table, pdf_rows: int = 50) -> Section:
    """A section over an in-memory table; like `model.table_section`, but an empty table still gives
    one (empty) batch, as streamed sections do."""
    if table.num_rows:
        return table_section(key, title, columns, table, pdf_rows)
    empty = pa.RecordBatch.from_pylist([], schema=table.schema)
    return Section(key, title, columns, lambda: iter([empty]), 0, pdf_rows)


def local_time(values, timezone: str):
    """UTC instants as tz-aware business time (same instant, the zone the renderers show)."""
    return pc.cast(values, pa.timestamp("us", tz=timezone))


def captured_note(record: dict, timezone: str) -> str:
    """ ", captured 2026-12-02 14:46 (Africa/Accra)": when a snapshot's archive record says it was taken, in
    the business's time zone as every time of the report (not a raw ISO instant); "" when it does not say."""
    captured = record.get("captured_at")
    if not captured:
        return ""
    at = dt.datetime.fromisoformat(str(captured)).astimezone(ZoneInfo(timezone))
    return f", captured {at:%Y-%m-%d %H:%M} ({timezone})"


def read_day(storage: Storage, dataset: str, table: str, business: Business, day: dt.date, columns=None) -> pa.Table:
    return read_table(storage, dataset, table, business.id, [day], columns)


def in_set(values, allowed: pa.Array):
    return pc.fill_null(pc.is_in(values, value_set=allowed), False)
