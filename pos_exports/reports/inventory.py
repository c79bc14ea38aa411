"""The inventory export (docs/reports.md, "Inventory"): stock as of the end of the period.

Stock levels come from the inventory snapshot archived on the period's last day; the Stock movements
section (when asked for with `include_movement_history`) holds the movements of every day of the period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from pos_exports.archive.read import read_batches
from pos_exports.core.catalog import STOCK_STATUSES
from pos_exports.reports.common import (
    captured_note,
    local_time,
    memory_section,
    new_report,
    pdf_sorted,
    read_day,
    require_days,
    require_snapshot,
    rows_section,
    schema_of,
    stream_section,
)
from pos_exports.reports.filters import validate_filters
from pos_exports.reports.logic import (
    ZERO,
    money,
    money_sum,
    stock_status_array,
    valuation_arrays,
)
from pos_exports.reports.model import Chart, Column, Figure, Report
from pos_exports.reports.period import Period
from pos_exports.source.database import Business
from pos_exports.storage import Storage

DATASET = "inventory"
ITEM_FILTERS = ("storefront_id", "category", "stock_status", "min_quantity", "exclude_zero_value")

ITEM_COLUMNS = (
    Column("storefront_id", "Storefront ID", "int"),
    Column("storefront_name", "Storefront"),
    Column("product_id", "Product ID", "int"),
    Column("product_name", "Product"),
    Column("sku", "SKU"),
    Column("barcode", "Barcode"),
    Column("category_name", "Category"),
    Column("unit", "Unit"),
    Column("product_active", "Active product"),
    Column("quantity", "Quantity", "int"),
    Column("reorder_level", "Reorder level", "int"),
    Column("stock_status", "Stock status", "code"),
    Column("unit_cost", "Unit cost", "money"),
    Column("selling_price", "Selling price", "money"),
    Column("value_at_cost", "Value at cost", "money"),
    Column("value_at_retail", "Value at retail", "money"),
    Column("margin", "Unit margin", "money"),
    Column("margin_pct", "Margin %", "percent"),
    Column("updated_at", "Last updated", "datetime"),
)
STOREFRONT_COLUMNS = (
    Column("storefront_id", "Storefront ID", "int"),
    Column("storefront_name", "Storefront"),
    Column("items", "Items", "int"),
    Column("quantity", "Quantity", "int"),
    Column("value_at_cost", "Value at cost", "money"),
    Column("value_at_retail", "Value at retail", "money"),
    *(Column(s, s.replace("_", " ").capitalize(), "int") for s in STOCK_STATUSES),
)
REORDER_COLUMNS = (
    Column("storefront_name", "Storefront"),
    Column("product_name", "Product"),
    Column("sku", "SKU"),
    Column("category_name", "Category"),
    Column("stock_status", "Stock status", "code"),
    Column("quantity", "Quantity", "int"),
    Column("reorder_level", "Reorder level", "int"),
    Column("unit_cost", "Unit cost", "money"),
    Column("selling_price", "Selling price", "money"),
)
MOVEMENT_COLUMNS = (
    Column("created_at", "Date/time", "datetime"),
    Column("storefront_name", "Storefront"),
    Column("product_name", "Product"),
    Column("sku", "SKU"),
    Column("quantity_change", "Quantity change", "int"),
    Column("reason", "Reason", "code"),
    Column("reference", "Reference"),
    Column("user_email", "User"),
)


def stock_items(inventory: pa.Table) -> pa.Table:
    """The archived inventory rows with stock status and valuation columns."""
    values = valuation_arrays(inventory["quantity"], inventory["unit_cost"], inventory["selling_price"])
    active = pc.if_else(inventory["product_is_active"], "yes", "no")
    table = inventory.append_column(
        "stock_status", stock_status_array(inventory["quantity"], inventory["reorder_level"])
    )
    table = table.append_column("product_active", active)
    for name, column in values.items():
        table = table.append_column(name, column)
    return table


def apply_filters(items: pa.Table, filters: dict) -> pa.Table:
    """The stock items matching every given item filter."""
    mask = pa.array([True] * items.num_rows, pa.bool_())
    if "storefront_id" in filters:
        mask = pc.and_(mask, pc.equal(items["storefront_id"], filters["storefront_id"]))
    if "category" in filters:
        wanted = str(filters["category"]).casefold()
        mask = pc.and_(mask, pc.equal(pc.utf8_lower(items["category_name"]), wanted))
    if "stock_status" in filters:
        mask = pc.and_(mask, pc.equal(items["stock_status"], filters["stock_status"]))
    if "min_quantity" in filters:
        mask = pc.and_(mask, pc.greater_equal(items["quantity"], filters["min_quantity"]))
    if filters.get("exclude_zero_value"):
        mask = pc.and_(mask, pc.not_equal(items["value_at_cost"], pa.scalar(ZERO, items["value_at_cost"].type)))
    return items.filter(pc.fill_null(mask, False))


def reorder_list(items: pa.Table) -> pa.Table:
    """The items at or below their reorder level (out of stock, then low stock), out of stock first, then the
    lowest quantity, then by storefront and product."""
    wanted = items.filter(pc.not_equal(items["stock_status"], "in_stock"))
    rank = pc.if_else(pc.equal(wanted["stock_status"], "out_of_stock"), 0, 1)
    wanted = wanted.append_column("_rank", rank)
    keys = [("_rank", "ascending"), ("quantity", "ascending"), ("storefront_name", "ascending")]
    keys += [("product_name", "ascending"), ("storefront_id", "ascending"), ("product_id", "ascending")]
    return wanted.sort_by(keys).drop_columns(["_rank"])


def _storefront_rows(items: pa.Table) -> list[dict]:
    rows: dict[tuple, dict] = {}
    for r in items.select(
        ["storefront_id", "storefront_name", "quantity", "stock_status", "value_at_cost", "value_at_retail"]
    ).to_pylist():
        key = (r["storefront_id"], r["storefront_name"])
        row = rows.setdefault(
            key,
            {
                "storefront_id": key[0],
                "storefront_name": key[1],
                "items": 0,
                "quantity": 0,
                "value_at_cost": ZERO,
                "value_at_retail": ZERO,
                **dict.fromkeys(STOCK_STATUSES, 0),
            },
        )
        row["items"] += 1
        row["quantity"] += r["quantity"]
        row["value_at_cost"] += r["value_at_cost"]
        row["value_at_retail"] += r["value_at_retail"]
        row[r["stock_status"]] += 1
    return [rows[k] for k in sorted(rows, key=lambda k: (k[1] or "", k[0]))]


def _movement_filter(filters: dict, shown: pa.Table):
    """A function keeping the movements of the shown stock items (every movement without item filters)."""
    if not any(filters.get(f) is not None and filters.get(f) is not False for f in ITEM_FILTERS):
        return lambda movements: movements
    pairs = shown.select(["storefront_id", "product_id"])

    def keep(movements: pa.Table) -> pa.Table:
        if not movements.num_rows:
            return movements
        return movements.join(pairs, ["storefront_id", "product_id"], join_type="left semi")

    return keep


def _movement_tables(storage: Storage, business: Business, period: Period, keep):
    def tables() -> Iterator[pa.Table]:
        for day in period.days:
            for batch in read_batches(storage, DATASET, "stock_movements", business.id, [day]):
                movements = keep(pa.Table.from_batches([batch]))
                if movements.num_rows:
                    movements = movements.sort_by([("created_at", "ascending"), ("id", "ascending")])
                    yield movements.set_column(
                        movements.schema.get_field_index("created_at"),
                        "created_at",
                        local_time(movements["created_at"], business.timezone),
                    )

    return tables


def build(
    storage: Storage, business: Business, period: Period, filters: dict | None = None, *, now: dt.datetime | None = None
) -> Report:
    filters = validate_filters(DATASET, filters)
    record = require_snapshot(storage, DATASET, business, period, now)
    with_movements = bool(filters.get("include_movement_history"))
    if with_movements:
        require_days(storage, DATASET, business, period)
    report = new_report(DATASET, "Inventory report", business, period, filters)
    tz = business.timezone
    all_items = stock_items(read_day(storage, DATASET, "inventory", business, period.last_day))
    items = apply_filters(all_items, filters)
    statuses = {
        s: int(pc.sum(pc.equal(items["stock_status"], s).cast(pa.int64())).as_py() or 0) for s in STOCK_STATUSES
    }
    quantity = int(pc.sum(items["quantity"].cast(pa.int64())).as_py() or 0)
    on_hand = int(pc.sum(pc.max_element_wise(items["quantity"].cast(pa.int64()), 0)).as_py() or 0)
    at_cost, at_retail = money_sum(items["value_at_cost"]), money_sum(items["value_at_retail"])
    by_storefront = _storefront_rows(items)
    report.summary = [
        Figure("Stock as of the end of", period.last_day, "date"),
        Figure("Items (storefront x product)", items.num_rows, "int"),
        Figure("Storefronts", len(by_storefront), "int"),
        Figure("Total quantity", quantity, "int"),
        Figure("Units on hand (negative stock counted as 0)", on_hand, "int"),
        Figure("Total value at cost", at_cost, "money"),
        Figure("Total value at retail", at_retail, "money"),
        Figure("Potential gross margin (retail - cost)", money(at_retail - at_cost), "money"),
        *(Figure(s.replace("_", " ").capitalize(), statuses[s], "int") for s in STOCK_STATUSES),
        Figure("Items to reorder (at or below reorder level)", statuses["low_stock"] + statuses["out_of_stock"], "int"),
    ]
    item_schema = schema_of(ITEM_COLUMNS, tz, {"quantity": pa.int32(), "reorder_level": pa.int32()})
    items_table = items.select(item_schema.names).cast(item_schema)
    reorder_schema = schema_of(REORDER_COLUMNS, tz, {"quantity": pa.int32(), "reorder_level": pa.int32()})
    reorder = reorder_list(items_table)
    report.sections = [
        rows_section(
            "by_storefront",
            "By storefront",
            STOREFRONT_COLUMNS,
            schema_of(STOREFRONT_COLUMNS, tz),
            by_storefront,
        ),
        pdf_sorted(
            memory_section("stock_items", "Stock items", ITEM_COLUMNS, items_table),
            [("stock_status", "ascending"), ("quantity", "ascending")],
            "out of stock, then low stock, first",
            {"stock_status": ("out_of_stock", "low_stock")},
        ),
        memory_section("reorder_list", "Reorder list", REORDER_COLUMNS, reorder.select(reorder_schema.names)),
    ]
    if with_movements:
        keep = _movement_filter(filters, items)
        count = 0
        for day in period.days:
            ids = read_day(storage, DATASET, "stock_movements", business, day, ["storefront_id", "product_id"])
            count += keep(ids).num_rows
        report.sections.append(
            stream_section(
                "stock_movements",
                "Stock movements",
                MOVEMENT_COLUMNS,
                schema_of(MOVEMENT_COLUMNS, tz, {"quantity_change": pa.int32()}),
                _movement_tables(storage, business, period, keep),
                count,
            )
        )
    else:
        report.notes.append("Stock movements are not included (ask with include_movement_history: true).")
    report.chart = Chart(
        "Stock value at cost by storefront",
        tuple(r["storefront_name"] or str(r["storefront_id"]) for r in by_storefront),
        tuple(float(r["value_at_cost"]) for r in by_storefront),
    )
    if not items.num_rows:
        report.notes.append("No stock items match the filters." if filters else "No stock items in this snapshot.")
    report.notes.append(
        f"Stock as of the end of {period.last_day.isoformat()} ({tz})"
        + captured_note(record, tz)
        + ". Value = max(quantity, 0) x unit cost or selling price; unit margin = selling price - unit cost."
    )
    return report
