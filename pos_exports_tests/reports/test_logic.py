"""The domain rules as plain functions, against hand-worked values."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from pos_exports.reports.logic import (
    MONEY,
    aging_bucket,
    available_credit,
    average,
    cogs_array,
    counts_by,
    credit_status,
    fifo_aging,
    gross_profit,
    line_cogs,
    line_net,
    margin,
    margin_array,
    money_sum,
    net_array,
    pretty_json,
    stock_status,
    stock_status_array,
    top_users,
    valuation,
    valuation_arrays,
)

D = Decimal
AS_OF = dt.date(2025, 3, 9)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# --- sales -------------------------------------------------------------------------------------------


def test_line_figures():
    # 2 x 1.50 - 0 = 3.00; 1 x 10.00 - 1.00 = 9.00; 3 x 1.20 = 3.60
    assert line_net(2, D("1.50"), D("0.00")) == D("3.00")
    assert line_net(1, D("10.00"), D("1.00")) == D("9.00")
    assert line_cogs(3, D("1.20")) == D("3.60")
    assert gross_profit(D("39.50"), D("28.60")) == D("10.90")
    # a returned line (negative quantity): -1 x 2.00 - 0 = -2.00
    assert line_net(-1, D("2.00"), D("0.00")) == D("-2.00")


def test_margin_blank_when_no_revenue():
    assert margin(D("10.90"), D("39.50")) == pytest.approx(0.2759493670886076)
    assert margin(D("-1.00"), D("0.00")) is None
    assert margin(D("0.00"), D("0")) is None


def test_average_is_rounded_half_up_to_the_cent():
    assert average(D("10.00"), 3) == D("3.33")
    assert average(D("0.05"), 2) == D("0.03")  # 0.025 -> 0.03
    assert average(D("39.50"), 5) == D("7.90")
    assert average(D("0.00"), 0) is None


def test_arrow_line_figures_are_exact_decimals():
    qty = pa.array([2, 1, 3, -1], pa.int32())
    price = pa.array([D("1.50"), D("10.00"), D("0.10"), D("2.00")], MONEY)
    cost = pa.array([D("1.00"), D("6.00"), D("0.07"), D("1.20")], MONEY)
    disc = pa.array([D("0.00"), D("1.00"), D("0.00"), D("0.00")], MONEY)
    net, cogs = net_array(qty, price, disc), cogs_array(qty, cost)
    assert net.type == MONEY and cogs.type == MONEY
    # 3 x 0.10 is exactly 0.30 (a float would give 0.30000000000000004)
    assert net.to_pylist() == [D("3.00"), D("9.00"), D("0.30"), D("-2.00")]
    assert cogs.to_pylist() == [D("2.00"), D("6.00"), D("0.21"), D("-1.20")]
    assert money_sum(net) == D("10.30")
    assert money_sum(pa.array([], MONEY)) == D("0.00")
    m = margin_array(pa.array([D("1.00"), D("-1.00")], MONEY), pa.array([D("4.00"), D("0.00")], MONEY))
    assert m.to_pylist() == [0.25, None]


# --- credit ------------------------------------------------------------------------------------------


def test_bucket_boundaries():
    assert [aging_bucket(n) for n in (0, 30, 31, 60, 61, 90, 91, 400)] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_fifo_aging_of_a_ledger_worked_by_hand():
    # As of 2025-03-09. Charges: 12-08 100.00 (91 days old), 12-09 50.00 (90), 01-07 60.00 (61),
    # 01-08 20.00 (60), 02-06 10.00 (31), 02-07 40.00 (30), 03-09 12.00 (0); payment 02-06 -80.00.
    # FIFO: the 80.00 settles 80.00 of the oldest charge (12-08), leaving 20.00 of it open.
    # 0-30: 40 + 12 = 52.00; 31-60: 20 + 10 = 30.00; 61-90: 50 + 60 = 110.00; 91+: 20.00; sum 212.00.
    ledger = [
        (day("2024-12-08"), D("100.00")),
        (day("2024-12-09"), D("50.00")),
        (day("2025-01-07"), D("60.00")),
        (day("2025-01-08"), D("20.00")),
        (day("2025-02-06"), D("-80.00")),
        (day("2025-02-06"), D("10.00")),
        (day("2025-02-07"), D("40.00")),
        (day("2025-03-09"), D("12.00")),
    ]
    aging = fifo_aging(ledger, AS_OF)
    assert aging.balance == D("212.00")
    assert aging.buckets == (D("52.00"), D("30.00"), D("110.00"), D("20.00"))
    assert aging.oldest_open == day("2024-12-08")


def test_fifo_payment_spanning_several_charges():
    # Charges 12-01 40.00 (98 days), 01-20 30.00 (48 days), 02-15 25.00 (22), 03-03 13.20 (6);
    # payment -50.00 and adjustment -5.00 = 55.00 settle the 40.00 and 15.00 of the 30.00.
    # Open: 15.00 (31-60), 25.00 + 13.20 = 38.20 (0-30). Balance 53.20.
    ledger = [
        (day("2024-12-01"), D("40.00")),
        (day("2025-01-20"), D("30.00")),
        (day("2025-02-01"), D("-50.00")),
        (day("2025-02-15"), D("25.00")),
        (day("2025-03-01"), D("-5.00")),
        (day("2025-03-03"), D("13.20")),
    ]
    aging = fifo_aging(ledger, AS_OF)
    assert (aging.balance, aging.buckets, aging.oldest_open) == (
        D("53.20"),
        (D("38.20"), D("15.00"), D("0.00"), D("0.00")),
        day("2025-01-20"),
    )


def test_fifo_prepayment_settles_later_charges():
    # A payment of 30.00 before any charge; then 01-01 20.00 (67 days) and 03-01 25.00 (8 days).
    # The 30.00 settles the 20.00 and 10.00 of the 25.00: 15.00 open in 0-30.
    ledger = [
        (day("2024-12-20"), D("-30.00")),
        (day("2025-01-01"), D("20.00")),
        (day("2025-03-01"), D("25.00")),
    ]
    aging = fifo_aging(ledger, AS_OF)
    assert (aging.balance, aging.buckets, aging.oldest_open) == (
        D("15.00"),
        (D("15.00"), D("0.00"), D("0.00"), D("0.00")),
        day("2025-03-01"),
    )


def test_customer_in_credit_has_empty_buckets():
    # 10.00 charged, 25.00 paid: balance -15.00 shown as outstanding, buckets empty.
    aging = fifo_aging([(day("2025-02-01"), D("10.00")), (day("2025-02-10"), D("-25.00"))], AS_OF)
    assert aging.balance == D("-15.00")
    assert aging.buckets == (D("0.00"),) * 4 and aging.oldest_open is None
    settled = fifo_aging([(day("2025-02-01"), D("10.00")), (day("2025-02-10"), D("-10.00"))], AS_OF)
    assert settled.balance == D("0.00") and settled.buckets == (D("0.00"),) * 4 and settled.oldest_open is None
    assert fifo_aging([], AS_OF).balance == D("0.00")


def test_credit_status_thresholds():
    limit = D("265.00")
    assert credit_status(D("212.00"), limit, False) == "near_limit"  # exactly 80 % of 265.00
    assert credit_status(D("211.99"), limit, False) == "good"  # just under 80 %
    assert credit_status(D("265.00"), limit, False) == "near_limit"  # exactly 100 %: not over
    assert credit_status(D("265.01"), limit, False) == "over_limit"
    assert credit_status(D("1000.00"), D("0.00"), False) == "good"  # no limit
    assert credit_status(D("-5.00"), limit, False) == "good"
    assert credit_status(D("0.00"), limit, True) == "blocked"
    assert credit_status(D("500.00"), limit, True) == "blocked"  # blocked wins over over_limit


def test_available_credit():
    assert available_credit(D("53.20"), D("100.00")) == D("46.80")
    assert available_credit(D("30.00"), D("20.00")) == D("0.00")
    assert available_credit(D("-15.00"), D("100.00")) == D("115.00")
    assert available_credit(D("5.00"), D("0.00")) is None


# --- inventory ---------------------------------------------------------------------------------------


def test_stock_status():
    assert stock_status(-2, 5) == "out_of_stock"
    assert stock_status(0, 0) == "out_of_stock"
    assert stock_status(5, 5) == "low_stock"
    assert stock_status(1, 0) == "in_stock"
    assert stock_status(10, 5) == "in_stock"
    qty, reorder = pa.array([-2, 0, 5, 1, 10], pa.int32()), pa.array([5, 0, 5, 0, 5], pa.int32())
    assert stock_status_array(qty, reorder).to_pylist() == [
        "out_of_stock",
        "out_of_stock",
        "low_stock",
        "in_stock",
        "in_stock",
    ]


def test_valuation():
    # 10 x 1.00 = 10.00 at cost, 10 x 1.50 = 15.00 at retail, margin 0.50, 0.50 / 1.50 = 1/3
    v = valuation(10, D("1.00"), D("1.50"))
    assert (v.value_at_cost, v.value_at_retail, v.margin) == (D("10.00"), D("15.00"), D("0.50"))
    assert v.margin_pct == pytest.approx(1 / 3)
    # negative quantity counts as 0 on hand; the unit margin is still shown
    neg = valuation(-2, D("1.00"), D("1.50"))
    assert (neg.value_at_cost, neg.value_at_retail, neg.margin) == (D("0.00"), D("0.00"), D("0.50"))
    # a free sample: price 0 -> margin -6.00, margin % blank
    free = valuation(3, D("6.00"), D("0.00"))
    assert (free.value_at_cost, free.value_at_retail, free.margin, free.margin_pct) == (
        D("18.00"),
        D("0.00"),
        D("-6.00"),
        None,
    )
    arrays = valuation_arrays(
        pa.array([10, -2, 3], pa.int32()),
        pa.array([D("1.00"), D("1.00"), D("6.00")], MONEY),
        pa.array([D("1.50"), D("1.50"), D("0.00")], MONEY),
    )
    assert arrays["value_at_cost"].to_pylist() == [D("10.00"), D("0.00"), D("18.00")]
    assert arrays["value_at_retail"].to_pylist() == [D("15.00"), D("0.00"), D("0.00")]
    assert arrays["margin"].to_pylist() == [D("0.50"), D("0.50"), D("-6.00")]
    assert arrays["margin_pct"].to_pylist()[1:] == [pytest.approx(1 / 3), None]


# --- audit -------------------------------------------------------------------------------------------


def test_counts_and_top_users():
    types = ["user_login", "sale_completed", "user_login", "refund_issued", "sale_completed", "a_new_type"]
    # 2, 2, 1, 1: ties in name order
    assert counts_by(types) == [
        ("sale_completed", 2),
        ("user_login", 2),
        ("a_new_type", 1),
        ("refund_issued", 1),
    ]
    events = [
        (1, "kofi@example.com", "Kofi Owusu"),
        (2, "esi@example.com", "Esi Boateng"),
        (None, None, None),
        (1, "kofi@example.com", "Kofi Owusu"),
        (2, "esi@example.com", "Esi Boateng"),
        (1, "kofi@example.com", "Kofi Owusu"),
    ]
    ranked = top_users(events)
    assert [(u.user_id, u.email, u.events) for u in ranked] == [
        (1, "kofi@example.com", 3),
        (2, "esi@example.com", 2),
        (None, None, 1),
    ]
    assert [u.user_id for u in top_users(events, limit=1)] == [1]


def test_pretty_json():
    text = '{"a": [1, {"b": null}], "é": "café", "t": true}'
    assert pretty_json(text) == json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    assert pretty_json('{"total": 13.20}') == '{\n  "total": 13.20\n}'  # the number as written, no float
    assert pretty_json('{"broken": ') == '{"broken": '
    assert pretty_json(None) is None
    assert pretty_json("not json") == "not json"
