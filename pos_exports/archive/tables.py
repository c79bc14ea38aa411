"""The archive's tables: what each dataset reads from the POS, and the typed schema it keeps.

Money arrives as integer cents (`*_cents`) and is kept as exact `decimal128(18, 2)` under the name
without the suffix; instants are UTC timestamps; every row is filtered on the business id in SQL.
Joined names (storefront, customer, product, category, user) come only through the business's own rows:
its storefront links, customers, products, categories and user memberships (`users` is global in the
POS). A reference to another business's row keeps its id but no name or e-mail: the name column holds
`user 7 (not a member of this business)` instead (`_own`), and the reconciliation lists it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from pos_exports.core import catalog
from pos_exports.source.database import Dialect

MONEY = pa.decimal128(18, 2)
INSTANT = pa.timestamp("us", tz="UTC")
I64, I32, TEXT, BOOL = pa.int64(), pa.int32(), pa.string(), pa.bool_()


@dataclass(frozen=True)
class Scope:
    """One business and one period: `[start, end)` in UTC; snapshots are taken as of `end`."""

    business_id: int
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class Table:
    name: str
    fields: tuple[tuple[str, pa.DataType], ...]
    sql: Callable[[Dialect, Scope], str]
    names: tuple[str, ...] = ()  # columns that hold `_own`'s label for a reference to another business
    key: tuple[str, ...] = ("id",)  # the primary key: a re-archive must keep every key it held

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(list(self.fields))

    @property
    def money(self) -> tuple[str, ...]:
        return tuple(name for name, type_ in self.fields if type_ == MONEY)


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "event": rows of the period; "snapshot": state as of the end of the period
    tables: tuple[Table, ...]
    description: str


def _sale_in_window(d: Dialect, s: Scope, alias: str = "s") -> str:
    # A sale belongs to the day it completed; drafts and never-completed sales to the day they were created.
    return (
        f"(({alias}.completed_at IS NOT NULL AND {d.in_window(f'{alias}.completed_at', s.start, s.end)}) OR "
        f"({alias}.completed_at IS NULL AND {d.in_window(f'{alias}.created_at', s.start, s.end)}))"
    )


def _user_name(alias: str) -> str:
    return f"TRIM({alias}.first_name || ' ' || {alias}.last_name)"


NOT_MEMBER = "(not a member of this business)"
_NOT_MEMBER_RE = re.compile(r"^([a-z]+) (-?\d+) " + re.escape(NOT_MEMBER) + "$")


def parse_not_member(text: str | None) -> tuple[str, int] | None:
    """(`what`, id) of the label `_own` puts in a name column (`user 7 (not a member of this business)`), else None."""
    m = _NOT_MEMBER_RE.match(text or "")
    return (m.group(1), int(m.group(2))) if m else None


def _own(what: str, ref: str, joined: str, name: str) -> str:
    """`name` when the reference `ref` matched one of the business's own rows (`joined` is its key through the
    business-filtered join), else the label `{what} {ref} (not a member of this business)` (NULL stays NULL)."""
    label = f"'{what} ' || CAST({ref} AS TEXT) || ' {NOT_MEMBER}'"
    return f"CASE WHEN {ref} IS NOT NULL AND {joined} IS NULL THEN {label} ELSE {name} END"


def _member(alias: str, ref: str, business: str) -> str:
    """Join the user `ref` only through a membership of `business` (any membership row, active or not: a former
    cashier's sales are still the business's history)."""
    return (
        f"LEFT JOIN business_memberships {alias}m ON {alias}m.user_id = {ref} AND {alias}m.business_id = {business}\n"
        f"LEFT JOIN users {alias} ON {alias}.id = {alias}m.user_id"
    )


SALES = Table(
    "sales",
    (
        ("id", I64),
        ("business_id", I64),
        ("storefront_id", I64),
        ("storefront_name", TEXT),
        ("customer_id", I64),
        ("customer_name", TEXT),
        ("user_id", I64),
        ("cashier_email", TEXT),
        ("cashier_name", TEXT),
        ("receipt_number", TEXT),
        ("sale_type", TEXT),
        ("status", TEXT),
        ("payment_type", TEXT),
        ("subtotal", MONEY),
        ("discount", MONEY),
        ("tax", MONEY),
        ("total", MONEY),
        ("created_at", INSTANT),
        ("completed_at", INSTANT),
    ),
    names=("storefront_name", "customer_name", "cashier_name"),
    sql=lambda d, s: (
        f"""
SELECT s.id, s.business_id, s.storefront_id, {_own("storefront", "s.storefront_id", "bs.storefront_id", "sf.name")}
       AS storefront_name, s.customer_id, {_own("customer", "s.customer_id", "c.id", "c.name")} AS customer_name,
       s.user_id, u.email AS cashier_email, {_own("user", "s.user_id", "u.id", _user_name("u"))} AS cashier_name,
       s.receipt_number, s.sale_type,
       s.status, s.payment_type, s.subtotal_cents AS subtotal, s.discount_cents AS discount, s.tax_cents AS tax,
       s.total_cents AS total, s.created_at, s.completed_at
FROM sales s
LEFT JOIN business_storefronts bs ON bs.storefront_id = s.storefront_id AND bs.business_id = s.business_id
LEFT JOIN storefronts sf ON sf.id = bs.storefront_id
LEFT JOIN customers c ON c.id = s.customer_id AND c.business_id = s.business_id
{_member("u", "s.user_id", "s.business_id")}
WHERE s.business_id = {s.business_id} AND {_sale_in_window(d, s)}
ORDER BY s.id"""
    ),
)

SALE_ITEMS = Table(
    "sale_items",
    (
        ("id", I64),
        ("sale_id", I64),
        ("receipt_number", TEXT),
        ("product_id", I64),
        ("product_name", TEXT),
        ("sku", TEXT),
        ("category_name", TEXT),
        ("quantity", I32),
        ("unit_price", MONEY),
        ("unit_cost", MONEY),
        ("discount", MONEY),
        ("tax", MONEY),
        ("total", MONEY),
    ),
    names=("product_name", "category_name"),
    sql=lambda d, s: (
        f"""
SELECT i.id, i.sale_id, s.receipt_number, i.product_id, {_own("product", "i.product_id", "p.id", "p.name")}
       AS product_name, p.sku, {_own("category", "p.category_id", "cat.id", "cat.name")} AS category_name,
       i.quantity, i.unit_price_cents AS unit_price, i.unit_cost_cents AS unit_cost, i.discount_cents AS discount,
       i.tax_cents AS tax, i.total_cents AS total
FROM sale_items i
JOIN sales s ON s.id = i.sale_id
LEFT JOIN products p ON p.id = i.product_id AND p.business_id = s.business_id
LEFT JOIN categories cat ON cat.id = p.category_id AND cat.business_id = s.business_id
WHERE s.business_id = {s.business_id} AND {_sale_in_window(d, s)}
ORDER BY i.id"""
    ),
)

PAYMENTS = Table(
    "payments",
    (
        ("id", I64),
        ("business_id", I64),
        ("sale_id", I64),
        ("receipt_number", TEXT),
        ("method", TEXT),
        ("amount", MONEY),
        ("created_at", INSTANT),
    ),
    lambda d, s: (
        f"""
SELECT p.id, p.business_id, p.sale_id, s.receipt_number, p.method, p.amount_cents AS amount, p.created_at
FROM payments p
LEFT JOIN sales s ON s.id = p.sale_id AND s.business_id = p.business_id
WHERE p.business_id = {s.business_id} AND {d.in_window("p.created_at", s.start, s.end)}
ORDER BY p.id"""
    ),
)

REFUNDS = Table(
    "refunds",
    (
        ("id", I64),
        ("business_id", I64),
        ("sale_id", I64),
        ("receipt_number", TEXT),
        ("amount", MONEY),
        ("reason", TEXT),
        ("user_id", I64),
        ("user_email", TEXT),
        ("created_at", INSTANT),
    ),
    names=("user_email",),
    sql=lambda d, s: (
        f"""
SELECT r.id, r.business_id, r.sale_id, s.receipt_number, r.amount_cents AS amount, r.reason, r.user_id,
       {_own("user", "r.user_id", "u.id", "u.email")} AS user_email, r.created_at
FROM refunds r
LEFT JOIN sales s ON s.id = r.sale_id AND s.business_id = r.business_id
{_member("u", "r.user_id", "r.business_id")}
WHERE r.business_id = {s.business_id} AND {d.in_window("r.created_at", s.start, s.end)}
ORDER BY r.id"""
    ),
)

CUSTOMERS = Table(
    "customers",
    (
        ("id", I64),
        ("business_id", I64),
        ("name", TEXT),
        ("email", TEXT),
        ("phone", TEXT),
        ("address", TEXT),
        ("customer_type", TEXT),
        ("credit_limit", MONEY),
        ("is_active", BOOL),
        ("is_blocked", BOOL),
        ("created_at", INSTANT),
        ("sales_count", I64),
        ("sales_total", MONEY),
        ("first_purchase_at", INSTANT),
        ("last_purchase_at", INSTANT),
    ),
    lambda d, s: (
        f"""
SELECT c.id, c.business_id, c.name, c.email, c.phone, c.address, c.customer_type,
       c.credit_limit_cents AS credit_limit, c.is_active, c.is_blocked, c.created_at,
       COALESCE(st.sales_count, 0) AS sales_count, COALESCE(st.sales_total, 0) AS sales_total,
       st.first_purchase_at, st.last_purchase_at
FROM customers c
LEFT JOIN (
    SELECT customer_id, COUNT(*) AS sales_count, SUM(total_cents) AS sales_total,
           MIN({d.utc_text("completed_at")}) AS first_purchase_at, MAX({d.utc_text("completed_at")}) AS last_purchase_at
    FROM sales
    WHERE business_id = {s.business_id} AND customer_id IS NOT NULL
      AND status IN ('completed', 'refunded', 'partially_refunded')
      AND completed_at IS NOT NULL AND {d.before("completed_at", s.end)}
    GROUP BY customer_id
) st ON st.customer_id = c.id
WHERE c.business_id = {s.business_id} AND {d.before("c.created_at", s.end)}
ORDER BY c.id"""
    ),
)

CREDIT_TRANSACTIONS = Table(
    "credit_transactions",
    (
        ("id", I64),
        ("business_id", I64),
        ("customer_id", I64),
        ("sale_id", I64),
        ("kind", TEXT),
        ("amount", MONEY),
        ("reference", TEXT),
        ("description", TEXT),
        ("created_at", INSTANT),
    ),
    lambda d, s: (
        f"""
SELECT t.id, t.business_id, t.customer_id, t.sale_id, t.kind, t.amount_cents AS amount, t.reference,
       t.description, t.created_at
FROM credit_transactions t
WHERE t.business_id = {s.business_id} AND {d.before("t.created_at", s.end)}
ORDER BY t.id"""
    ),
)

INVENTORY = Table(
    "inventory",
    (
        ("storefront_id", I64),
        ("storefront_name", TEXT),
        ("product_id", I64),
        ("product_name", TEXT),
        ("sku", TEXT),
        ("barcode", TEXT),
        ("unit", TEXT),
        ("category_name", TEXT),
        ("product_is_active", BOOL),
        ("quantity", I32),
        ("reorder_level", I32),
        ("unit_cost", MONEY),
        ("selling_price", MONEY),
        ("updated_at", INSTANT),
    ),
    names=("category_name",),
    sql=lambda d, s: (
        f"""
SELECT si.storefront_id, sf.name AS storefront_name, si.product_id, p.name AS product_name, p.sku, p.barcode,
       p.unit, {_own("category", "p.category_id", "cat.id", "cat.name")} AS category_name,
       p.is_active AS product_is_active, si.quantity, si.reorder_level,
       si.unit_cost_cents AS unit_cost, si.selling_price_cents AS selling_price, si.updated_at
FROM storefront_inventory si
JOIN business_storefronts bs ON bs.storefront_id = si.storefront_id AND bs.business_id = {s.business_id}
JOIN storefronts sf ON sf.id = si.storefront_id
JOIN products p ON p.id = si.product_id AND p.business_id = {s.business_id}
LEFT JOIN categories cat ON cat.id = p.category_id AND cat.business_id = {s.business_id}
ORDER BY si.storefront_id, si.product_id"""
    ),
    key=("storefront_id", "product_id"),
)

STOCK_MOVEMENTS = Table(
    "stock_movements",
    (
        ("id", I64),
        ("business_id", I64),
        ("storefront_id", I64),
        ("storefront_name", TEXT),
        ("product_id", I64),
        ("product_name", TEXT),
        ("sku", TEXT),
        ("quantity_change", I32),
        ("reason", TEXT),
        ("reference", TEXT),
        ("user_id", I64),
        ("user_email", TEXT),
        ("created_at", INSTANT),
    ),
    names=("storefront_name", "product_name", "user_email"),
    sql=lambda d, s: (
        f"""
SELECT m.id, m.business_id, m.storefront_id, {_own("storefront", "m.storefront_id", "bs.storefront_id", "sf.name")}
       AS storefront_name, m.product_id, {_own("product", "m.product_id", "p.id", "p.name")} AS product_name,
       p.sku, m.quantity_change, m.reason, m.reference, m.user_id, {_own("user", "m.user_id", "u.id", "u.email")}
       AS user_email, m.created_at
FROM stock_movements m
LEFT JOIN business_storefronts bs ON bs.storefront_id = m.storefront_id AND bs.business_id = m.business_id
LEFT JOIN storefronts sf ON sf.id = bs.storefront_id
LEFT JOIN products p ON p.id = m.product_id AND p.business_id = m.business_id
{_member("u", "m.user_id", "m.business_id")}
WHERE m.business_id = {s.business_id} AND {d.in_window("m.created_at", s.start, s.end)}
ORDER BY m.id"""
    ),
)

AUDIT_LOGS = Table(
    "audit_logs",
    (
        ("id", I64),
        ("business_id", I64),
        ("user_id", I64),
        ("user_email", TEXT),
        ("user_first_name", TEXT),
        ("user_last_name", TEXT),
        ("event_type", TEXT),
        ("sale_id", I64),
        ("customer_id", I64),
        ("payment_id", I64),
        ("refund_id", I64),
        ("description", TEXT),
        ("event_data", TEXT),
        ("ip_address", TEXT),
        ("user_agent", TEXT),
        ("created_at", INSTANT),
    ),
    names=("user_email",),
    sql=lambda d, s: (
        f"""
SELECT a.id, a.business_id, a.user_id, {_own("user", "a.user_id", "u.id", "u.email")} AS user_email,
       u.first_name AS user_first_name,
       u.last_name AS user_last_name, a.event_type, a.sale_id, a.customer_id, a.payment_id, a.refund_id,
       a.description, {d.json_text("a.event_data")} AS event_data, a.ip_address, a.user_agent, a.created_at
FROM audit_logs a
{_member("u", "a.user_id", "a.business_id")}
WHERE a.business_id = {s.business_id} AND {d.in_window("a.created_at", s.start, s.end)}
ORDER BY a.id"""
    ),
)

# Tables that describe state as of the end of the day (the others hold the day's events).
SNAPSHOT_TABLES = frozenset({"customers", "credit_transactions", "inventory"})

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "sales",
            "event",
            (SALES, SALE_ITEMS, PAYMENTS, REFUNDS),
            "Sales completed in the business-local day (drafts by creation), with their line items, "
            "and the payments and refunds created that day.",
        ),
        Dataset(
            "customers",
            "snapshot",
            (CUSTOMERS, CREDIT_TRANSACTIONS),
            "Customers as of the end of the day, with lifetime sales figures and the whole credit "
            "ledger up to that instant (for balances and FIFO aging).",
        ),
        Dataset(
            "inventory",
            "snapshot",
            (INVENTORY, STOCK_MOVEMENTS),
            "Stock per storefront and product as captured at the end of the day, and the day's stock movements.",
        ),
        Dataset(
            "audit_log", "event", (AUDIT_LOGS,), "Every audit event of the business-local day, with the acting user."
        ),
    )
}
assert tuple(DATASETS) == catalog.DATASETS, "the archive defines exactly the catalogue's datasets, in its order"
