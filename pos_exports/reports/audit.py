"""The audit log export (docs/reports.md, "Audit log"): every audit event of the period, oldest first."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from pos_exports import periods
from pos_exports.archive.read import read_batches
from pos_exports.reports.common import (
    lazy_batches,
    local_time,
    new_report,
    read_day,
    require_days,
    rows_section,
    schema_of,
    stream_section,
)
from pos_exports.reports.filters import validate_filters
from pos_exports.reports.logic import counts_by, pretty_json, rank_users
from pos_exports.reports.model import Chart, Column, Figure, Report
from pos_exports.reports.period import Period
from pos_exports.source.database import Business
from pos_exports.storage import Storage

DATASET = "audit_log"
TOP_USERS = 10
NO_USER = "(system / no user)"
PDF_CHUNK = 1024

LOG_COLUMNS = (
    Column("created_at", "Date/time", "datetime"),
    Column("event_type", "Event type", "code"),
    Column("user_email", "User email"),
    Column("user_name", "User name"),
    Column("ip_address", "IP address"),
    Column("user_agent", "User agent"),
    Column("sale_id", "Sale ID", "int"),
    Column("customer_id", "Customer ID", "int"),
    Column("payment_id", "Payment ID", "int"),
    Column("refund_id", "Refund ID", "int"),
    Column("description", "Description"),
    Column("event_data", "Event data", "json"),
)
TYPE_COLUMNS = (Column("event_type", "Event type", "code"), Column("events", "Events", "int"))
USER_COLUMNS = (
    Column("user_id", "User ID", "int"),
    Column("user_email", "User email"),
    Column("user_name", "User name"),
    Column("events", "Events", "int"),
)
_FILTER_COLUMNS = ("event_type", "user_id", "sale_id", "customer_id")


def _matching(table: pa.Table, filters: dict) -> pa.Table:
    for name in _FILTER_COLUMNS:
        if name in filters:
            table = table.filter(pc.fill_null(pc.equal(table[name], filters[name]), False))
    return table


def _user_name(table: pa.Table):
    first = pc.fill_null(table["user_first_name"], "")
    last = pc.fill_null(table["user_last_name"], "")
    name = pc.utf8_trim_whitespace(pc.binary_join_element_wise(first, last, " "))
    return pc.if_else(pc.equal(name, ""), pa.scalar(None, pa.string()), name)


def _log_tables(storage: Storage, business: Business, period: Period, filters: dict):
    def tables() -> Iterator[pa.Table]:
        for day in period.days:
            for batch in read_batches(storage, DATASET, "audit_logs", business.id, [day]):
                rows = _matching(pa.Table.from_batches([batch]), filters)
                if rows.num_rows:
                    yield _log_rows(rows.sort_by([("created_at", "ascending"), ("id", "ascending")]), business)

    return tables


def _latest_tables(storage: Storage, business: Business, period: Period, filters: dict):
    """The events latest first (for the PDF): the days from the last, each read whole and sorted newest first;
    a reader that stops after its first rows reads only the last days."""

    def tables() -> Iterator[pa.Table]:
        for day in reversed(period.days):
            rows = _matching(read_day(storage, DATASET, "audit_logs", business, day), filters)
            rows = rows.sort_by([("created_at", "descending"), ("id", "descending")])
            for start in range(0, rows.num_rows, PDF_CHUNK):  # event data is formatted only for rows read
                yield _log_rows(rows.slice(start, PDF_CHUNK), business)

    return tables


def _log_rows(rows: pa.Table, business: Business) -> pa.Table:
    data = pa.array([pretty_json(x) for x in rows["event_data"].to_pylist()], pa.string())
    return pa.table(
        {
            "created_at": local_time(rows["created_at"], business.timezone),
            "event_type": rows["event_type"],
            "user_email": rows["user_email"],
            "user_name": _user_name(rows),
            "ip_address": rows["ip_address"],
            "user_agent": rows["user_agent"],
            "sale_id": rows["sale_id"],
            "customer_id": rows["customer_id"],
            "payment_id": rows["payment_id"],
            "refund_id": rows["refund_id"],
            "description": rows["description"],
            "event_data": data,
        }
    )


def build(
    storage: Storage, business: Business, period: Period, filters: dict | None = None, *, now: dt.datetime | None = None
) -> Report:
    filters = validate_filters(DATASET, filters)
    require_days(storage, DATASET, business, period)
    report = new_report(DATASET, "Audit log report", business, period, filters)
    tz = business.timezone
    types: Counter = Counter()
    users: Counter = Counter()
    who: dict = {}
    first = last = None
    count = 0
    columns = [*_FILTER_COLUMNS, "user_email", "user_first_name", "user_last_name", "created_at"]
    for batch in read_batches(storage, DATASET, "audit_logs", business.id, period.days, columns):
        rows = _matching(pa.Table.from_batches([batch]), filters)
        if not rows.num_rows:
            continue
        count += rows.num_rows
        for row in rows.group_by("event_type").aggregate([("event_type", "count")]).to_pylist():
            types[row["event_type"]] += row["event_type_count"]
        names = _user_name(rows)
        grouped = (
            pa.table({"user_id": rows["user_id"], "user_email": rows["user_email"], "user_name": names})
            .group_by("user_id")
            .aggregate([("user_email", "max"), ("user_name", "max"), ("user_id", "count", pc.CountOptions("all"))])
        )
        for row in grouped.to_pylist():
            users[row["user_id"]] += row["user_id_count"]
            who.setdefault(row["user_id"], (row["user_email_max"], row["user_name_max"]))
        low, high = pc.min_max(rows["created_at"]).values()
        first = low.as_py() if first is None else min(first, low.as_py())
        last = high.as_py() if last is None else max(last, high.as_py())
    by_type = counts_by(types)
    top = rank_users(users, who, TOP_USERS)
    zone = periods.zone(tz)
    report.summary = [
        Figure("Events", count, "int"),
        Figure("Period", f"{period.first_day.isoformat()} to {period.last_day.isoformat()}", "text"),
        Figure("First event", _local(first, zone), "datetime"),
        Figure("Last event", _local(last, zone), "datetime"),
        Figure("Event types", len(by_type), "int"),
        Figure("Users", sum(1 for uid in users if uid is not None), "int"),
    ]
    report.sections = [
        rows_section(
            "event_types",
            "Events by type",
            TYPE_COLUMNS,
            schema_of(TYPE_COLUMNS, tz),
            [{"event_type": t, "events": n} for t, n in by_type],
        ),
        rows_section(
            "top_users",
            "Top users",
            USER_COLUMNS,
            schema_of(USER_COLUMNS, tz),
            [
                {
                    "user_id": u.user_id,
                    "user_email": u.email if u.user_id is not None else NO_USER,
                    "user_name": u.name,
                    "events": u.events,
                }
                for u in top
            ],
        ),
        stream_section(
            "audit_logs",
            "Audit logs",
            LOG_COLUMNS,
            schema_of(LOG_COLUMNS, tz),
            _log_tables(storage, business, period, filters),
            count,
        ).ordered_for_pdf(
            lazy_batches(schema_of(LOG_COLUMNS, tz), _latest_tables(storage, business, period, filters)),
            "latest first",
        ),
    ]
    report.chart = Chart(
        "Events by type", tuple(str(t) for t, _ in by_type[:12]), tuple(float(n) for _, n in by_type[:12]), codes=True
    )
    if not count:
        report.notes.append(
            "No audit events match the filters in this period." if filters else "No audit events in this period."
        )
    return report


def _local(instant, zone):
    return None if instant is None else instant.astimezone(zone)
