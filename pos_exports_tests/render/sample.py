"""A small hand-built report with every column kind and the awkward values the renderers must survive."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from decimal import Decimal

import pyarrow as pa

from pos_exports.reports.model import Chart, Column, Figure, Report, Section, table_section

TZ = "Asia/Tokyo"
TOKYO = zoneinfo.ZoneInfo(TZ)
LONG_TEXT = "".join(chr(ord("a") + i % 26) for i in range(40_000))
NAMES = [
    "王小明",
    "فاطمة الزهراء",
    "José Álvarez",
    "Łódź Bakery",
    "<b>Bold</b> & Co",
    "=SUM(A1)",
    "+233 20",
    "-5 Main St",
    "@handle",
    "\tTab",
    "＝cmd",
    "bad\x07bell",
    LONG_TEXT,
]
FORMULA_TEXTS = ["=SUM(A1)", "+233 20", "-5 Main St", "@handle", "\tTab", "＝cmd"]
SALE_ROWS = 120
FIRST_SALE = dt.datetime(2025, 3, 9, 10, 0, 0, tzinfo=TOKYO)
META = json.dumps({"note": "line one", "items": [1, 2]}, indent=2)

SALES_COLUMNS = (
    Column("completed_at", "Completed at", "datetime"),
    Column("business_day", "Business day", "date"),
    Column("receipt", "Receipt"),
    Column("customer", "Customer"),
    Column("quantity", "Quantity", "int"),
    Column("total", "Total", "money"),
    Column("margin", "Margin %", "percent"),
    Column("meta", "Metadata", "json"),
)


def _money(values: list[str | None]) -> pa.Array:
    return pa.array([None if v is None else Decimal(v) for v in values], pa.decimal128(18, 2))


def sales_table() -> pa.Table:
    n = SALE_ROWS
    customers = NAMES + [f"Customer {i}" for i in range(len(NAMES), n)]
    totals = ["1234.50", "-5.00", "0.00"] + [f"{10 + i}.25" for i in range(3, n)]
    margins = [0.1547, None, 0.0] + [0.25] * (n - 3)
    times = [FIRST_SALE + dt.timedelta(minutes=7 * i) for i in range(n)]
    return pa.table(
        {
            "completed_at": pa.array(times, pa.timestamp("us", tz=TZ)),
            "business_day": pa.array([t.date() for t in times], pa.date32()),
            "receipt": [f"R-{1000 + i}" for i in range(n)],
            "customer": customers,
            "quantity": pa.array([i % 5 - 1 for i in range(n)], pa.int64()),
            "total": _money(totals),
            "margin": pa.array(margins, pa.float64()),
            "meta": [META if i % 2 == 0 else None for i in range(n)],
        }
    )


STORE_COLUMNS = (
    Column("storefront", "Storefront"),
    Column("sales", "Sales", "int"),
    Column("net", "Net revenue", "money"),
)


def stores_table() -> pa.Table:
    return pa.table(
        {
            "storefront": ["Main St", "王府井", "Łódź"],
            "sales": pa.array([70, 30, 20], pa.int64()),
            "net": _money(["2000.00", "800.25", "68.50"]),
        }
    )


def sample_report(sections: list[Section] | None = None) -> Report:
    start = dt.datetime(2025, 3, 9, tzinfo=TOKYO).astimezone(dt.UTC)
    end = dt.datetime(2025, 3, 10, tzinfo=TOKYO).astimezone(dt.UTC)
    if sections is None:
        sections = [
            table_section("sales", "Sales", SALES_COLUMNS, sales_table()),
            table_section("storefronts", "By storefront", STORE_COLUMNS, stores_table()),
        ]
    return Report(
        dataset="sales",
        title="Sales report",
        business_id=7,
        business_name="Café Łódź 王 & Co",
        currency="JPY",
        timezone=TZ,
        period_kind="daily",
        period_key="2025-03-09",
        period_label="9 Mar 2025",
        window_start=start,
        window_end=end,
        summary=[
            Figure("Net revenue", Decimal("2868.75"), "money"),
            Figure("Refunds issued", Decimal("-12.50"), "money"),
            Figure("Margin %", 0.1547, "percent"),
            Figure("Sale count", 120, "int"),
            Figure("First sale", FIRST_SALE, "datetime"),
            Figure("First day", dt.date(2025, 3, 9), "date"),
            Figure("Top customer", "=cmd", "text"),
            Figure("Average sale", None, "money"),
        ],
        sections=sections,
        chart=Chart("Net revenue by storefront", ("Main St", "王府井", "Łódź"), (2000.0, 800.25, 68.5)),
        notes=["Refunds may belong to sales of earlier periods."],
        filters={"customer_type": "retail", "min_quantity": -5},
    )
