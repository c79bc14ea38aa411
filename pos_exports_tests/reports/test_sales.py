"""The sales report from a real archive of fixture_data, against figures worked out by hand.

Business 1 (Africa/Accra, UTC+0), week Mon 3 - Sun 9 Mar 2025. Included sales (completed, refunded,
partially refunded, completed in the week): R-101, R-102, R-103, R-106, R-108. Not included: R-104
(cancelled), R-105 (draft), R-107 (February), R-110 (completed at 10 Mar 00:00:00, the next week).

Line by line (net = qty x price - discount, COGS = qty x cost):
  R-101  Water 2 x 1.50 - 0.00 = 3.00, COGS 2.00, tax 0.30; Juice 1 x 10.00 - 1.00 = 9.00, COGS 6.00, tax 0.90
  R-102  Chips 3 x 2.00 - 0.50 = 5.50, COGS 3 x 1.20 = 3.60, tax 0.55
  R-103  Water 10 x 1.20 = 12.00, COGS 10.00
  R-106  Juice 1 x 10.00 = 10.00, COGS 6.00
  R-108  Water 1 x 1.50 - 1.50 = 0.00, COGS 1.00 (margin blank)
Net revenue 3 + 9 + 5.50 + 12 + 10 + 0 = 39.50; tax 0.30 + 0.90 + 0.55 = 1.75;
discounts 1.00 + 0.50 + 1.50 = 3.00;
COGS 2 + 6 + 3.60 + 10 + 6 + 1 = 28.60; gross profit 10.90; margin 10.90 / 39.50 = 0.27594...
Payments created in the week: 13.20 (R-101) + 6.05 (R-102) + 10.00 (R-106) = 29.25 (R-103 is paid on 12 Mar).
Refunds created in the week: 1.00 (4 Mar, of the February sale R-107) + 10.00 (R-106) = 11.00
(the 2.00 refund of R-102 is created on 11 Mar, in the next week).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from pos_exports.archive.read import ArchiveMissing
from pos_exports.reports import BUILDERS
from pos_exports.reports.period import date_range, period_for
from pos_exports.reports.sales import build
from pos_exports_tests.reports.helpers import figures, rows, section, table

D = Decimal
WEEK = period_for("weekly", "2025-03-03")
NUMERIC = (
    "Net revenue",
    "Tax",
    "Discounts",
    "Total (incl. tax)",
    "COGS",
    "Gross profit",
    "Payments received",
    "Refunds issued",
    "Sales",
    "Cancelled sales",
    "Line items",
)


def test_week_summary(storage, accra):
    report = build(storage, accra, WEEK)
    f = figures(report)
    assert f["Net revenue"] == D("39.50")
    assert f["Tax"] == D("1.75")
    assert f["Discounts"] == D("3.00")
    assert f["Total (incl. tax)"] == D("41.25")  # 39.50 + 1.75
    assert f["COGS"] == D("28.60")
    assert f["Gross profit"] == D("10.90")
    assert f["Margin %"] == pytest.approx(10.90 / 39.50)
    assert f["Payments received"] == D("29.25")
    assert f["Refunds issued"] == D("11.00")
    assert (f["Sales"], f["Cancelled sales"], f["Line items"]) == (5, 1, 6)
    assert f["Average sale (net revenue)"] == D("7.90")  # 39.50 / 5
    assert all(isinstance(f[k], Decimal) for k in NUMERIC[:8])
    assert (report.window_start, report.window_end) == (
        dt.datetime(2025, 3, 3, tzinfo=dt.UTC),
        dt.datetime(2025, 3, 10, tzinfo=dt.UTC),
    )
    assert (report.period_label, report.currency, report.business_name) == (
        "3–9 Mar 2025",
        "GHS",
        "Accra Shop",
    )
    assert "No sales in this period." not in report.notes


def test_week_sales_section(storage, accra):
    report = build(storage, accra, WEEK)
    t = table(report, "sales")
    assert t.schema.field("total").type == pa.decimal128(18, 2)
    assert t.schema.field("completed_at").type == pa.timestamp("us", tz="Africa/Accra")
    got = {r["receipt_number"]: r for r in t.to_pylist()}
    assert [r["receipt_number"] for r in t.to_pylist()] == [
        "R-101",
        "R-102",
        "R-106",
        "R-108",
        "R-103",
    ]  # by time
    r101 = got["R-101"]
    assert (r101["customer_name"], r101["storefront_name"], r101["cashier_name"]) == (
        "Ama Mensah",
        "Osu",
        "Kofi Owusu",
    )
    assert (r101["subtotal"], r101["discount"], r101["tax"], r101["total"]) == (
        D("13.00"),
        D("1.00"),
        D("1.20"),
        D("13.20"),
    )
    # net 12.00, COGS 8.00, profit 4.00, margin 4 / 12
    assert (r101["paid"], r101["refunded"], r101["net_revenue"], r101["cogs"], r101["profit"]) == (
        D("13.20"),
        D("0.00"),
        D("12.00"),
        D("8.00"),
        D("4.00"),
    )
    assert r101["margin"] == pytest.approx(1 / 3)
    assert r101["completed_at"] == dt.datetime(2025, 3, 3, 10, tzinfo=dt.UTC)
    # R-102's 2.00 refund is on 11 Mar: not refunded within this week
    assert (got["R-102"]["paid"], got["R-102"]["refunded"], got["R-102"]["customer_name"]) == (
        D("6.05"),
        D("0.00"),
        "Walk-in",
    )
    assert (got["R-106"]["paid"], got["R-106"]["refunded"]) == (D("10.00"), D("10.00"))
    # R-103 is paid on 12 Mar, outside the week
    assert (got["R-103"]["paid"], got["R-103"]["profit"], got["R-103"]["status"]) == (
        D("0.00"),
        D("2.00"),
        "completed",
    )
    assert (got["R-108"]["net_revenue"], got["R-108"]["profit"], got["R-108"]["margin"]) == (
        D("0.00"),
        D("-1.00"),
        None,
    )


def test_week_line_items_and_breakdowns(storage, accra):
    report = build(storage, accra, WEEK)
    items = rows(report, "line_items")
    assert [
        (i["receipt_number"], i["product_name"], i["quantity"], i["net"], i["cogs"], i["profit"]) for i in items
    ] == [
        ("R-101", "Water", 2, D("3.00"), D("2.00"), D("1.00")),
        ("R-101", "Juice", 1, D("9.00"), D("6.00"), D("3.00")),
        ("R-102", "Chips", 3, D("5.50"), D("3.60"), D("1.90")),
        ("R-106", "Juice", 1, D("10.00"), D("6.00"), D("4.00")),
        ("R-108", "Water", 1, D("0.00"), D("1.00"), D("-1.00")),
        ("R-103", "Water", 10, D("12.00"), D("10.00"), D("2.00")),
    ]
    assert (
        items[2]["sku"],
        items[2]["unit_price"],
        items[2]["unit_cost"],
        items[2]["discount"],
        items[2]["tax"],
    ) == (
        "CHP-1",
        D("2.00"),
        D("1.20"),
        D("0.50"),
        D("0.55"),
    )
    assert items[2]["total"] == D("6.05")
    # Osu: net 12 + 12 + 10 + 0 = 34.00, COGS 8 + 10 + 6 + 1 = 25.00, tax 1.20,
    # discounts 1.00 + 1.50 = 2.50; Makola: R-102 5.50 / 3.60.
    stores = {r["storefront_name"]: r for r in rows(report, "by_storefront")}
    osu, makola = stores["Osu"], stores["Makola"]
    assert (
        osu["sales"],
        osu["net_revenue"],
        osu["cogs"],
        osu["gross_profit"],
        osu["tax"],
        osu["discounts"],
    ) == (
        4,
        D("34.00"),
        D("25.00"),
        D("9.00"),
        D("1.20"),
        D("2.50"),
    )
    assert osu["margin"] == pytest.approx(9 / 34)
    assert (makola["sales"], makola["net_revenue"], makola["cogs"], makola["total"]) == (
        1,
        D("5.50"),
        D("3.60"),
        D("6.05"),
    )
    # by payment type of the sale; payments received by method in the week: cash 13.20 + 10.00, card 6.05
    types = {r["payment_type"]: r for r in rows(report, "by_payment_type")}
    assert {k: (v["sales"], v["net_revenue"], v["payments_received"]) for k, v in types.items()} == {
        "cash": (3, D("22.00"), D("23.20")),
        "card": (1, D("5.50"), D("6.05")),
        "credit": (1, D("12.00"), D("0.00")),
    }
    assert report.chart.title == "Net revenue by day"
    assert report.chart.values == (12.0, 0.0, 5.5, 10.0, 0.0, 0.0, 12.0)
    assert report.chart.labels[0] == "3 Mar"


def test_sections_can_be_read_again(storage, accra):
    report = build(storage, accra, WEEK)
    for sec in report.sections:
        first = pa.Table.from_batches(list(sec.batches()))
        assert first.equals(pa.Table.from_batches(list(sec.batches())))


def test_refund_in_a_later_period_than_its_sale(storage, accra):
    # Week 10-16 Mar: sales R-110 (10 Mar 00:00:00, net 1.50) and R-109 (net 2 x 2.00 = 4.00, tax 0.40).
    # Payments: 1.50 (R-110) + 12.00 (R-103 of last week) + 4.40 (R-109) = 17.90.
    # Refunds: 2.00 of R-102, a sale of the previous week, which is not in this week's Sales section.
    report = build(storage, accra, period_for("weekly", "2025-03-10"))
    f = figures(report)
    assert (f["Sales"], f["Net revenue"], f["Tax"], f["COGS"]) == (2, D("5.50"), D("0.40"), D("3.40"))
    assert (f["Payments received"], f["Refunds issued"]) == (D("17.90"), D("2.00"))
    assert [r["receipt_number"] for r in rows(report, "sales")] == ["R-110", "R-109"]


def test_month(storage, accra):
    # March: the week above + R-109 + R-110: net 39.50 + 4.00 + 1.50 = 45.00;
    # COGS 28.60 + 2.40 + 1.00 = 32.00; payments 29.25 + 17.90 = 47.15; refunds 11.00 + 2.00 = 13.00;
    # tax 1.75 + 0.40 = 2.15. R-102 shows its 2.00 refund, R-103 its payment.
    report = build(storage, accra, period_for("monthly", "2025-03"))
    f = figures(report)
    assert (f["Sales"], f["Net revenue"], f["COGS"], f["Gross profit"]) == (
        7,
        D("45.00"),
        D("32.00"),
        D("13.00"),
    )
    assert (f["Payments received"], f["Refunds issued"], f["Tax"]) == (D("47.15"), D("13.00"), D("2.15"))
    got = {r["receipt_number"]: r for r in rows(report, "sales")}
    assert (got["R-102"]["paid"], got["R-102"]["refunded"]) == (D("6.05"), D("2.00"))
    assert got["R-103"]["paid"] == D("12.00")
    assert report.period_label == "March 2025" and len(report.chart.values) == 31


def test_week_is_the_sum_of_its_days(storage, accra):
    week = build(storage, accra, WEEK)
    days = [build(storage, accra, period_for("daily", d.isoformat())) for d in WEEK.days]
    for label in NUMERIC:
        assert figures(week)[label] == sum(figures(d)[label] for d in days), label
    for key in ("sales", "line_items"):
        assert rows(week, key) == [r for d in days for r in rows(d, key)], key
    assert week.chart.values == tuple(sum(d.chart.values) for d in days)


def test_day_chart_is_by_storefront(storage, accra):
    # 6 Mar: R-106 only (R-105 is a draft): net 10.00 at Osu; payment 10.00, refund 10.00 the same day
    report = build(storage, accra, period_for("daily", "2025-03-06"))
    f = figures(report)
    assert (f["Sales"], f["Net revenue"], f["Payments received"], f["Refunds issued"]) == (
        1,
        D("10.00"),
        D("10.00"),
        D("10.00"),
    )
    assert (report.chart.title, report.chart.labels, report.chart.values) == (
        "Net revenue by storefront",
        ("Osu",),
        (10.0,),
    )


def test_dst_week_in_new_york(storage, new_york):
    # NY window 3 Mar 05:00Z .. 10 Mar 04:00Z. N-301 (3 Mar 00:30 EST = 05:30Z) and N-302 (9 Mar 23:30 EDT =
    # 10 Mar 03:30Z) are in; N-304 (2 Mar 23:50 EST = 3 Mar 04:50Z) and N-303 (10 Mar 00:10 EDT) are not.
    # Net 2.50 + 3.50 = 6.00, COGS 1.00 + 1.00 = 2.00.
    report = build(storage, new_york, WEEK)
    assert (report.window_start, report.window_end) == (
        dt.datetime(2025, 3, 3, 5, tzinfo=dt.UTC),
        dt.datetime(2025, 3, 10, 4, tzinfo=dt.UTC),
    )
    f = figures(report)
    assert (f["Sales"], f["Net revenue"], f["COGS"], f["Payments received"]) == (
        2,
        D("6.00"),
        D("2.00"),
        D("2.50"),
    )
    sales = rows(report, "sales")
    assert [r["receipt_number"] for r in sales] == ["N-301", "N-302"]
    # shown in business time, with the offset of the day (EST, then EDT after the DST change)
    assert [r["completed_at"].utcoffset() for r in sales] == [dt.timedelta(hours=-5), dt.timedelta(hours=-4)]
    assert sales[1]["completed_at"].replace(tzinfo=None) == dt.datetime(2025, 3, 9, 23, 30)
    assert report.currency == "USD"


def test_businesses_do_not_mix(storage, accra, new_york):
    accra_receipts = {r["receipt_number"] for r in rows(build(storage, accra, WEEK), "sales")}
    ny_receipts = {r["receipt_number"] for r in rows(build(storage, new_york, WEEK), "sales")}
    assert all(r.startswith("R-") for r in accra_receipts) and all(r.startswith("N-") for r in ny_receipts)


def test_empty_period_is_a_valid_report(storage, accra):
    report = build(storage, accra, period_for("daily", "2025-03-08"))
    f = figures(report)
    assert "No sales in this period." in report.notes
    assert (
        f["Sales"],
        f["Net revenue"],
        f["Payments received"],
        f["Margin %"],
        f["Average sale (net revenue)"],
    ) == (
        0,
        D("0.00"),
        D("0.00"),
        None,
        None,
    )
    for key in ("sales", "line_items", "by_storefront", "by_payment_type"):
        assert rows(report, key) == []
        assert section(report, key).row_count == 0
    assert table(report, "sales").schema.field("paid").type == pa.decimal128(18, 2)


def test_missing_days_are_a_clear_error(storage, accra):
    with pytest.raises(ArchiveMissing, match=r"lacks 1 of the 2 day\(s\).*2025-04-01"):
        build(storage, accra, date_range(dt.date(2025, 3, 31), dt.date(2025, 4, 1)))


def test_sales_take_no_filters(storage, accra):
    with pytest.raises(ValueError, match="'storefront_id' is not a filter of the sales export"):
        BUILDERS["sales"](storage, accra, WEEK, {"storefront_id": 11})
    assert build(storage, accra, WEEK, {}).filters == {}
