"""The inventory report: the snapshot of 9 Mar 2025 of business 1, worked out by hand.

  Osu    Water   qty 10, reorder 5  -> in_stock      10 x 1.00 = 10.00 at cost, 10 x 1.50 = 15.00 at retail
  Makola Water   qty -2, reorder 5  -> out_of_stock  0.00 / 0.00 (negative stock counts as 0), margin 0.50
  Osu    Juice   qty 5,  reorder 5  -> low_stock     5 x 6.00 = 30.00 / 5 x 10.00 = 50.00, margin 4.00 = 40 %
  Osu    Chips   qty 0,  reorder 2  -> out_of_stock  0.00 / 0.00
  Makola Chips   qty 40, reorder 10 -> in_stock      40 x 1.20 = 48.00 / 40 x 2.00 = 80.00
  Makola Juice   qty 3,  reorder 0  -> in_stock      3 x 6.00 = 18.00 / price 0.00 -> 0.00, margin -6.00,
                                                     margin % blank
Totals: 6 items, quantity 10 - 2 + 5 + 0 + 40 + 3 = 56, at cost 106.00, at retail 145.00;
Osu 3 items, qty 15, 40.00 / 65.00; Makola 3 items, qty 41, 66.00 / 80.00.
Movements of the week: 3 Mar Osu Water -2, 5 Mar Makola Chips +50 and -3, 9 Mar 23:30 Osu Water -10.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pos_exports.archive.read import ArchiveMissing
from pos_exports.reports.inventory import build
from pos_exports.reports.period import date_range, period_for
from pos_exports_tests.reports.helpers import figures, rows, table

D = Decimal
WEEK = period_for("weekly", "2025-03-03")


def test_summary_and_storefronts(storage, accra):
    report = build(storage, accra, WEEK)
    f = figures(report)
    assert (f["Items (storefront x product)"], f["Total quantity"], f["Storefronts"]) == (6, 56, 2)
    assert f["Units on hand (negative stock counted as 0)"] == 58
    assert (f["Total value at cost"], f["Total value at retail"]) == (D("106.00"), D("145.00"))
    assert f["Potential gross margin (retail - cost)"] == D("39.00")
    assert (f["In stock"], f["Low stock"], f["Out of stock"]) == (3, 1, 2)
    stores = {r["storefront_name"]: r for r in rows(report, "by_storefront")}
    assert (stores["Osu"]["items"], stores["Osu"]["quantity"], stores["Osu"]["value_at_cost"]) == (
        3,
        15,
        D("40.00"),
    )
    assert (stores["Osu"]["in_stock"], stores["Osu"]["low_stock"], stores["Osu"]["out_of_stock"]) == (1, 1, 1)
    assert (stores["Makola"]["quantity"], stores["Makola"]["value_at_retail"]) == (41, D("80.00"))
    assert "Stock movements are not included" in report.notes[0]
    assert [s.key for s in report.sections] == ["by_storefront", "stock_items", "reorder_list"]


def test_stock_items(storage, accra):
    t = table(build(storage, accra, WEEK), "stock_items")
    assert len(t.column_names) == 19
    got = {(r["storefront_name"], r["product_name"]): r for r in t.to_pylist()}
    assert set(got) == {
        ("Osu", "Water"),
        ("Makola", "Water"),
        ("Osu", "Juice"),
        ("Osu", "Chips"),
        ("Makola", "Chips"),
        ("Makola", "Juice"),
    }  # business 2's Bagel is not there

    def view(key):
        r = got[key]
        return r["quantity"], r["stock_status"], r["value_at_cost"], r["value_at_retail"], r["margin"]

    assert view(("Osu", "Water")) == (10, "in_stock", D("10.00"), D("15.00"), D("0.50"))
    assert view(("Makola", "Water")) == (-2, "out_of_stock", D("0.00"), D("0.00"), D("0.50"))
    assert view(("Osu", "Juice")) == (5, "low_stock", D("30.00"), D("50.00"), D("4.00"))
    assert view(("Osu", "Chips")) == (0, "out_of_stock", D("0.00"), D("0.00"), D("0.80"))
    assert view(("Makola", "Juice")) == (3, "in_stock", D("18.00"), D("0.00"), D("-6.00"))
    assert got[("Osu", "Juice")]["margin_pct"] == pytest.approx(0.4)
    assert got[("Makola", "Juice")]["margin_pct"] is None
    water = got[("Osu", "Water")]
    assert (
        water["sku"],
        water["barcode"],
        water["category_name"],
        water["unit"],
        water["product_active"],
    ) == (
        "WAT-500",
        "600001",
        "Drinks",
        "bottle",
        "yes",
    )


def test_movements_when_asked(storage, accra):
    report = build(storage, accra, WEEK, {"include_movement_history": "true"})
    moves = rows(report, "stock_movements")
    assert [(m["storefront_name"], m["product_name"], m["quantity_change"], m["reason"]) for m in moves] == [
        ("Osu", "Water", -2, "sale"),
        ("Makola", "Chips", 50, "purchase"),
        ("Makola", "Chips", -3, "sale"),
        ("Osu", "Water", -10, "sale"),
    ]
    assert moves[-1]["created_at"] == dt.datetime(2025, 3, 9, 23, 30, tzinfo=dt.UTC)
    assert str(moves[-1]["created_at"].tzinfo) == "Africa/Accra"
    only_makola = build(storage, accra, WEEK, {"include_movement_history": True, "storefront_id": "12"})
    assert [m["quantity_change"] for m in rows(only_makola, "stock_movements")] == [50, -3]


def test_movements_need_every_day(storage, accra):
    # the snapshot of 9 Mar exists, but the movements of 2 Mar were never archived
    period = date_range(dt.date(2025, 3, 2), dt.date(2025, 3, 9))
    with pytest.raises(ArchiveMissing, match="2025-03-02"):
        build(storage, accra, period, {"include_movement_history": True})
    assert figures(build(storage, accra, period))["Total quantity"] == 56  # without movements: the snapshot only


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"storefront_id": 12}, {("Makola", "Water"), ("Makola", "Chips"), ("Makola", "Juice")}),
        ({"category": "snacks"}, {("Osu", "Chips"), ("Makola", "Chips")}),  # case-insensitive
        ({"stock_status": "out_of_stock"}, {("Makola", "Water"), ("Osu", "Chips")}),
        ({"min_quantity": "5"}, {("Osu", "Water"), ("Osu", "Juice"), ("Makola", "Chips")}),
        (
            {"exclude_zero_value": True},
            {("Osu", "Water"), ("Osu", "Juice"), ("Makola", "Chips"), ("Makola", "Juice")},
        ),
    ],
)
def test_filters(storage, accra, filters, expected):
    report = build(storage, accra, WEEK, filters)
    assert {(r["storefront_name"], r["product_name"]) for r in rows(report, "stock_items")} == expected
    assert figures(report)["Items (storefront x product)"] == len(expected)


def test_filter_values_are_checked(storage, accra):
    with pytest.raises(ValueError, match=r"stock_status.*'low'.*in_stock, low_stock, out_of_stock"):
        build(storage, accra, WEEK, {"stock_status": "low"})
    with pytest.raises(ValueError, match=r"storefront_id.*'Osu'.*whole number"):
        build(storage, accra, WEEK, {"storefront_id": "Osu"})
    empty = build(storage, accra, WEEK, {"category": "Frozen"})
    assert rows(empty, "stock_items") == [] and "No stock items match the filters." in empty.notes


def test_snapshot_never_captured(storage, accra):
    with pytest.raises(ArchiveMissing, match=r"inventory snapshot of 2025-03-31 .*never captured"):
        build(storage, accra, period_for("monthly", "2025-03"))
