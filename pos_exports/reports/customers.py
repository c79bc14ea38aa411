"""The customer export (docs/reports.md, "Customers"): a snapshot as of the end of the period.

Built from the customers snapshot archived on the period's last day, which holds every customer existing
then (with lifetime sales figures) and the whole credit ledger up to the end of that day: balances and
FIFO aging use the whole ledger; the Credit transactions section shows the last 50 per customer.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pos_exports.core.catalog import CREDIT_STATUSES
from pos_exports.reports.common import (
    captured_note,
    lazy_batches,
    local_time,
    new_report,
    pdf_sorted,
    read_day,
    require_snapshot,
    rows_section,
    schema_of,
    stream_section,
)
from pos_exports.reports.filters import validate_filters
from pos_exports.reports.logic import (
    BUCKETS,
    ZERO,
    available_credit,
    average,
    credit_status,
    fifo_aging,
    money,
)
from pos_exports.reports.model import Column, Figure, Report
from pos_exports.reports.period import Period
from pos_exports.source.database import Business
from pos_exports.storage import Storage

DATASET = "customers"
LAST_TRANSACTIONS = 50
CUSTOMER_TYPES = ("retail", "wholesale")
BUCKET_KEYS = ("aged_0_30", "aged_31_60", "aged_61_90", "aged_91_plus")

DETAIL_COLUMNS = (
    Column("customer_id", "Customer ID", "int"),
    Column("name", "Name"),
    Column("email", "Email"),
    Column("phone", "Phone"),
    Column("address", "Address"),
    Column("customer_type", "Type", "code"),
    Column("is_active", "Active"),
    Column("is_blocked", "Blocked"),
    Column("created_at", "Customer since", "datetime"),
    Column("credit_limit", "Credit limit", "money"),
    Column("outstanding_balance", "Outstanding balance", "money"),
    Column("available_credit", "Available credit", "money"),
    Column("credit_status", "Credit status", "code"),
    Column("sales_count", "Lifetime sales", "int"),
    Column("sales_total", "Lifetime sales amount", "money"),
    Column("average_sale", "Average sale", "money"),
    Column("first_purchase_at", "First purchase", "datetime"),
    Column("last_purchase_at", "Last purchase", "datetime"),
    Column("last_payment_at", "Last credit payment", "datetime"),
    Column("oldest_open_charge", "Oldest open charge", "date"),
)
AGING_COLUMNS = (
    Column("customer_id", "Customer ID", "int"),
    Column("name", "Name"),
    Column("customer_type", "Type", "code"),
    Column("credit_limit", "Credit limit", "money"),
    Column("outstanding_balance", "Outstanding balance", "money"),
    *(Column(key, f"{label} days", "money") for key, label in zip(BUCKET_KEYS, BUCKETS, strict=True)),
    Column("oldest_open_charge", "Oldest open charge", "date"),
    Column("credit_status", "Credit status", "code"),
)
TRANSACTION_COLUMNS = (
    Column("customer_id", "Customer ID", "int"),
    Column("customer_name", "Customer"),
    Column("created_at", "Date/time", "datetime"),
    Column("kind", "Kind", "code"),
    Column("amount", "Amount", "money"),
    Column("running_balance", "Running balance", "money"),
    Column("reference", "Reference"),
    Column("description", "Description"),
)
_LEDGER = ["id", "customer_id", "kind", "amount", "reference", "description", "created_at"]


def _ledger(storage: Storage, business: Business, day: dt.date, columns: list[str]) -> pa.Table:
    """The whole archived ledger as of the end of `day`, per customer and in time order."""
    table = read_day(storage, DATASET, "credit_transactions", business, day, columns)
    return table.sort_by([("customer_id", "ascending"), ("created_at", "ascending"), ("id", "ascending")])


def _yes_no(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def customer_rows(storage: Storage, business: Business, period: Period) -> list[dict]:
    """One dict per customer of the snapshot: identity, balance, FIFO aging, status (unfiltered)."""
    day = period.last_day
    customers = read_day(storage, DATASET, "customers", business, day).to_pylist()
    ledger = _ledger(storage, business, day, ["id", "customer_id", "kind", "amount", "created_at"])
    dates = pc.cast(local_time(ledger["created_at"], business.timezone), pa.date32()).to_pylist()
    entries: dict[int, list[tuple[dt.date, Decimal]]] = {}
    last_payment: dict[int, dt.datetime] = {}
    for cid, kind, amount, when, local_day in zip(
        ledger["customer_id"].to_pylist(),
        ledger["kind"].to_pylist(),
        ledger["amount"].to_pylist(),
        local_time(ledger["created_at"], business.timezone).to_pylist(),
        dates,
        strict=True,
    ):
        entries.setdefault(cid, []).append((local_day, amount))
        if kind == "payment":
            last_payment[cid] = when
    rows = []
    for c in customers:
        aging = fifo_aging(entries.get(c["id"], []), as_of=day)
        limit = money(c["credit_limit"])
        count = c["sales_count"] or 0
        rows.append(
            {
                "customer_id": c["id"],
                "name": c["name"],
                "email": c["email"],
                "phone": c["phone"],
                "address": c["address"],
                "customer_type": c["customer_type"],
                "is_active": _yes_no(c["is_active"]),
                "is_blocked": _yes_no(c["is_blocked"]),
                "active": bool(c["is_active"]),
                "blocked": bool(c["is_blocked"]),
                "created_at": c["created_at"],
                "credit_limit": limit,
                "outstanding_balance": aging.balance,
                "available_credit": available_credit(aging.balance, limit),
                "credit_status": credit_status(aging.balance, limit, bool(c["is_blocked"])),
                "sales_count": count,
                "sales_total": money(c["sales_total"]),
                "average_sale": average(money(c["sales_total"]), count),
                "first_purchase_at": c["first_purchase_at"],
                "last_purchase_at": c["last_purchase_at"],
                "last_payment_at": last_payment.get(c["id"]),
                "oldest_open_charge": aging.oldest_open,
                **dict(zip(BUCKET_KEYS, aging.buckets, strict=True)),
                "transactions": len(entries.get(c["id"], [])),
            }
        )
    rows.sort(key=lambda r: ((r["name"] or "").casefold(), r["customer_id"]))
    return rows


def apply_filters(rows: list[dict], filters: dict) -> list[dict]:
    """The customers matching every given filter (docs/reports.md, "Filters")."""
    out = []
    for r in rows:
        if "customer_type" in filters and r["customer_type"] != filters["customer_type"]:
            continue
        if "credit_status" in filters and r["credit_status"] != filters["credit_status"]:
            continue
        if "min_outstanding_balance" in filters and r["outstanding_balance"] < filters["min_outstanding_balance"]:
            continue
        if "is_active" in filters and r["active"] != filters["is_active"]:
            continue
        out.append(r)
    return out


def _transaction_tables(storage: Storage, business: Business, period: Period, shown: list[dict]):
    """The last 50 ledger entries of each shown customer (customer order), with the running balance
    over the whole ledger."""

    def tables() -> Iterator[pa.Table]:
        if not shown:
            return
        ledger = _ledger(storage, business, period.last_day, _LEDGER)
        ids = ledger["customer_id"].to_numpy()
        amounts = ledger["amount"]
        chunk: list[pa.Table] = []
        size = 0
        for customer in shown:
            cid = customer["customer_id"]
            start, end = int(np.searchsorted(ids, cid, "left")), int(np.searchsorted(ids, cid, "right"))
            if start == end:
                continue
            first = max(start, end - LAST_TRANSACTIONS)
            before = pc.sum(amounts.slice(start, first - start)).as_py() if first > start else None
            running = money(before)
            balances = []
            for amount in amounts.slice(first, end - first).to_pylist():
                running += amount
                balances.append(running)
            part = ledger.slice(first, end - first)
            chunk.append(
                pa.table(
                    {
                        "customer_id": part["customer_id"],
                        "customer_name": pa.array([customer["name"]] * part.num_rows, pa.string()),
                        "created_at": local_time(part["created_at"], business.timezone),
                        "kind": part["kind"],
                        "amount": part["amount"],
                        "running_balance": pa.array(balances, amounts.type),
                        "reference": part["reference"],
                        "description": part["description"],
                    }
                )
            )
            size += part.num_rows
            if size >= 50_000:
                yield pa.concat_tables(chunk)
                chunk, size = [], 0
        if chunk:
            yield pa.concat_tables(chunk)

    return tables


def _ids_of(table: pa.Table) -> pa.ChunkedArray:
    return table["customer_id"].cast(pa.int64())


def _pdf_transactions(storage: Storage, business: Business, period: Period, shown: list[dict], window_start):
    """The Credit transactions section's rows in the PDF's order: the period's transactions first (latest
    first), then those of the customers who owe most (largest outstanding balance first, each latest first).
    The rows and running balances are the section's own (the last 50 per customer)."""
    schema = schema_of(TRANSACTION_COLUMNS, business.timezone)

    def tables() -> Iterator[pa.Table]:
        parts = list(_transaction_tables(storage, business, period, shown)())
        if not parts:
            return
        table = pa.concat_tables(parts)
        ids = pa.array([r["customer_id"] for r in shown], pa.int64())
        balances = pa.array([r["outstanding_balance"] for r in shown], table["amount"].type)
        owed = pc.take(balances, pc.index_in(table["customer_id"].cast(pa.int64()), value_set=ids))
        start = pa.scalar(window_start, table["created_at"].type)
        in_period = pc.greater_equal(table["created_at"], start)
        # within the period: latest first, whoever it is; before it: by what the customer owes, then latest first
        keyed = table.append_column("_in_period", in_period.cast(pa.int8()))
        keyed = keyed.append_column("_owed", pc.if_else(in_period, pa.scalar(None, owed.type), owed))
        keyed = keyed.append_column("_who", pc.if_else(in_period, pa.scalar(None, pa.int64()), _ids_of(table)))
        keys = [("_in_period", "descending"), ("_owed", "descending"), ("_who", "ascending")]
        keys.append(("created_at", "descending"))
        yield keyed.sort_by(keys).select(schema.names)

    return lazy_batches(schema, tables)


def build(
    storage: Storage, business: Business, period: Period, filters: dict | None = None, *, now: dt.datetime | None = None
) -> Report:
    filters = validate_filters(DATASET, filters)
    record = require_snapshot(storage, DATASET, business, period, now)
    report = new_report(DATASET, "Customer report", business, period, filters)
    tz = business.timezone
    rows = apply_filters(customer_rows(storage, business, period), filters)
    owing = [r for r in rows if r["outstanding_balance"] > 0]
    in_credit = [r for r in rows if r["outstanding_balance"] < 0]
    types = Counter(r["customer_type"] for r in rows)
    statuses = Counter(r["credit_status"] for r in rows)
    as_of = period.last_day
    report.summary = [
        Figure("Balances as of the end of", as_of, "date"),
        Figure("Customers", len(rows), "int"),
        *(Figure(f"{t.capitalize()} customers", types.get(t, 0), "int") for t in CUSTOMER_TYPES),
        *(Figure(f"{t} customers", n, "int") for t, n in sorted(types.items()) if t not in CUSTOMER_TYPES),
        Figure("Active customers", sum(r["active"] for r in rows), "int"),
        Figure("Blocked customers", sum(r["blocked"] for r in rows), "int"),
        Figure("Customers with an outstanding balance", len(owing), "int"),
        Figure("Total outstanding", money(sum((r["outstanding_balance"] for r in owing), ZERO)), "money"),
        *(
            Figure(f"Aged {label} days", money(sum((r[key] for r in rows), ZERO)), "money")
            for key, label in zip(BUCKET_KEYS, BUCKETS, strict=True)
        ),
        Figure("Customers in credit (negative balance)", len(in_credit), "int"),
        Figure(
            "Credit held for customers",
            money(sum((r["outstanding_balance"] for r in in_credit), ZERO)),
            "money",
        ),
        *(Figure(f"Status {s.replace('_', ' ')}", statuses.get(s, 0), "int") for s in CREDIT_STATUSES),
    ]
    shown_transactions = sum(min(r["transactions"], LAST_TRANSACTIONS) for r in rows)
    owe_most = [("outstanding_balance", "descending"), ("name", "ascending"), ("customer_id", "ascending")]
    report.sections = [
        pdf_sorted(
            rows_section("customer_details", "Customer details", DETAIL_COLUMNS, schema_of(DETAIL_COLUMNS, tz), rows),
            owe_most,
            "who owes most first",
        ),
        pdf_sorted(
            rows_section(
                "credit_aging",
                "Credit aging",
                AGING_COLUMNS,
                schema_of(AGING_COLUMNS, tz),
                [r for r in rows if r["outstanding_balance"] != 0],
            ),
            owe_most,
            "who owes most first",
        ),
        stream_section(
            "credit_transactions",
            "Credit transactions",
            TRANSACTION_COLUMNS,
            schema_of(TRANSACTION_COLUMNS, tz),
            _transaction_tables(storage, business, period, rows),
            shown_transactions,
        ).ordered_for_pdf(
            _pdf_transactions(storage, business, period, rows, report.window_start),
            "this period's first, latest first; then who owes most",
        ),
    ]
    if not rows:
        report.notes.append("No customers match the filters." if filters else "No customers in this snapshot.")
    report.notes.append(
        f"Snapshot as of the end of {as_of.isoformat()} ({tz})"
        + captured_note(record, tz)
        + ". Aging is FIFO: payments settle the oldest charges first; what is left open is aged from "
        "the charge date. Lifetime sales cover the sales the POS still held then. Credit transactions: "
        f"the last {LAST_TRANSACTIONS} per customer, the running balance over the whole ledger."
    )
    return report
