"""Deterministic, streaming Parquet files for the archive.

Row groups have a fixed number of rows whatever the size of the batches the source hands us, so
the same rows always give the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pos_exports.archive.tables import MONEY, NOT_MEMBER, Table, parse_not_member
from pos_exports.storage import Storage

ROW_GROUP_ROWS = 128 * 1024
_CENT = pa.scalar(Decimal("0.01"), pa.decimal128(3, 2))


class ArchiveDataError(ValueError):
    """Source rows that do not fit the archive's declared types."""


class ArchiveUnavailable(ConnectionError):
    """Archived data that storage could not hand over just now (unreachable, timed out): transient, worth
    another attempt (a ConnectionError, so `is_transient` says so), unlike `ArchiveCorrupt`."""


class ArchiveCorrupt(RuntimeError):
    """An archived file that is not what its manifest says (missing, other size or SHA-256).

    Permanent: reading it again gives the same bytes, so it is never retried (see `is_transient`);
    the message says what an operator can do about it."""

    REMEDY = "re-archive that day if the POS still holds it, otherwise restore the file from a backup"

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}; {self.REMEDY}")


def cents_to_money(column: pa.Array) -> pa.Array:
    """Integer cents as exact `decimal128(18, 2)` (never through a float)."""
    as_int = pc.cast(column, pa.int64())
    return pc.cast(pc.multiply(pc.cast(as_int, pa.decimal128(19, 0)), _CENT), MONEY)


def conform(batch: pa.RecordBatch, table: Table) -> pa.RecordBatch:
    """Cast a source batch to the table's declared schema (by column name, in declared order)."""
    arrays = []
    for name, type_ in table.fields:
        try:
            column = batch.column(name)
        except KeyError:
            raise ArchiveDataError(f"{table.name}: the source query returned no column {name!r}") from None
        try:
            if type_ == MONEY:
                column = cents_to_money(column)
            else:
                if isinstance(column.type, pa.ExtensionType):  # PostgreSQL json(b) arrives as arrow.json
                    column = column.storage
                column = pc.cast(column, type_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise ArchiveDataError(f"{table.name}.{name}: value does not fit {type_}: {exc}") from None
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=table.schema)


def write_parquet(path: Path, table: Table, batches: Iterable[pa.RecordBatch]) -> int:
    """Write conformed batches to `path` in fixed-size row groups; return the row count."""
    rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    with pq.ParquetWriter(path, table.schema, compression="zstd", write_statistics=True) as writer:
        for batch in batches:
            batch = conform(batch, table)
            pending.append(batch)
            pending_rows += batch.num_rows
            rows += batch.num_rows
            while pending_rows >= ROW_GROUP_ROWS:
                block = pa.Table.from_batches(pending, schema=table.schema)
                writer.write_table(block.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                rest = block.slice(ROW_GROUP_ROWS)
                pending, pending_rows = rest.to_batches(), rest.num_rows
        if pending_rows or rows == 0:
            writer.write_table(pa.Table.from_batches(pending, schema=table.schema), row_group_size=ROW_GROUP_ROWS)
    return rows


def parquet_totals(path: Path, money: tuple[str, ...]) -> tuple[int, dict[str, Decimal]]:
    """Row count and money sums of a Parquet file, read back batch by batch."""
    file = pq.ParquetFile(path)
    sums = {name: Decimal("0.00") for name in money}
    if money:
        for batch in file.iter_batches(columns=list(money), batch_size=ROW_GROUP_ROWS):
            for name in money:
                value = pc.sum(batch.column(name)).as_py()
                if value is not None:
                    sums[name] += value
    return file.metadata.num_rows, sums


def parquet_not_members(path: Path, columns: tuple[str, ...]) -> list[dict]:
    """The references to rows of another business in a written file: one entry per (column, what, id) with
    the rows naming it (the label of `tables._own`), sorted; empty when every name is the business's own."""
    counts: dict[tuple[str, str, int], int] = {}
    if columns:
        for batch in pq.ParquetFile(path).iter_batches(columns=list(columns), batch_size=ROW_GROUP_ROWS):
            for name in columns:
                column = batch.column(name)
                hits = pc.filter(column, pc.fill_null(pc.ends_with(column, NOT_MEMBER), False))
                for text in hits.to_pylist():
                    if parsed := parse_not_member(text):
                        key = (name, *parsed)
                        counts[key] = counts.get(key, 0) + 1
    return [{"column": c, "what": w, "id": i, "rows": n} for (c, w, i), n in sorted(counts.items())]


@contextlib.contextmanager
def open_verified(storage: Storage, key: str, size: int, sha256: str) -> Iterator[pa.Buffer]:
    """The bytes of an archived file, checked against its manifest's size and SHA-256 (the very bytes
    then parsed: a memory map of the file, or of its download); ArchiveCorrupt naming the file otherwise."""
    uri = storage.uri(key)
    with contextlib.ExitStack() as stack:
        try:
            path = stack.enter_context(storage.local_copy(key))
        except FileNotFoundError:
            raise ArchiveCorrupt(f"{uri}: named by the archive manifest but not in storage") from None
        data = stack.enter_context(pa.memory_map(str(path))).read_buffer()
        if data.size != size:
            raise ArchiveCorrupt(f"{uri}: {data.size} bytes, but the archive manifest says {size}")
        digest = hashlib.sha256(memoryview(data)).hexdigest()
        if digest != sha256:
            raise ArchiveCorrupt(f"{uri}: SHA-256 {digest}, but the archive manifest says {sha256}")
        yield data


def key_values(source: Path | pa.Buffer, columns: tuple[str, ...]) -> set:
    """The primary key values of a Parquet file (only those columns are read); tuples for a composite key."""
    data = pq.read_table(pa.BufferReader(source) if isinstance(source, pa.Buffer) else source, columns=list(columns))
    values = [data.column(c).to_pylist() for c in columns]
    return set(values[0]) if len(columns) == 1 else set(zip(*values, strict=True))
