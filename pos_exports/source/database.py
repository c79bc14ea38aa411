"""Read-only access to the POS database named by `POS_DATABASE_URL` (PostgreSQL or SQLite).

Rows are streamed as Arrow record batches: PostgreSQL through ADBC (libpq COPY in binary, batch by
batch), SQLite through `fetchmany`. Every read of a business-day happens inside one read-only
transaction, so the archived rows and the reconciliation counts see the same snapshot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa

from pos_exports.core.urls import UrlError, parse_database_url
from pos_exports.redact import redact_url, scrub

SQLITE_BATCH_ROWS = 50_000
POS_TABLES = (
    "businesses",
    "storefronts",
    "business_storefronts",
    "users",
    "business_memberships",
    "categories",
    "products",
    "storefront_inventory",
    "stock_movements",
    "customers",
    "credit_transactions",
    "sales",
    "sale_items",
    "payments",
    "refunds",
    "audit_logs",
)


class PosSourceError(RuntimeError):
    """The POS database cannot be used: bad URL, unreachable server, missing tables."""


class SourceDataError(ValueError):
    """Rows in the POS database that break its own schema (e.g. text in a money column)."""


@dataclass(frozen=True)
class Dialect:
    """The few SQL spellings that differ between PostgreSQL and the SQLite demo database."""

    name: str

    def instant(self, column: str) -> str:
        # SQLite stores instants as ISO text with any UTC offset: compare them as Julian days
        # (computed from integer milliseconds, so equal instants compare equal).
        return f"julianday({column})" if self.name == "sqlite" else column

    def literal(self, instant: dt.datetime) -> str:
        text = instant.astimezone(dt.UTC).isoformat()
        return f"julianday('{text}')" if self.name == "sqlite" else f"TIMESTAMPTZ '{text}'"

    def in_window(self, column: str, start: dt.datetime, end: dt.datetime) -> str:
        col = self.instant(column)
        return f"({col} >= {self.literal(start)} AND {col} < {self.literal(end)})"

    def before(self, column: str, end: dt.datetime) -> str:
        return f"{self.instant(column)} < {self.literal(end)}"

    def json_text(self, column: str) -> str:
        return f"{column}::text" if self.name == "postgresql" else column

    def utc_text(self, column: str) -> str:
        """An instant as sortable UTC text (for MIN/MAX over SQLite's mixed-offset text)."""
        if self.name == "sqlite":
            return f"strftime('%Y-%m-%dT%H:%M:%fZ', {column})"
        return column


class PosReader:
    """One open, read-only connection to the POS database."""

    def __init__(self, dialect: Dialect, connection: object, description: str) -> None:
        self.dialect = dialect
        self._conn = connection
        self.description = description

    def batches(self, sql: str) -> Iterator[pa.RecordBatch]:
        """Stream the result of `sql` as record batches (never the whole result in memory)."""
        if self.dialect.name == "postgresql":
            cursor = self._conn.cursor()
            try:
                cursor.execute(sql)
                reader = cursor.fetch_record_batch()
                yield from reader
            finally:
                cursor.close()
            return
        cursor = self._conn.execute(sql)
        names = [d[0] for d in cursor.description]
        while rows := cursor.fetchmany(SQLITE_BATCH_ROWS):
            columns = list(zip(*rows, strict=True))
            yield pa.RecordBatch.from_arrays(
                [_sqlite_array(name, c) for name, c in zip(names, columns, strict=True)], names=names
            )

    def rows(self, sql: str) -> list[dict]:
        """A small result as a list of dicts (lookups and aggregates)."""
        out: list[dict] = []
        for batch in self.batches(sql):
            out.extend(batch.to_pylist())
        return out

    def new_snapshot(self) -> None:
        """End the current read transaction; the next query sees a fresh, consistent snapshot."""
        if self.dialect.name == "postgresql":
            self._conn.rollback()
        else:
            self._conn.rollback()
            self._conn.execute("BEGIN")


def _sqlite_array(name: str, values: tuple) -> pa.Array:
    # SQLite is dynamically typed: let Arrow infer, the archive then casts to the declared schema.
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise SourceDataError(f"column {name!r} holds values of mixed types: {exc}") from None


def parse_url(url: str) -> tuple[str, str]:
    """Validate a `POS_DATABASE_URL`; return (dialect name, connection target). The rule: `core.urls`."""
    try:
        return parse_database_url(url)
    except UrlError as exc:
        raise PosSourceError(scrub(exc)) from None


def _pg_uri(target: str) -> str:
    # Read-only, repeatable-read sessions: the exporter can never write, and every query of a
    # transaction sees one snapshot. A connect timeout turns an unreachable host into an error.
    options = quote("-c default_transaction_read_only=on -c default_transaction_isolation=repeatable\\ read")
    sep = "&" if "?" in target else "?"
    extra = f"options={options}"
    if "connect_timeout=" not in target:
        extra += "&connect_timeout=10"
    return f"{target}{sep}{extra}"


@contextlib.contextmanager
def connect(url: str) -> Iterator[PosReader]:
    """Open the POS database read-only, with a clear error when it cannot be used."""
    name, target = parse_url(url)
    if name == "sqlite":
        path = Path(target)
        from pos_exports import config  # here: its settings (pydantic-settings) are not the archive readers' cost

        if not path.exists() and path.resolve() == config.demo_database_path().resolve():
            from pos_exports.source.demo import ensure_demo_database

            ensure_demo_database(path)
        if not path.exists():
            raise PosSourceError(f"POS_DATABASE_URL names a SQLite file that does not exist: {path}")
        try:
            conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, isolation_level=None)
            conn.execute("BEGIN")
        except sqlite3.Error as exc:
            raise PosSourceError(f"cannot open the SQLite POS database {path}: {exc}") from None
        reader = PosReader(Dialect("sqlite"), conn, f"sqlite:///{path}")
    else:
        import adbc_driver_postgresql.dbapi as adbc

        try:
            conn = adbc.connect(_pg_uri(target))
        except Exception as exc:  # the driver raises several error types for one cause
            text = scrub(exc).strip()  # libpq may echo the connection string
            first = text.splitlines()[0] if text else type(exc).__name__
            raise PosSourceError(f"cannot connect to the POS database {redact_url(url)}: {first}") from None
        reader = PosReader(Dialect("postgresql"), conn, redact_url(url))
    try:
        _check_tables(reader)
        yield reader
    finally:
        with contextlib.suppress(Exception):
            conn.rollback()
        conn.close()


def _check_tables(reader: PosReader) -> None:
    if reader.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()"
    try:
        found = {r["name"] for r in reader.rows(sql)}
    except Exception as exc:
        raise PosSourceError(f"cannot read the POS database {reader.description}: {scrub(exc)}") from None
    missing = [t for t in POS_TABLES if t not in found]
    if missing:
        raise PosSourceError(f"{reader.description} is not a POS database: missing table(s) {', '.join(missing)}")


@dataclass(frozen=True)
class Business:
    id: int
    name: str
    timezone: str
    currency: str
    is_active: bool


def list_businesses(reader: PosReader) -> list[Business]:
    rows = reader.rows("SELECT id, name, timezone, currency, is_active FROM businesses ORDER BY id")
    return [
        Business(int(r["id"]), r["name"], r["timezone"], (r["currency"] or "").strip(), bool(r["is_active"]))
        for r in rows
    ]
