"""The audit log report of business 1, week 3-9 Mar 2025, worked out by hand.

Events in the week (oldest first): 3 Mar sale_completed (Kofi), user_login (Kofi); 4 Mar user_login (Esi);
5 Mar sale_completed (Esi, malformed event_data); 6 Mar refund_issued (Kofi); 7 Mar report_exported (no user);
9 Mar 23:59:59 customer_updated (Kofi). Not in: 10 Mar 00:00:00 user_login, 12 Mar user_logout,
business 2's login.
Counts: 7 events; sale_completed 2, user_login 2, customer_updated 1, refund_issued 1, report_exported 1;
users: Kofi 4, Esi 2, no user 1.
"""

from __future__ import annotations

import datetime as dt

import pytest

from pos_exports.reports.audit import build
from pos_exports.reports.period import period_for
from pos_exports_tests.reports.helpers import figures, rows

WEEK = period_for("weekly", "2025-03-03")


def test_week(storage, accra):
    report = build(storage, accra, WEEK)
    f = figures(report)
    assert (f["Events"], f["Event types"], f["Users"]) == (7, 5, 2)
    assert f["First event"] == dt.datetime(2025, 3, 3, 10, tzinfo=dt.UTC)
    assert f["Last event"] == dt.datetime(2025, 3, 9, 23, 59, 59, tzinfo=dt.UTC)
    assert [(r["event_type"], r["events"]) for r in rows(report, "event_types")] == [
        ("sale_completed", 2),
        ("user_login", 2),
        ("customer_updated", 1),
        ("refund_issued", 1),
        ("report_exported", 1),
    ]
    assert [(r["user_id"], r["user_email"], r["user_name"], r["events"]) for r in rows(report, "top_users")] == [
        (1, "kofi@example.com", "Kofi Owusu", 4),
        (2, "esi@example.com", "Esi Boateng", 2),
        (None, "(system / no user)", None, 1),
    ]


def test_log_rows(storage, accra):
    logs = rows(build(storage, accra, WEEK), "audit_logs")
    assert [r["event_type"] for r in logs] == [
        "sale_completed",
        "user_login",
        "user_login",
        "sale_completed",
        "refund_issued",
        "report_exported",
        "customer_updated",
    ]
    first = logs[0]
    assert (first["user_email"], first["user_name"], first["ip_address"], first["user_agent"]) == (
        "kofi@example.com",
        "Kofi Owusu",
        "10.0.0.1",
        "pos/1",
    )
    assert (first["sale_id"], first["payment_id"], first["description"]) == (101, 1, "Sale R-101")
    assert first["event_data"] == '{\n  "total": 13.20,\n  "note": "café"\n}'
    assert logs[3]["event_data"] == '{"broken": '  # malformed JSON kept as it is
    assert logs[1]["event_data"] is None
    assert logs[4]["refund_id"] == 2 and logs[6]["customer_id"] == 1001
    assert logs[5]["user_email"] is None and logs[5]["user_name"] is None
    assert str(logs[0]["created_at"].tzinfo) == "Africa/Accra"


def test_week_is_the_sum_of_its_days(storage, accra):
    week = build(storage, accra, WEEK)
    days = [build(storage, accra, period_for("daily", d.isoformat())) for d in WEEK.days]
    assert figures(week)["Events"] == sum(figures(d)["Events"] for d in days)
    assert rows(week, "audit_logs") == [r for d in days for r in rows(d, "audit_logs")]
    totals: dict = {}
    for d in days:
        for r in rows(d, "event_types"):
            totals[r["event_type"]] = totals.get(r["event_type"], 0) + r["events"]
    assert totals == {r["event_type"]: r["events"] for r in rows(week, "event_types")}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"event_type": "user_login"}, ["user_login", "user_login"]),
        ({"user_id": "2"}, ["user_login", "sale_completed"]),
        ({"sale_id": 101}, ["sale_completed"]),
        ({"customer_id": 1001}, ["customer_updated"]),
        ({"user_id": 1, "event_type": "user_login"}, ["user_login"]),
    ],
)
def test_filters(storage, accra, filters, expected):
    report = build(storage, accra, WEEK, filters)
    assert [r["event_type"] for r in rows(report, "audit_logs")] == expected
    assert figures(report)["Events"] == len(expected)


def test_empty_period(storage, accra):
    report = build(storage, accra, period_for("daily", "2025-03-08"))
    assert figures(report)["Events"] == 0 and figures(report)["First event"] is None
    assert rows(report, "audit_logs") == [] and rows(report, "event_types") == []
    assert "No audit events in this period." in report.notes


def test_month_includes_the_rest(storage, accra):
    # March: the 7 events of the week + 10 Mar user_login + 12 Mar user_logout
    f = figures(build(storage, accra, period_for("monthly", "2025-03")))
    assert (f["Events"], f["Event types"]) == (9, 6)
