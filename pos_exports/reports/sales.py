"""The sales export of a period (docs/reports.md, "Sales"), built from the archive.

Included sales: status completed, refunded or partially_refunded, completed in the period (the archive
files each sale under the business-local day it completed, with its line items). The figures come from
the line items; payments and refunds are those created in the period (a refund may be of an earlier sale).

A first streaming pass over the period's days (few columns) gives the summary, the breakdowns and the
row counts; the Sales and Line items sections are produced again day by day when rendered.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from pos_exports.archive.read import read_batches
from pos_exports.reports.common import (
    in_set,
    local_time,
    new_report,
    read_day,
    require_days,
    rows_section,
    schema_of,
    stream_section,
)
from pos_exports.reports.filters import validate_filters
from pos_exports.reports.logic import (
    MONEY,
    ZERO,
    average,
    cogs_array,
    gross_profit,
    margin,
    margin_array,
    money,
    money_sum,
    net_array,
    to_money,
)
from pos_exports.reports.model import Chart, Column, Figure, Report
from pos_exports.reports.period import Period
from pos_exports.source.database import Business
from pos_exports.storage import Storage

DATASET = "sales"
INCLUDED = pa.array(["completed", "refunded", "partially_refunded"])
WALK_IN = "Walk-in"

SALES_COLUMNS = (
    Column("completed_at", "Date/time", "datetime"),
    Column("receipt_number", "Receipt"),
    Column("customer_name", "Customer"),
    Column("storefront_name", "Storefront"),
    Column("cashier_name", "Cashier"),
    Column("sale_type", "Type", "code"),
    Column("status", "Status", "code"),
    Column("payment_type", "Payment type", "code"),
    Column("subtotal", "Subtotal", "money"),
    Column("discount", "Discount", "money"),
    Column("tax", "Tax", "money"),
    Column("total", "Total", "money"),
    Column("paid", "Paid", "money"),
    Column("refunded", "Refunded", "money"),
    Column("net_revenue", "Net revenue", "money"),
    Column("cogs", "COGS", "money"),
    Column("profit", "Profit", "money"),
    Column("margin", "Margin %", "percent"),
)
ITEM_COLUMNS = (
    Column("completed_at", "Date/time", "datetime"),
    Column("receipt_number", "Receipt"),
    Column("product_name", "Product"),
    Column("sku", "SKU"),
    Column("category_name", "Category"),
    Column("quantity", "Quantity", "int"),
    Column("unit_price", "Unit price", "money"),
    Column("unit_cost", "Unit cost", "money"),
    Column("discount", "Discount", "money"),
    Column("tax", "Tax", "money"),
    Column("total", "Total", "money"),
    Column("net", "Net", "money"),
    Column("cogs", "COGS", "money"),
    Column("profit", "Profit", "money"),
)
STOREFRONT_COLUMNS = (
    Column("storefront_name", "Storefront"),
    Column("sales", "Sales", "int"),
    Column("net_revenue", "Net revenue", "money"),
    Column("tax", "Tax", "money"),
    Column("discounts", "Discounts", "money"),
    Column("cogs", "COGS", "money"),
    Column("gross_profit", "Gross profit", "money"),
    Column("margin", "Margin %", "percent"),
    Column("total", "Total (incl. tax)", "money"),
)
PAYMENT_TYPE_COLUMNS = (
    Column("payment_type", "Payment type", "code"),
    Column("sales", "Sales", "int"),
    Column("net_revenue", "Net revenue", "money"),
    Column("total", "Total (incl. tax)", "money"),
    Column("payments_received", "Payments received (by method)", "money"),
)

_ITEM_MONEY = ["unit_price", "unit_cost", "discount", "tax", "total"]


@dataclass
class _Totals:
    sales: int = 0
    net: Decimal = ZERO
    tax: Decimal = ZERO
    discount: Decimal = ZERO
    cogs: Decimal = ZERO
    total: Decimal = ZERO

    def add(self, other: dict) -> None:
        self.sales += other["sales"]
        self.net += other["net"]
        self.tax += other["tax"]
        self.discount += other["discount"]
        self.cogs += other["cogs"]
        self.total += other["total"]

    @property
    def profit(self) -> Decimal:
        return gross_profit(self.net, self.cogs)


@dataclass
class _Summary:
    all: _Totals = field(default_factory=_Totals)
    by_storefront: dict[str, _Totals] = field(default_factory=lambda: defaultdict(_Totals))
    by_payment_type: dict[str, _Totals] = field(default_factory=lambda: defaultdict(_Totals))
    net_by_day: dict[dt.date, Decimal] = field(default_factory=dict)
    cancelled: int = 0
    line_items: int = 0
    payments: Decimal = ZERO
    payments_by_method: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))
    refunds: Decimal = ZERO
    paid_parts: list[pa.Table] = field(default_factory=list)
    refunded_parts: list[pa.Table] = field(default_factory=list)
    # per day: sale_id, net, cogs of its included sales (so the Sales section need not read items again)
    per_sale_by_day: dict[dt.date, pa.Table] = field(default_factory=dict)


def _attach(rows: pa.Table, table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    """`rows` with `table`'s columns of the sale each row is (by `rows.id` = `table.sale_id`; null where none):
    a left join that keeps the order of `rows`, without the cost of a hash join and a sort."""
    index = pc.index_in(rows["id"], table["sale_id"])
    for column in columns:
        rows = rows.append_column(column, pc.take(table[column], index))
    return rows


def _included(sales: pa.Table) -> pa.Table:
    return sales.filter(in_set(sales["status"], INCLUDED))


def _items_of(items: pa.Table, sale_ids) -> pa.Table:
    """The line items of the given sales, with net, COGS and profit per line."""
    items = items.filter(in_set(items["sale_id"], sale_ids))
    net = net_array(items["quantity"], items["unit_price"], items["discount"])
    cogs = cogs_array(items["quantity"], items["unit_cost"])
    items = items.append_column("net", net).append_column("cogs", cogs)
    return items.append_column("profit", to_money(pc.subtract(net, cogs)))


def _per_sale(items: pa.Table) -> pa.Table:
    """Line figures summed per sale: sale_id, net, cogs, tax, discount, total (exact decimals)."""
    grouped = items.group_by("sale_id").aggregate([(c, "sum") for c in ("net", "cogs", "tax", "discount", "total")])
    return pa.table(
        {
            "sale_id": grouped["sale_id"],
            **{c: to_money(grouped[f"{c}_sum"]) for c in ("net", "cogs", "tax", "discount", "total")},
        }
    )


_FIGURES = ("net", "tax", "discount", "cogs", "total")
NO_STOREFRONT = "(no storefront)"


def _add_groups(out: _Summary, joined: pa.Table) -> Decimal:
    """Add one day's included sales (with their line figures) to the totals; return the day's net revenue."""
    aggregations = [("id", "count"), *((c, "sum") for c in _FIGURES)]
    day_net = ZERO
    for key, groups in (("storefront_name", out.by_storefront), ("payment_type", out.by_payment_type)):
        for row in joined.group_by(key).aggregate(aggregations).to_pylist():
            figures = {"sales": row["id_count"], **{c: money(row[f"{c}_sum"]) for c in _FIGURES}}
            groups[row[key] if row[key] is not None else NO_STOREFRONT].add(figures)
            if key == "storefront_name":
                out.all.add(figures)
                day_net += figures["net"]
    return day_net


def _first_pass(storage: Storage, business: Business, period: Period) -> _Summary:
    out = _Summary()
    for day in period.days:
        sales = read_day(storage, DATASET, "sales", business, day, ["id", "storefront_name", "status", "payment_type"])
        out.cancelled += pc.sum(pc.equal(sales["status"], "cancelled").cast(pa.int64())).as_py() or 0
        sales = _included(sales)
        items = _items_of(
            read_day(storage, DATASET, "sale_items", business, day, ["sale_id", "quantity", *_ITEM_MONEY]),
            sales["id"],
        )
        out.line_items += items.num_rows
        per_sale = _per_sale(items)
        out.per_sale_by_day[day] = per_sale.select(["sale_id", "net", "cogs"])
        out.net_by_day[day] = _add_groups(out, _attach(sales, per_sale, _FIGURES))
        payments = read_day(storage, DATASET, "payments", business, day, ["sale_id", "method", "amount"])
        out.payments += money_sum(payments["amount"])
        for row in payments.group_by("method").aggregate([("amount", "sum")]).to_pylist():
            out.payments_by_method[row["method"]] += money(row["amount_sum"])
        refunds = read_day(storage, DATASET, "refunds", business, day, ["sale_id", "amount"])
        out.refunds += money_sum(refunds["amount"])
        out.paid_parts.append(payments.select(["sale_id", "amount"]))
        out.refunded_parts.append(refunds.select(["sale_id", "amount"]))
    return out


def _sum_by_sale(parts: list[pa.Table], name: str) -> pa.Table:
    schema = pa.schema([("sale_id", pa.int64()), ("amount", MONEY)])
    table = pa.concat_tables([p.cast(schema) for p in parts]) if parts else schema.empty_table()
    grouped = table.group_by("sale_id").aggregate([("amount", "sum")])
    return pa.table({"sale_id": grouped["sale_id"], name: to_money(grouped["amount_sum"])})


def _sales_tables(
    storage: Storage, business: Business, period: Period, s: _Summary, paid: pa.Table, refunded: pa.Table
):
    def tables() -> Iterator[pa.Table]:
        for day in period.days:
            sales = _included(read_day(storage, DATASET, "sales", business, day))
            if not sales.num_rows:
                continue
            rows = sales.sort_by([("completed_at", "ascending"), ("id", "ascending")])
            rows = _attach(rows, s.per_sale_by_day[day], ("net", "cogs"))
            rows = _attach(_attach(rows, paid, ("paid",)), refunded, ("refunded",))
            zero = pa.scalar(ZERO, MONEY)
            net = pc.fill_null(to_money(rows["net"]), zero)
            cogs = pc.fill_null(to_money(rows["cogs"]), zero)
            profit = to_money(pc.subtract(net, cogs))
            walk_in = pc.if_else(pc.is_null(rows["customer_id"]), WALK_IN, rows["customer_name"])
            yield pa.table(
                {
                    "completed_at": local_time(rows["completed_at"], business.timezone),
                    "receipt_number": rows["receipt_number"],
                    "customer_name": walk_in,
                    "storefront_name": rows["storefront_name"],
                    "cashier_name": rows["cashier_name"],
                    "sale_type": rows["sale_type"],
                    "status": rows["status"],
                    "payment_type": rows["payment_type"],
                    "subtotal": rows["subtotal"],
                    "discount": rows["discount"],
                    "tax": rows["tax"],
                    "total": rows["total"],
                    "paid": pc.fill_null(to_money(rows["paid"]), zero),
                    "refunded": pc.fill_null(to_money(rows["refunded"]), zero),
                    "net_revenue": net,
                    "cogs": cogs,
                    "profit": profit,
                    "margin": margin_array(profit, net),
                }
            )

    return tables


def _item_tables(storage: Storage, business: Business, period: Period):
    def tables() -> Iterator[pa.Table]:
        for day in period.days:
            sales = _included(read_day(storage, DATASET, "sales", business, day, ["id", "status", "completed_at"]))
            if not sales.num_rows:
                continue
            when = local_time(sales["completed_at"], business.timezone)
            for batch in read_batches(storage, DATASET, "sale_items", business.id, [day]):
                items = _items_of(pa.Table.from_batches([batch]), sales["id"])
                if not items.num_rows:
                    continue
                # items stay in their archive order (by id); each takes its sale's completion time
                yield items.append_column("completed_at", pc.take(when, pc.index_in(items["sale_id"], sales["id"])))

    return tables


def _breakdown_rows(groups: dict[str, _Totals], payments_by_method: dict[str, Decimal] | None = None) -> list[dict]:
    rows = []
    keys = sorted(set(groups) | set(payments_by_method or {}))
    for key in keys:
        t = groups.get(key) or _Totals()
        row = {"sales": t.sales, "net_revenue": t.net, "total": t.total}
        if payments_by_method is None:
            row |= {
                "storefront_name": key,
                "tax": t.tax,
                "discounts": t.discount,
                "cogs": t.cogs,
                "gross_profit": t.profit,
                "margin": margin(t.profit, t.net),
            }
        else:
            row |= {"payment_type": key, "payments_received": money(payments_by_method.get(key))}
        rows.append(row)
    return rows


def _chart(period: Period, s: _Summary) -> Chart:
    if len(period.days) == 1:
        groups = sorted(s.by_storefront.items())
        return Chart(
            "Net revenue by storefront",
            tuple(name for name, _ in groups),
            tuple(float(t.net) for _, t in groups),
        )
    return Chart(
        "Net revenue by day",
        tuple(f"{d.day} {d:%b}" for d in period.days),
        tuple(float(s.net_by_day.get(d, ZERO)) for d in period.days),
    )


def build(
    storage: Storage, business: Business, period: Period, filters: dict | None = None, *, now: dt.datetime | None = None
) -> Report:
    filters = validate_filters(DATASET, filters)
    require_days(storage, DATASET, business, period)
    report = new_report(DATASET, "Sales report", business, period, filters)
    s = _first_pass(storage, business, period)
    t = s.all
    report.summary = [
        Figure("Net revenue", money(t.net), "money"),
        Figure("Tax", money(t.tax), "money"),
        Figure("Discounts", money(t.discount), "money"),
        Figure("Total (incl. tax)", money(t.total), "money"),
        Figure("COGS", money(t.cogs), "money"),
        Figure("Gross profit", t.profit, "money"),
        Figure("Margin %", margin(t.profit, t.net), "percent"),
        Figure("Payments received", money(s.payments), "money"),
        Figure("Refunds issued", money(s.refunds), "money"),
        Figure("Sales", t.sales, "int"),
        Figure("Cancelled sales", s.cancelled, "int"),
        Figure("Average sale (net revenue)", average(t.net, t.sales), "money"),
        Figure("Line items", s.line_items, "int"),
    ]
    tz = business.timezone
    paid = _sum_by_sale(s.paid_parts, "paid")
    refunded = _sum_by_sale(s.refunded_parts, "refunded")
    report.sections = [
        rows_section(
            "by_storefront",
            "By storefront",
            STOREFRONT_COLUMNS,
            schema_of(STOREFRONT_COLUMNS, tz),
            _breakdown_rows(s.by_storefront),
        ),
        rows_section(
            "by_payment_type",
            "By payment type",
            PAYMENT_TYPE_COLUMNS,
            schema_of(PAYMENT_TYPE_COLUMNS, tz),
            _breakdown_rows(s.by_payment_type, s.payments_by_method),
        ),
        stream_section(
            "sales",
            "Sales",
            SALES_COLUMNS,
            schema_of(SALES_COLUMNS, tz),
            _sales_tables(storage, business, period, s, paid, refunded),
            t.sales,
        ),
        stream_section(
            "line_items",
            "Line items",
            ITEM_COLUMNS,
            schema_of(ITEM_COLUMNS, tz, {"quantity": pa.int32()}),
            _item_tables(storage, business, period),
            s.line_items,
        ),
    ]
    report.chart = _chart(period, s)
    if t.sales == 0:
        report.notes.append("No sales in this period.")
    report.notes.append(
        "Net revenue excludes tax; payments received and refunds issued are those created in the period "
        "(a refund may be of an earlier sale) and are not subtracted from gross profit."
    )
    return report
