"""Periods: keys, labels, days and UTC windows per business time zone."""

from __future__ import annotations

import datetime as dt

import pytest

from pos_exports.periods import PeriodError
from pos_exports.reports.period import date_range, period_for

D = dt.date
UTC = dt.UTC


def test_daily():
    p = period_for("daily", "2025-03-09")
    assert (p.kind, p.key, p.first_day, p.last_day, p.label) == (
        "daily",
        "2025-03-09",
        D(2025, 3, 9),
        D(2025, 3, 9),
        "9 Mar 2025",
    )
    assert p.days == [D(2025, 3, 9)]


def test_weekly_is_monday_to_sunday():
    p = period_for("weekly", "2025-03-03")
    assert (p.first_day, p.last_day, p.label) == (D(2025, 3, 3), D(2025, 3, 9), "3–9 Mar 2025")
    assert len(p.days) == 7 and p.days[-1] == D(2025, 3, 9)
    assert period_for("weekly", "2025-02-24").label == "24 Feb – 2 Mar 2025"
    assert period_for("weekly", "2024-12-30").label == "30 Dec 2024 – 5 Jan 2025"


def test_weekly_key_must_be_a_monday():
    with pytest.raises(PeriodError, match=r"2025-03-05 is a Wednesday.*2025-03-03"):
        period_for("weekly", "2025-03-05")


def test_monthly_keys():
    a, b = period_for("monthly", "2025-03"), period_for("monthly", "2025-03-01")
    assert a == b
    assert (a.key, a.first_day, a.last_day, a.label) == (
        "2025-03",
        D(2025, 3, 1),
        D(2025, 3, 31),
        "March 2025",
    )
    assert len(period_for("monthly", "2024-02").days) == 29  # leap year
    with pytest.raises(PeriodError, match="first day of a month"):
        period_for("monthly", "2025-03-15")
    with pytest.raises(PeriodError, match="not a month"):
        period_for("monthly", "2025-3")


def test_range_and_errors():
    r = date_range(D(2025, 3, 1), D(2025, 3, 15))
    assert (r.kind, r.key, r.label, len(r.days)) == ("range", "2025-03-01_2025-03-15", "1–15 Mar 2025", 15)
    assert period_for("range", r.key) == r
    with pytest.raises(PeriodError, match="before it starts"):
        date_range(D(2025, 3, 2), D(2025, 3, 1))
    with pytest.raises(PeriodError, match="not a date"):
        period_for("daily", "2025-13-01")
    with pytest.raises(PeriodError, match="unknown period kind"):
        period_for("yearly", "2025")
    assert isinstance(PeriodError("x"), ValueError)


def test_dst_week_window_in_new_york():
    # Week Mon 3 - Sun 9 Mar 2025; DST starts Sun 9 Mar at 02:00 local (EST -5 -> EDT -4).
    # Start: Mon 3 Mar 00:00 EST = 05:00Z; end: Mon 10 Mar 00:00 EDT = 04:00Z; 7 x 24 - 1 = 167 hours.
    w = period_for("weekly", "2025-03-03").window("America/New_York")
    assert w.start == dt.datetime(2025, 3, 3, 5, tzinfo=UTC)
    assert w.end == dt.datetime(2025, 3, 10, 4, tzinfo=UTC)
    assert w.hours == 167


def test_same_key_other_zones():
    p = period_for("daily", "2025-03-01")
    tokyo = p.window("Asia/Tokyo")  # UTC+9: local midnight is 15:00Z the day before
    assert (tokyo.start, tokyo.end) == (
        dt.datetime(2025, 2, 28, 15, tzinfo=UTC),
        dt.datetime(2025, 3, 1, 15, tzinfo=UTC),
    )
    honolulu = p.window("Pacific/Honolulu")  # UTC-10
    assert honolulu.start == dt.datetime(2025, 3, 1, 10, tzinfo=UTC)
    accra = period_for("monthly", "2025-03").window("Africa/Accra")
    assert (accra.start, accra.end) == (
        dt.datetime(2025, 3, 1, tzinfo=UTC),
        dt.datetime(2025, 4, 1, tzinfo=UTC),
    )
