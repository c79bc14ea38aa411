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
from dataclasses import dataclass, field, replace
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from pos_exports.archive.read import missing_days, read_batches
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
    change_ratio,
    cogs_array,
    gross_profit,
    margin,
    margin_array,
    money,
    money_sum,
    net_after_refunds,
    net_array,
    to_money,
)
from pos_exports.reports.model import COMPARISON, Chart, Column, Figure, Report
from pos_exports.reports.period import Period
from pos_exports.reports.period import previous as previous_period
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
# The PDF's Sales table: the profit and margin columns kept, type, subtotal and paid left to the XLSX/CSV.
SALES_PDF_COLUMNS = tuple(c.name for c in SALES_COLUMNS if c.name not in ("sale_type", "subtotal", "paid"))
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
CASHIER_COLUMNS = (
    Column("cashier_name", "Cashier"),
    Column("sales", "Sales", "int"),
    Column("net_revenue", "Net revenue", "money"),
    Column("gross_profit", "Gross profit", "money"),
    Column("total", "Total (incl. tax)", "money"),
    Column("average_sale", "Average sale (net revenue)", "money"),
)
PRODUCT_COLUMNS = (
    Column("product_name", "Product"),
    Column("sku", "SKU"),
    Column("category_name", "Category"),
    Column("quantity", "Quantity", "int"),
    Column("net_revenue", "Net revenue", "money"),
    Column("cogs", "COGS", "money"),
    Column("gross_profit", "Gross profit", "money"),
    Column("margin", "Margin %", "percent"),
)
CATEGORY_COLUMNS = (
    Column("category_name", "Category"),
    Column("quantity", "Quantity", "int"),
    Column("net_revenue", "Net revenue", "money"),
    Column("gross_profit", "Gross profit", "money"),
    Column("margin", "Margin %", "percent"),
    Column("share", "Share of net revenue", "percent"),
)
COMPARISON_COLUMNS = (
    Column("figure", "Figure"),
    Column("this_period", "This period", "money"),
    Column("previous_period", "Previous period", "money"),
    Column("change", "Change", "money"),
    Column("change_pct", "Change %", "percent"),
)
TOP_ROWS = 10  # the PDF shows the top 10 products and categories; the XLSX/CSV rank them all
NET_AFTER_REFUNDS = "Net sales after refunds"
NO_DATA = "no data"
PAYMENT_TYPE_COLUMNS = (
    Column("payment_type", "Payment type", "code"),
    Column("sales", "Sales", "int"),
    Column("net_revenue", "Net revenue", "money"),
    Column("total", "Total (incl. tax)", "money"),
    Column("payments_received", "Payments received (by method)", "money"),
)

_ITEM_MONEY = ["unit_price", "unit_cost", "discount", "tax", "total"]
_PRODUCT = ["product_id", "product_name", "sku", "category_name"]


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
class _Product:
    name: str | None
    sku: str | None
    category: str | None
    quantity: int = 0
    net: Decimal = ZERO
    cogs: Decimal = ZERO


@dataclass
class _Summary:
    all: _Totals = field(default_factory=_Totals)
    by_storefront: dict[str, _Totals] = field(default_factory=lambda: defaultdict(_Totals))
    by_payment_type: dict[str, _Totals] = field(default_factory=lambda: defaultdict(_Totals))
    by_cashier: dict[str, _Totals] = field(default_factory=lambda: defaultdict(_Totals))
    by_product: dict[int, _Product] = field(default_factory=dict)
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
NO_CASHIER = "(no cashier)"
NO_CATEGORY = "(no category)"
_GROUPS = (("storefront_name", NO_STOREFRONT), ("payment_type", NO_STOREFRONT), ("cashier_name", NO_CASHIER))


def _add_groups(out: _Summary, joined: pa.Table) -> Decimal:
    """Add one day's included sales (with their line figures) to the totals; return the day's net revenue."""
    aggregations = [("id", "count"), *((c, "sum") for c in _FIGURES)]
    day_net = ZERO
    targets = {
        "storefront_name": out.by_storefront,
        "payment_type": out.by_payment_type,
        "cashier_name": out.by_cashier,
    }
    for key, missing in _GROUPS:
        groups = targets[key]
        for row in joined.group_by(key).aggregate(aggregations).to_pylist():
            figures = {"sales": row["id_count"], **{c: money(row[f"{c}_sum"]) for c in _FIGURES}}
            groups[row[key] if row[key] is not None else missing].add(figures)
            if key == "storefront_name":
                out.all.add(figures)
                day_net += figures["net"]
    return day_net


def _add_products(out: _Summary, items: pa.Table) -> None:
    """Add one day's line items to the per-product totals (the first name, SKU and category seen are kept)."""
    if not items.num_rows:
        return
    grouped = items.group_by("product_id").aggregate(
        [("quantity", "sum"), ("net", "sum"), ("cogs", "sum"), *((c, "max") for c in _PRODUCT[1:])]
    )
    for row in grouped.to_pylist():
        product = out.by_product.get(row["product_id"])
        if product is None:
            product = _Product(row["product_name_max"], row["sku_max"], row["category_name_max"])
            out.by_product[row["product_id"]] = product
        product.quantity += row["quantity_sum"]
        product.net += money(row["net_sum"])
        product.cogs += money(row["cogs_sum"])


def _first_pass(storage: Storage, business: Business, period: Period) -> _Summary:
    out = _Summary()
    item_columns = ["sale_id", "quantity", *_ITEM_MONEY, *_PRODUCT]
    for day in period.days:
        sales = read_day(
            storage,
            DATASET,
            "sales",
            business,
            day,
            ["id", "storefront_name", "cashier_name", "status", "payment_type"],
        )
        out.cancelled += pc.sum(pc.equal(sales["status"], "cancelled").cast(pa.int64())).as_py() or 0
        sales = _included(sales)
        items = _items_of(read_day(storage, DATASET, "sale_items", business, day, item_columns), sales["id"])
        out.line_items += items.num_rows
        _add_products(out, items)
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


def _cashier_rows(groups: dict[str, _Totals]) -> list[dict]:
    """Sales by cashier, most net revenue first."""
    rows = [
        {
            "cashier_name": name,
            "sales": t.sales,
            "net_revenue": t.net,
            "gross_profit": t.profit,
            "total": t.total,
            "average_sale": average(t.net, t.sales),
        }
        for name, t in groups.items()
    ]
    return sorted(rows, key=lambda r: (-r["net_revenue"], -r["sales"], r["cashier_name"]))


def _product_rows(products: dict[int, _Product]) -> list[dict]:
    """Every product sold, by net revenue (then quantity), highest first."""
    rows = []
    for pid, p in products.items():
        profit = gross_profit(p.net, p.cogs)
        rows.append(
            {
                "product_id": pid,
                "product_name": p.name,
                "sku": p.sku,
                "category_name": p.category if p.category is not None else NO_CATEGORY,
                "quantity": p.quantity,
                "net_revenue": p.net,
                "cogs": p.cogs,
                "gross_profit": profit,
                "margin": margin(profit, p.net),
            }
        )
    return sorted(rows, key=lambda r: (-r["net_revenue"], -r["quantity"], r["product_name"] or "", r["product_id"]))


def _category_rows(products: list[dict], net_revenue: Decimal) -> list[dict]:
    """Product rows summed per category, by net revenue highest first; share = the category's part of the net
    revenue of the period."""
    groups: dict[str, dict] = {}
    for p in products:
        g = groups.setdefault(p["category_name"], {"quantity": 0, "net": ZERO, "cogs": ZERO})
        g["quantity"] += p["quantity"]
        g["net"] += p["net_revenue"]
        g["cogs"] += p["cogs"]
    rows = []
    for name, g in groups.items():
        profit = gross_profit(g["net"], g["cogs"])
        rows.append(
            {
                "category_name": name,
                "quantity": g["quantity"],
                "net_revenue": g["net"],
                "gross_profit": profit,
                "margin": margin(profit, g["net"]),
                "share": margin(g["net"], net_revenue),
            }
        )
    return sorted(rows, key=lambda r: (-r["net_revenue"], -r["quantity"], r["category_name"]))


@dataclass(frozen=True)
class _Previous:
    period: Period
    summary: _Summary | None  # None: not (wholly) archived


def _previous(storage: Storage, business: Business, period: Period) -> _Previous:
    """The previous period's totals, read from the archive; no figures when any of its days is not archived."""
    before = previous_period(period)
    if missing_days(storage, DATASET, business.id, before.days):
        return _Previous(before, None)
    return _Previous(before, _totals_pass(storage, business, before))


def _totals_pass(storage: Storage, business: Business, period: Period) -> _Summary:
    """The period's totals only (the figures `_headline` compares), by the same rules as `_first_pass`, reading
    fewer columns and grouping nothing."""
    out = _Summary()
    for day in period.days:
        sales = _included(read_day(storage, DATASET, "sales", business, day, ["id", "status"]))
        columns = ["sale_id", "quantity", *_ITEM_MONEY]
        items = _items_of(read_day(storage, DATASET, "sale_items", business, day, columns), sales["id"])
        figures = {"sales": sales.num_rows, **{c: money_sum(items[c]) for c in _FIGURES}}
        out.all.add(figures)
        out.payments += money_sum(read_day(storage, DATASET, "payments", business, day, ["amount"])["amount"])
        out.refunds += money_sum(read_day(storage, DATASET, "refunds", business, day, ["amount"])["amount"])
    return out


def _headline(s: _Summary) -> dict[str, Decimal]:
    """The figures compared with the previous period."""
    return {
        "Net revenue": money(s.all.net),
        NET_AFTER_REFUNDS: net_after_refunds(s.all.net, s.refunds),
        "Refunds issued": money(s.refunds),
        "Gross profit": s.all.profit,
        "Total (incl. tax)": money(s.all.total),
        "Payments received": money(s.payments),
    }


def _comparison_rows(s: _Summary, prev: _Previous) -> list[dict]:
    now = _headline(s)
    before = _headline(prev.summary) if prev.summary is not None else {}
    rows = []
    for label, value in now.items():
        old = before.get(label)
        rows.append(
            {
                "figure": label,
                "this_period": value,
                "previous_period": old,
                "change": None if old is None else money(value - old),
                "change_pct": change_ratio(value, old),
            }
        )
    return rows


def _comparison_figures(s: _Summary, prev: _Previous) -> list[Figure]:
    label = f"Previous period ({prev.period.label})"
    if prev.summary is None:
        return [Figure(label, f"{NO_DATA} (not archived)", "text")]
    p = prev.summary
    change = change_ratio(s.all.net, p.all.net)
    return [
        Figure(f"Net revenue, previous period ({prev.period.label})", money(p.all.net), "money"),
        Figure(
            "Net revenue change vs previous period",
            change if change is not None else NO_DATA,
            "percent" if change is not None else "text",
        ),
        Figure(f"Sales, previous period ({prev.period.label})", p.all.sales, "int"),
    ]


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
    prev = _previous(storage, business, period)
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
        Figure(f"{NET_AFTER_REFUNDS} (net revenue - refunds issued)", net_after_refunds(t.net, s.refunds), "money"),
        Figure("Sales", t.sales, "int"),
        Figure("Cancelled sales", s.cancelled, "int"),
        Figure("Average sale (net revenue)", average(t.net, t.sales), "money"),
        Figure("Line items", s.line_items, "int"),
        *_comparison_figures(s, prev),
    ]
    tz = business.timezone
    paid = _sum_by_sale(s.paid_parts, "paid")
    refunded = _sum_by_sale(s.refunded_parts, "refunded")
    products = _product_rows(s.by_product)
    report.sections = [
        replace(
            rows_section(
                COMPARISON,
                f"Compared with the previous period ({prev.period.label})",
                COMPARISON_COLUMNS,
                schema_of(COMPARISON_COLUMNS, tz),
                _comparison_rows(s, prev),
            ),
            sheet="Previous period",
        ),
        rows_section(
            "top_products",
            "Top products (by net revenue)",
            PRODUCT_COLUMNS,
            schema_of(PRODUCT_COLUMNS, tz),
            products,
            pdf_rows=TOP_ROWS,
        ),
        rows_section(
            "top_categories",
            "Top categories (by net revenue)",
            CATEGORY_COLUMNS,
            schema_of(CATEGORY_COLUMNS, tz),
            _category_rows(products, t.net),
            pdf_rows=TOP_ROWS,
        ),
        rows_section(
            "by_cashier",
            "Sales by cashier",
            CASHIER_COLUMNS,
            schema_of(CASHIER_COLUMNS, tz),
            _cashier_rows(s.by_cashier),
        ),
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
        ).shown_in_pdf(SALES_PDF_COLUMNS),
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
    if prev.summary is None:
        report.notes.append(
            f"Previous period ({prev.period.label}): no data, its sales are not (wholly) in the archive."
        )
    report.notes.append(
        "Net revenue excludes tax and is before refunds; net sales after refunds = net revenue - refunds issued. "
        "Payments received and refunds issued are those created in the period (a refund may be of an earlier "
        "sale) and are not subtracted from gross profit."
    )
    return report
