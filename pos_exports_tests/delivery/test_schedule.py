"""When subscriptions fire (in their local time, across DST) and which period each fire delivers."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pos_exports.delivery.schedule import (
    ScheduleError,
    due,
    fire_times,
    local_instant,
    next_fire,
    period_at,
    period_for_fire,
)
from pos_exports.delivery.subscriptions import validate

UTC = dt.UTC


def sub(frequency="daily", at="07:00", **fields):
    return validate(
        {
            "business_id": 1,
            "name": "test",
            "datasets": ["sales"],
            "formats": ["csv"],
            "frequency": frequency,
            "at": at,
            "recipients": ["owner@shop.example"],
            **fields,
        }
    )


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_weekly_fires_once_a_week_at_its_local_hour_across_us_dst():
    monday = sub("weekly", day_of_week="monday")
    # DST starts Sunday 2025-03-09: 07:00 EST = 12:00 UTC before, 07:00 EDT = 11:00 UTC after.
    assert fire_times(monday, "America/New_York", utc(2025, 2, 24), utc(2025, 3, 24)) == [
        utc(2025, 2, 24, 12),
        utc(2025, 3, 3, 12),
        utc(2025, 3, 10, 11),
        utc(2025, 3, 17, 11),
    ]
    # DST ends Sunday 2025-11-02: back to 12:00 UTC.
    assert fire_times(monday, "America/New_York", utc(2025, 10, 20), utc(2025, 11, 17)) == [
        utc(2025, 10, 20, 11),
        utc(2025, 10, 27, 11),
        utc(2025, 11, 3, 12),
        utc(2025, 11, 10, 12),
    ]
    # Over the whole year: one fire per week, always 07:00 local on a Monday.
    year = fire_times(monday, "America/New_York", utc(2025, 1, 1), utc(2026, 1, 1))
    assert len(year) == 52
    local = [f.astimezone(ZoneInfo("America/New_York")) for f in year]
    assert all((t.weekday(), t.hour, t.minute) == (0, 7, 0) for t in local)
    assert {(b - a) for a, b in zip(year, year[1:], strict=False)} == {
        dt.timedelta(days=7),
        dt.timedelta(days=7, hours=-1),  # the week across the March change
        dt.timedelta(days=7, hours=1),  # the week across the November change
    }


def test_weekly_on_the_dst_sunday_itself_fires_once():
    # Sunday 2025-03-09 02:30 does not exist in New York: it fires at 03:00 EDT (07:00 UTC), once.
    sunday = sub("weekly", at="02:30", day_of_week="sunday")
    assert fire_times(sunday, "America/New_York", utc(2025, 3, 1), utc(2025, 3, 20)) == [
        utc(2025, 3, 2, 7, 30),  # 02:30 EST
        utc(2025, 3, 9, 7, 0),  # 03:00 EDT, the first valid instant after the gap
        utc(2025, 3, 16, 6, 30),  # 02:30 EDT
    ]


def test_a_daily_time_in_the_spring_forward_gap_fires_once_that_day():
    # Warsaw 2025-03-30: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that day.
    daily = sub(at="02:30")
    assert fire_times(daily, "Europe/Warsaw", utc(2025, 3, 28, 12), utc(2025, 4, 1)) == [
        utc(2025, 3, 29, 1, 30),  # 02:30 CET (+01:00)
        utc(2025, 3, 30, 1, 0),  # 03:00 CEST (+02:00): the first valid instant after the gap
        utc(2025, 3, 31, 0, 30),  # 02:30 CEST
    ]
    assert local_instant(dt.date(2025, 3, 30), 2, 0, ZoneInfo("Europe/Warsaw")) == utc(2025, 3, 30, 1)


def test_a_daily_time_that_happens_twice_fires_once():
    # New York 2025-11-02: 02:00 EDT falls back to 01:00 EST, so 01:30 happens twice (05:30 and 06:30 UTC).
    daily = sub(at="01:30")
    assert fire_times(daily, "America/New_York", utc(2025, 11, 1), utc(2025, 11, 4)) == [
        utc(2025, 11, 1, 5, 30),  # 01:30 EDT
        utc(2025, 11, 2, 5, 30),  # 01:30 EDT, the first occurrence; 06:30 UTC (01:30 EST) is not a fire
        utc(2025, 11, 3, 6, 30),  # 01:30 EST
    ]


def test_last_friday_over_2025():
    last_friday = sub("monthly", at="17:00", nth_weekday="last friday")
    fires = fire_times(last_friday, "Europe/Warsaw", utc(2025, 1, 1), utc(2026, 1, 1))
    days = [f.astimezone(ZoneInfo("Europe/Warsaw")).date() for f in fires]
    # By hand: Jan 2025 starts on a Wednesday, so its Fridays are 3, 10, 17, 24, 31 -> 31.
    # March: Fridays 7, 14, 21, 28 (the 31st is a Monday) -> 28. October: 3 ... 31 -> 31 (a 5th Friday).
    # November: 7, 14, 21, 28 -> 28.
    assert [d.isoformat() for d in days] == [
        "2025-01-31",
        "2025-02-28",
        "2025-03-28",
        "2025-04-25",
        "2025-05-30",
        "2025-06-27",
        "2025-07-25",
        "2025-08-29",
        "2025-09-26",
        "2025-10-31",
        "2025-11-28",
        "2025-12-26",
    ]
    assert fires[0] == utc(2025, 1, 31, 16) and fires[5] == utc(2025, 6, 27, 15)  # CET, then CEST


def test_second_tuesday_over_2025():
    second_tuesday = sub("monthly", at="09:30", nth_weekday="2nd tuesday")
    fires = fire_times(second_tuesday, "Asia/Tokyo", utc(2025, 1, 1), utc(2026, 1, 1))
    # By hand: January's Tuesdays are 7, 14 -> 14. April starts on a Tuesday: 1, 8 -> 8.
    # July starts on a Tuesday too: 1, 8 -> 8. December starts on a Monday: 2, 9 -> 9.
    assert [(f + dt.timedelta(hours=9)).date().isoformat() for f in fires] == [
        "2025-01-14",
        "2025-02-11",
        "2025-03-11",
        "2025-04-08",
        "2025-05-13",
        "2025-06-10",
        "2025-07-08",
        "2025-08-12",
        "2025-09-09",
        "2025-10-14",
        "2025-11-11",
        "2025-12-09",
    ]
    assert fires[0] == utc(2025, 1, 14, 0, 30)  # 09:30 JST = 00:30 UTC


def test_first_and_last_weekday_of_a_month():
    first_monday = sub("monthly", nth_weekday="1st monday")
    # September 2025 starts on a Monday (the 1st); June 2025 starts on a Sunday (first Monday the 2nd).
    fires = fire_times(first_monday, "UTC", utc(2025, 6, 1), utc(2025, 10, 1))
    assert [f.date().isoformat() for f in fires] == ["2025-06-02", "2025-07-07", "2025-08-04", "2025-09-01"]


@pytest.mark.parametrize(("year", "last_day"), [(2025, 28), (2024, 29)])
def test_last_day_of_february(year, last_day):
    month_end = sub("monthly", at="18:00", day_of_month="last")
    fires = fire_times(month_end, "Africa/Accra", utc(year, 1, 1), utc(year, 5, 1))
    assert fires == [utc(year, 1, 31, 18), utc(year, 2, last_day, 18), utc(year, 3, 31, 18), utc(year, 4, 30, 18)]


def test_a_fixed_day_of_month():
    assert fire_times(sub("monthly", day_of_month=1), "Asia/Dubai", utc(2025, 1, 1), utc(2025, 4, 1)) == [
        utc(2025, 1, 1, 3),
        utc(2025, 2, 1, 3),
        utc(2025, 3, 1, 3),
    ]


def test_the_window_is_half_open_and_the_subscription_zone_wins():
    daily = sub()
    assert fire_times(daily, "Africa/Accra", utc(2025, 5, 1, 7), utc(2025, 5, 2, 7)) == [utc(2025, 5, 1, 7)]
    tokyo = sub(timezone="Asia/Tokyo")
    assert fire_times(tokyo, "Africa/Accra", utc(2025, 5, 1), utc(2025, 5, 2)) == [utc(2025, 5, 1, 22)]
    assert fire_times(daily, "Africa/Accra", utc(2025, 5, 2), utc(2025, 5, 1)) == []


def test_bad_arguments():
    with pytest.raises(ScheduleError, match="timezone-aware"):
        fire_times(sub(), "UTC", dt.datetime(2025, 1, 1), utc(2025, 1, 2))
    with pytest.raises(ScheduleError, match="no time zone"):
        fire_times(sub(), None, utc(2025, 1, 1), utc(2025, 1, 2))
    with pytest.raises(ScheduleError, match="unknown time zone"):
        fire_times(sub(), "Nowhere/Land", utc(2025, 1, 1), utc(2025, 1, 2))


@pytest.mark.parametrize(
    ("frequency", "fire_date", "expected"),
    [
        ("daily", "2025-03-10", ("daily", "2025-03-09")),
        ("daily", "2025-03-01", ("daily", "2025-02-28")),
        ("daily", "2025-01-01", ("daily", "2024-12-31")),
        ("weekly", "2025-03-10", ("weekly", "2025-03-03")),  # a Monday: the week that ended yesterday
        ("weekly", "2025-03-09", ("weekly", "2025-02-24")),  # a Sunday: its own week is not over yet
        ("weekly", "2025-03-12", ("weekly", "2025-03-03")),  # a Wednesday
        ("weekly", "2025-01-01", ("weekly", "2024-12-23")),  # across the year
        ("monthly", "2025-03-01", ("monthly", "2025-02")),
        ("monthly", "2025-01-31", ("monthly", "2024-12")),  # the last day: January is not over yet
        ("monthly", "2024-03-12", ("monthly", "2024-02")),
    ],
)
def test_period_for_fire(frequency, fire_date, expected):
    schedule_fields = {"weekly": {"day_of_week": 0}, "monthly": {"day_of_month": 1}}.get(frequency, {})
    assert period_for_fire(sub(frequency, **schedule_fields), dt.date.fromisoformat(fire_date)) == expected


def test_the_period_is_complete_in_the_business_zone():
    # Monday 00:30 in Tokyo is still Sunday in Honolulu: the last complete Honolulu week is the one before.
    tokyo_monday = sub("weekly", at="00:30", day_of_week="monday", timezone="Asia/Tokyo")
    fire = next_fire(tokyo_monday, "Pacific/Honolulu", utc(2025, 3, 9))
    assert fire == utc(2025, 3, 9, 15, 30)
    assert period_at(tokyo_monday, "Pacific/Honolulu", fire) == ("weekly", "2025-02-24")
    assert period_at(tokyo_monday, None, fire) == ("weekly", "2025-03-03")


def test_next_fire():
    assert next_fire(sub(), "Africa/Accra", utc(2025, 5, 1, 6, 59)) == utc(2025, 5, 1, 7)
    assert next_fire(sub(), "Africa/Accra", utc(2025, 5, 1, 7)) == utc(2025, 5, 2, 7)  # strictly after
    assert next_fire(sub("monthly", nth_weekday="last friday"), "UTC", utc(2025, 11, 1)) == utc(2025, 11, 28, 7)


def test_due_returns_the_fires_of_the_window_oldest_first():
    daily = sub(at="06:00")
    # (last_checked, now]: the fire at last_checked itself was already handled, the one at now is due.
    assert due(daily, "Asia/Tokyo", utc(2025, 3, 6, 21), utc(2025, 3, 9, 21)) == [
        (utc(2025, 3, 7, 21), "daily", "2025-03-07"),  # 06:00 JST on 2025-03-08
        (utc(2025, 3, 8, 21), "daily", "2025-03-08"),
        (utc(2025, 3, 9, 21), "daily", "2025-03-09"),
    ]
    weekly = sub("weekly", day_of_week="monday")
    assert due(weekly, "America/New_York", utc(2025, 3, 1), utc(2025, 3, 20)) == [
        (utc(2025, 3, 3, 12), "weekly", "2025-02-24"),
        (utc(2025, 3, 10, 11), "weekly", "2025-03-03"),
        (utc(2025, 3, 17, 11), "weekly", "2025-03-10"),
    ]
    assert due(weekly, "America/New_York", utc(2025, 3, 4), utc(2025, 3, 10, 10, 59)) == []
    weekly.is_active = False
    assert due(weekly, "America/New_York", utc(2025, 3, 1), utc(2025, 3, 20)) == []


def _by_calendar(s, day: dt.date) -> bool:
    """Whether `s` fires on `day`, from the calendar alone (independent of the rrule the schedule uses)."""
    import calendar

    last = calendar.monthrange(day.year, day.month)[1]
    if s.frequency == "daily":
        return True
    if s.frequency == "weekly":
        return day.weekday() == s.day_of_week
    if s.nth_weekday:
        ordinal, weekday = s.nth_weekday.split()
        if day.weekday() != ("monday tuesday wednesday thursday friday saturday sunday".split()).index(weekday):
            return False
        return day.day + 7 > last if ordinal == "last" else (day.day - 1) // 7 + 1 == int(ordinal[0])
    return day.day == (last if s.day_of_month == "last" else int(s.day_of_month))


@pytest.mark.parametrize(
    "fields",
    [
        {"frequency": "daily"},
        {"frequency": "weekly", "day_of_week": "sunday"},
        {"frequency": "monthly", "day_of_month": 28},
        {"frequency": "monthly", "day_of_month": "last"},
        {"frequency": "monthly", "nth_weekday": "1st monday"},
        {"frequency": "monthly", "nth_weekday": "4th thursday"},
        {"frequency": "monthly", "nth_weekday": "last saturday"},
    ],
)
def test_fire_dates_over_three_years_match_the_calendar(fields):
    s = sub(at="09:15", timezone="Europe/Warsaw", **fields)
    zone = ZoneInfo("Europe/Warsaw")
    fires = fire_times(s, None, utc(2024, 1, 1), utc(2027, 1, 1))
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=n) for n in range((dt.date(2027, 1, 1) - dt.date(2024, 1, 1)).days)]
    expected = [d for d in days if _by_calendar(s, d)]
    assert [f.astimezone(zone).date() for f in fires] == expected
    assert {f.astimezone(zone).time() for f in fires} == {dt.time(9, 15)}
