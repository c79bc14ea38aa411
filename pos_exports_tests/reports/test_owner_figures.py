"""The sales figures an owner expects (net sales after refunds, the previous period, top products and
categories, sales by cashier) and the inventory reorder list, each checked against plain SQL over the
fixture POS database the archive was made from (never against the report code's own output).

Business 1 (Accra, UTC+0): the fixture's timestamps are ISO text in UTC, so a window is a string range.
The sales archive holds 1-31 Mar 2025: the week of 10 Mar has its previous week archived, the week of
3 Mar (previous week 24 Feb - 2 Mar) and March (previous: February) do not.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal

import pytest

from pos_exports.reports import inventory, sales
from pos_exports.reports.period import daily, monthly, period_for, previous
from pos_exports_tests.reports.helpers import figures, rows, section

D = Decimal
INCLUDED = "('completed', 'refunded', 'partially_refunded')"


def cents(value) -> Decimal:
    return (D(value or 0) / 100).quantize(D("0.01"))


def window(first: dt.date, last: dt.date) -> tuple[str, str]:
    return f"{first.isoformat()}T00:00:00+00:00", f"{(last + dt.timedelta(days=1)).isoformat()}T00:00:00+00:00"


def sql(db, query: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query, args).fetchall()


def sql_net_revenue(db, first: dt.date, last: dt.date) -> Decimal:
    start, end = window(first, last)
    (value,) = sql(
        db,
        f"SELECT SUM(i.quantity * i.unit_price_cents - i.discount_cents) FROM sale_items i JOIN sales s "
        f"ON s.id = i.sale_id WHERE s.business_id = 1 AND s.status IN {INCLUDED} "
        f"AND s.completed_at >= ? AND s.completed_at < ?",
        start,
        end,
    )[0]
    return cents(value)


def sql_refunds(db, first: dt.date, last: dt.date) -> Decimal:
    start, end = window(first, last)
    (value,) = sql(
        db,
        "SELECT SUM(amount_cents) FROM refunds WHERE business_id = 1 AND created_at >= ? AND created_at < ?",
        start,
        end,
    )[0]
    return cents(value)


def sql_sales_count(db, first: dt.date, last: dt.date) -> int:
    start, end = window(first, last)
    return sql(
        db,
        f"SELECT COUNT(*) FROM sales WHERE business_id = 1 AND status IN {INCLUDED} "
        f"AND completed_at >= ? AND completed_at < ?",
        start,
        end,
    )[0][0]


def test_previous_periods():
    assert previous(period_for("weekly", "2025-03-10")) == period_for("weekly", "2025-03-03")
    assert previous(daily(dt.date(2025, 3, 1))) == daily(dt.date(2025, 2, 28))
    assert previous(monthly(2025, 3)) == monthly(2025, 2)
    assert previous(monthly(2025, 1)) == monthly(2024, 12)
    assert previous(period_for("range", "2025-03-10_2025-03-12")) == period_for("range", "2025-03-07_2025-03-09")


@pytest.mark.parametrize("key", ["2025-03-03", "2025-03-10"])
def test_net_sales_after_refunds_beside_net_revenue(storage, accra, pos_sqlite, key):
    period = period_for("weekly", key)
    f = figures(sales.build(storage, accra, period))
    net = sql_net_revenue(pos_sqlite, period.first_day, period.last_day)
    refunds = sql_refunds(pos_sqlite, period.first_day, period.last_day)
    assert f["Net revenue"] == net
    assert f["Net sales after refunds (net revenue - refunds issued)"] == net - refunds
    # hand check of the week of 3 Mar: 39.50 - 11.00; of 10 Mar: (4.00 + 1.50) - 2.00
    assert f["Net sales after refunds (net revenue - refunds issued)"] == {"2025-03-03": D("28.50")}.get(key, D("3.50"))


def test_week_compared_with_the_previous_week(storage, accra, pos_sqlite):
    period = period_for("weekly", "2025-03-10")
    report = sales.build(storage, accra, period)
    before = period_for("weekly", "2025-03-03")
    now_net = sql_net_revenue(pos_sqlite, period.first_day, period.last_day)
    old_net = sql_net_revenue(pos_sqlite, before.first_day, before.last_day)
    now_after = now_net - sql_refunds(pos_sqlite, period.first_day, period.last_day)
    old_after = old_net - sql_refunds(pos_sqlite, before.first_day, before.last_day)
    compared = {r["figure"]: r for r in rows(report, "previous_period")}
    net = compared["Net revenue"]
    assert (net["this_period"], net["previous_period"], net["change"]) == (now_net, old_net, now_net - old_net)
    assert net["change_pct"] == pytest.approx(float((now_net - old_net) / old_net))
    after = compared["Net sales after refunds"]
    assert (after["this_period"], after["previous_period"], after["change"]) == (
        now_after,
        old_after,
        now_after - old_after,
    )
    f = figures(report)
    assert f["Net revenue, previous period (3–9 Mar 2025)"] == old_net == D("39.50")
    assert f["Sales, previous period (3–9 Mar 2025)"] == sql_sales_count(pos_sqlite, before.first_day, before.last_day)
    assert f["Net revenue change vs previous period"] == pytest.approx(float((D("5.50") - D("39.50")) / D("39.50")))
    assert section(report, "previous_period").title == "Compared with the previous period (3–9 Mar 2025)"


def test_day_compared_with_the_day_before(storage, accra, pos_sqlite):
    day = dt.date(2025, 3, 6)
    report = sales.build(storage, accra, daily(day))
    compared = {r["figure"]: r for r in rows(report, "previous_period")}
    before = day - dt.timedelta(days=1)
    assert compared["Net revenue"]["previous_period"] == sql_net_revenue(pos_sqlite, before, before) == D("5.50")
    assert compared["Refunds issued"]["this_period"] == sql_refunds(pos_sqlite, day, day) == D("10.00")


@pytest.mark.parametrize(
    "kind,key,label", [("weekly", "2025-03-03", "24 Feb – 2 Mar 2025"), ("monthly", "2025-03", "February 2025")]
)
def test_previous_period_not_archived_says_no_data(storage, accra, kind, key, label):
    report = sales.build(storage, accra, period_for(kind, key))
    f = figures(report)
    assert f[f"Previous period ({label})"] == "no data (not archived)"
    assert not any(k.startswith("Net revenue, previous period") for k in f)
    compared = rows(report, "previous_period")
    assert compared and all(r["previous_period"] is None and r["change"] is None for r in compared)
    assert any(f"Previous period ({label}): no data" in n for n in report.notes)


def test_top_products_and_categories(storage, accra, pos_sqlite):
    period = monthly(2025, 3)
    report = sales.build(storage, accra, period)
    start, end = window(period.first_day, period.last_day)
    expected = sql(
        pos_sqlite,
        f"""SELECT p.name, p.sku, c.name, SUM(i.quantity), SUM(i.quantity * i.unit_price_cents - i.discount_cents),
                   SUM(i.quantity * i.unit_cost_cents)
            FROM sale_items i JOIN sales s ON s.id = i.sale_id JOIN products p ON p.id = i.product_id
            JOIN categories c ON c.id = p.category_id
            WHERE s.business_id = 1 AND s.status IN {INCLUDED} AND s.completed_at >= ? AND s.completed_at < ?
            GROUP BY p.id ORDER BY 5 DESC, 4 DESC""",
        start,
        end,
    )
    got = rows(report, "top_products")
    assert [
        (r["product_name"], r["sku"], r["category_name"], r["quantity"], r["net_revenue"], r["cogs"]) for r in got
    ] == [(n, sku, cat, q, cents(net), cents(cogs)) for n, sku, cat, q, net, cogs in expected]
    assert [r["gross_profit"] for r in got] == [cents(net - cogs) for *_, net, cogs in expected]
    # by hand: Water 14 units net 3.00 + 12.00 + 0.00 + 1.50 = 16.50; Juice 19.00; Chips 5.50 + 4.00 = 9.50
    assert [(r["product_name"], r["net_revenue"]) for r in got] == [
        ("Juice", D("19.00")),
        ("Water", D("16.50")),
        ("Chips", D("9.50")),
    ]
    categories = sql(
        pos_sqlite,
        f"""SELECT c.name, SUM(i.quantity), SUM(i.quantity * i.unit_price_cents - i.discount_cents)
            FROM sale_items i JOIN sales s ON s.id = i.sale_id JOIN products p ON p.id = i.product_id
            JOIN categories c ON c.id = p.category_id
            WHERE s.business_id = 1 AND s.status IN {INCLUDED} AND s.completed_at >= ? AND s.completed_at < ?
            GROUP BY c.id ORDER BY 3 DESC""",
        start,
        end,
    )
    total = sum(cents(net) for *_, net in categories)
    got = rows(report, "top_categories")
    assert [(r["category_name"], r["quantity"], r["net_revenue"]) for r in got] == [
        (name, q, cents(net)) for name, q, net in categories
    ]
    assert [r["share"] for r in got] == pytest.approx([float(cents(net) / total) for *_, net in categories])
    assert section(report, "top_products").pdf_rows == 10


def test_sales_by_cashier(storage, accra, pos_sqlite):
    period = period_for("weekly", "2025-03-03")
    report = sales.build(storage, accra, period)
    start, end = window(period.first_day, period.last_day)
    expected = sql(
        pos_sqlite,
        f"""SELECT TRIM(u.first_name || ' ' || u.last_name), COUNT(DISTINCT s.id),
                   SUM(i.quantity * i.unit_price_cents - i.discount_cents), SUM(i.total_cents),
                   SUM(i.quantity * i.unit_price_cents - i.discount_cents - i.quantity * i.unit_cost_cents)
            FROM sales s JOIN sale_items i ON i.sale_id = s.id JOIN users u ON u.id = s.user_id
            WHERE s.business_id = 1 AND s.status IN {INCLUDED} AND s.completed_at >= ? AND s.completed_at < ?
            GROUP BY u.id ORDER BY 3 DESC""",
        start,
        end,
    )
    got = rows(report, "by_cashier")
    assert [(r["cashier_name"], r["sales"], r["net_revenue"], r["total"], r["gross_profit"]) for r in got] == [
        (name, n, cents(net), cents(total), cents(profit)) for name, n, net, total, profit in expected
    ]
    # by hand: Kofi, R-108 = 12.00 + 12.00 + 0.00; Esi R-102, R-106 = 5.50 + 10.00
    assert [(r["cashier_name"], r["net_revenue"], r["average_sale"]) for r in got] == [
        ("Kofi Owusu", D("24.00"), D("8.00")),
        ("Esi Boateng", D("15.50"), D("7.75")),
    ]


def test_inventory_reorder_list(storage, accra, pos_sqlite):
    report = inventory.build(storage, accra, period_for("daily", "2025-03-09"))
    expected = sql(
        pos_sqlite,
        """SELECT sf.name, p.name, i.quantity, i.reorder_level
           FROM storefront_inventory i JOIN products p ON p.id = i.product_id
           JOIN business_storefronts bs ON bs.storefront_id = i.storefront_id AND bs.business_id = 1
           JOIN storefronts sf ON sf.id = i.storefront_id
           WHERE p.business_id = 1 AND i.quantity <= i.reorder_level
           ORDER BY CASE WHEN i.quantity <= 0 THEN 0 ELSE 1 END, i.quantity, sf.name, p.name""",
    )
    got = rows(report, "reorder_list")
    assert [(r["storefront_name"], r["product_name"], r["quantity"], r["reorder_level"]) for r in got] == [
        tuple(row) for row in expected
    ]
    # by hand: Makola Water -2 and Osu Chips 0 are out of stock (first), Osu Juice 5 <= 5 is low
    assert [(r["product_name"], r["stock_status"]) for r in got] == [
        ("Water", "out_of_stock"),
        ("Chips", "out_of_stock"),
        ("Juice", "low_stock"),
    ]
    assert figures(report)["Items to reorder (at or below reorder level)"] == len(expected) == 3
