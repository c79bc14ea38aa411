"""The customer report: the snapshot of 9 Mar 2025 (end of the week 3-9 Mar) of business 1, by hand.

Ledgers (as of the end of 9 Mar; ages = 2025-03-09 - local date of the charge):
  1001 Ama (limit 100): +40.00 (12-01), +30.00 (01-20, 48 d), -50.00, +25.00 (02-15, 22 d), -5.00,
       +13.20 (03-03, 6 d);
       the +7.00 of 10 Mar is after the snapshot. FIFO: 55.00 settles 40.00 + 15.00 of the 30.00.
       Balance 53.20 = 0-30: 25.00 + 13.20 = 38.20, 31-60: 15.00. 53.20 < 80.00 -> good.
  1002 Kwame (limit 265): +100 (91 d), +50 (90 d), +60 (61 d), +20 (60 d), -80, +10 (31 d), +40 (30 d),
       +12 (0 d).
       FIFO: 80 settles 80 of the 100. 0-30: 52.00, 31-60: 30.00, 61-90: 110.00, 91+: 20.00; balance 212.00
       = exactly 80 % of 265.00 -> near_limit.
  1003 Efua (limit 50): +50.00 (03-08) = exactly 100 % of the limit -> near_limit (not over).
  1004 Yaw (limit 20): +30.00 (03-01) -> over_limit.
  1005 Abena (no limit): +10.00, -25.00 -> balance -15.00, empty buckets, good.
  1006 Kojo (limit 100, blocked, inactive): +90.00 (03-02) -> blocked.
  1007 Adwoa: no ledger -> 0.00, good.  1008 was created on 10 Mar: not in the snapshot.
  1009 Kofi Many: 55 x +1.00, daily 01-01 .. 02-24: 01-01..01-07 (67..61 d) 7.00 in 61-90,
       01-08..02-06 (60..31 d) 30.00 in 31-60, 02-07..02-24 (30..13 d) 18.00 in 0-30; balance 55.00, good.
Totals: outstanding (positive balances) 53.20 + 212 + 50 + 30 + 90 + 55 = 490.20;
  0-30: 38.20 + 52 + 50 + 30 + 90 + 18 = 278.20; 31-60: 15 + 30 + 30 = 75.00; 61-90: 110 + 7 = 117.00;
  91+: 20.00.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from pos_exports.archive.read import ArchiveMissing
from pos_exports.reports.customers import build
from pos_exports.reports.period import period_for
from pos_exports_tests.reports.helpers import figures, rows, table

D = Decimal
WEEK = period_for("weekly", "2025-03-03")
Z = D("0.00")


def test_summary(storage, accra):
    f = figures(build(storage, accra, WEEK))
    assert f["Balances as of the end of"] == dt.date(2025, 3, 9)
    assert (f["Customers"], f["Retail customers"], f["Wholesale customers"]) == (8, 6, 2)
    assert (f["Active customers"], f["Blocked customers"]) == (7, 1)
    assert (f["Customers with an outstanding balance"], f["Total outstanding"]) == (6, D("490.20"))
    assert [f[f"Aged {b} days"] for b in ("0-30", "31-60", "61-90", "91+")] == [
        D("278.20"),
        D("75.00"),
        D("117.00"),
        D("20.00"),
    ]
    assert (f["Customers in credit (negative balance)"], f["Credit held for customers"]) == (1, D("-15.00"))
    assert (f["Status good"], f["Status near limit"], f["Status over limit"], f["Status blocked"]) == (
        4,
        2,
        1,
        1,
    )


def test_credit_aging(storage, accra):
    aging = {r["customer_id"]: r for r in rows(build(storage, accra, WEEK), "credit_aging")}
    assert set(aging) == {1001, 1002, 1003, 1004, 1005, 1006, 1009}  # every customer with a non-zero balance

    def view(cid):
        r = aging[cid]
        buckets = (r["aged_0_30"], r["aged_31_60"], r["aged_61_90"], r["aged_91_plus"])
        return r["outstanding_balance"], buckets, r["oldest_open_charge"], r["credit_status"]

    assert view(1001) == (D("53.20"), (D("38.20"), D("15.00"), Z, Z), dt.date(2025, 1, 20), "good")
    assert view(1002) == (
        D("212.00"),
        (D("52.00"), D("30.00"), D("110.00"), D("20.00")),
        dt.date(2024, 12, 8),
        "near_limit",
    )
    assert view(1003) == (D("50.00"), (D("50.00"), Z, Z, Z), dt.date(2025, 3, 8), "near_limit")
    assert view(1004) == (D("30.00"), (D("30.00"), Z, Z, Z), dt.date(2025, 3, 1), "over_limit")
    assert view(1005) == (D("-15.00"), (Z, Z, Z, Z), None, "good")
    assert view(1006) == (D("90.00"), (D("90.00"), Z, Z, Z), dt.date(2025, 3, 2), "blocked")
    assert view(1009) == (D("55.00"), (D("18.00"), D("30.00"), D("7.00"), Z), dt.date(2025, 1, 1), "good")
    assert aging[1002]["credit_limit"] == D("265.00") and aging[1002]["customer_type"] == "wholesale"


def test_customer_details(storage, accra):
    t = table(build(storage, accra, WEEK), "customer_details")
    assert len(t.column_names) == 20
    assert t.schema.field("created_at").type == pa.timestamp("us", tz="Africa/Accra")
    got = {r["customer_id"]: r for r in t.to_pylist()}
    assert 1008 not in got  # created after the snapshot
    ama = got[1001]
    assert (ama["email"], ama["phone"], ama["customer_type"], ama["is_active"], ama["is_blocked"]) == (
        "ama@example.com",
        "+233 20 000",
        "retail",
        "yes",
        "no",
    )
    # limit 100.00 - balance 53.20 = 46.80 available; one lifetime sale R-101 of 13.20
    assert (ama["credit_limit"], ama["outstanding_balance"], ama["available_credit"]) == (
        D("100.00"),
        D("53.20"),
        D("46.80"),
    )
    assert (ama["sales_count"], ama["sales_total"], ama["average_sale"]) == (1, D("13.20"), D("13.20"))
    assert ama["first_purchase_at"] == dt.datetime(2025, 3, 3, 10, tzinfo=dt.UTC)
    assert ama["last_payment_at"] == dt.datetime(2025, 2, 1, 10, tzinfo=dt.UTC)
    assert got[1004]["available_credit"] == D("0.00")  # over the limit
    assert got[1005]["available_credit"] is None  # no limit
    assert (got[1006]["is_active"], got[1006]["is_blocked"], got[1006]["credit_status"]) == (
        "no",
        "yes",
        "blocked",
    )
    assert got[1007]["outstanding_balance"] == Z


def test_last_50_transactions_with_running_balance(storage, accra):
    report = build(storage, accra, WEEK)
    tx = rows(report, "credit_transactions")
    # 1001: 6 (the 10 Mar charge is after the snapshot), 1002: 8, 1003/1004/1006: 1, 1005: 2,
    # 1009: the last 50 of 55
    assert len(tx) == 6 + 8 + 1 + 1 + 2 + 1 + 50
    many = [r for r in tx if r["customer_id"] == 1009]
    # the shown rows are M-6 .. M-55: the running balance counts the 5 earlier charges (5.00)
    assert (many[0]["reference"], many[0]["running_balance"]) == ("M-6", D("6.00"))
    assert (many[-1]["reference"], many[-1]["running_balance"]) == ("M-55", D("55.00"))
    ama = [(r["kind"], r["amount"], r["running_balance"]) for r in tx if r["customer_id"] == 1001]
    assert ama == [
        ("charge", D("40.00"), D("40.00")),
        ("charge", D("30.00"), D("70.00")),
        ("payment", D("-50.00"), D("20.00")),
        ("charge", D("25.00"), D("45.00")),
        ("adjustment", D("-5.00"), D("40.00")),
        ("charge", D("13.20"), D("53.20")),
    ]
    assert {r["customer_name"] for r in tx if r["customer_id"] == 1001} == {"Ama Mensah"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"credit_status": "near_limit"}, {1002, 1003}),
        ({"customer_type": "wholesale"}, {1002, 1006}),
        ({"min_outstanding_balance": "100"}, {1002}),
        ({"min_outstanding_balance": "53.20"}, {1001, 1002, 1006, 1009}),  # at least: 53.20 is included
        ({"is_active": "false"}, {1006}),
        ({"customer_type": "retail", "credit_status": "over_limit"}, {1004}),
    ],
)
def test_filters(storage, accra, filters, expected):
    report = build(storage, accra, WEEK, filters)
    assert {r["customer_id"] for r in rows(report, "customer_details")} == expected
    assert {r["customer_id"] for r in rows(report, "credit_transactions")} <= expected
    assert figures(report)["Customers"] == len(expected)


def test_filter_matching_nobody(storage, accra):
    report = build(storage, accra, WEEK, {"min_outstanding_balance": 10_000})
    assert rows(report, "customer_details") == [] and rows(report, "credit_transactions") == []
    assert figures(report)["Total outstanding"] == Z
    assert "No customers match the filters." in report.notes


def test_invalid_filters(storage, accra):
    with pytest.raises(ValueError, match=r"credit_status.*'late'.*good, near_limit, over_limit, blocked"):
        build(storage, accra, WEEK, {"credit_status": "late"})
    with pytest.raises(ValueError, match=r"'category' is not a filter of the customers export.*customer_type"):
        build(storage, accra, WEEK, {"category": "Drinks"})


def test_snapshot_never_captured(storage, accra):
    with pytest.raises(ArchiveMissing, match=r"customers snapshot of 2025-03-16 .*was never captured"):
        build(storage, accra, period_for("weekly", "2025-03-10"))
