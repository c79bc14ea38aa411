"""Report periods: daily, weekly (Monday to Sunday), monthly, or an arbitrary range of business-local days.

A period is a list of business-local calendar dates; its UTC window depends on the business's time zone
(`Period.window(timezone)`), so the same key means a different UTC window for Accra and Honolulu.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from pos_exports.periods import PeriodError, Window, parse_date, window

PERIOD_KINDS = ("daily", "weekly", "monthly", "range")


@dataclass(frozen=True)
class Period:
    kind: str  # daily | weekly | monthly | range
    key: str  # 2025-03-09 | 2025-03-03 (the week's Monday) | 2025-03 | 2025-03-01_2025-03-15
    first_day: dt.date
    last_day: dt.date  # inclusive
    label: str  # "9 Mar 2025" | "3–9 Mar 2025" | "March 2025"

    @property
    def days(self) -> list[dt.date]:
        """Every business-local day of the period, oldest first."""
        return [self.first_day + dt.timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1)]

    @property
    def end_day(self) -> dt.date:
        """The first day after the period (the window's exclusive end)."""
        return self.last_day + dt.timedelta(days=1)

    def window(self, timezone: str) -> Window:
        """The UTC window `[local 00:00 of first_day, local 00:00 after last_day)` in `timezone`."""
        return window(self.first_day, self.end_day, timezone)


def _day_label(day: dt.date) -> str:
    return f"{day.day} {day:%b %Y}"


def span_label(first: dt.date, last: dt.date) -> str:
    """`9 Mar 2025`, `3–9 Mar 2025`, `24 Feb – 2 Mar 2025`, `30 Dec 2024 – 5 Jan 2025`."""
    if first == last:
        return _day_label(first)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{last.day} {last:%b %Y}"
    if first.year == last.year:
        return f"{first.day} {first:%b} – {last.day} {last:%b %Y}"
    return f"{_day_label(first)} – {_day_label(last)}"


def daily(day: dt.date) -> Period:
    return Period("daily", day.isoformat(), day, day, _day_label(day))


def weekly(monday: dt.date) -> Period:
    if monday.weekday() != 0:
        start = monday - dt.timedelta(days=monday.weekday())
        raise PeriodError(
            f"weekly key {monday.isoformat()} is a {monday:%A}: a week is keyed by its Monday "
            f"(the week holding that day is {start.isoformat()})"
        )
    last = monday + dt.timedelta(days=6)
    return Period("weekly", monday.isoformat(), monday, last, span_label(monday, last))


def monthly(year: int, month: int) -> Period:
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    return Period("monthly", f"{year:04d}-{month:02d}", first, last, f"{first:%B %Y}")


def date_range(first: dt.date, last: dt.date) -> Period:
    """An arbitrary range of business-local days, both inclusive."""
    if last < first:
        raise PeriodError(f"date range ends ({last.isoformat()}) before it starts ({first.isoformat()})")
    key = first.isoformat() if first == last else f"{first.isoformat()}_{last.isoformat()}"
    return Period("range", key, first, last, span_label(first, last))


def previous(period: Period) -> Period:
    """The period just before: the day before, last week, last month, or a range of the same length ending the
    day before (what a report compares itself with)."""
    if period.kind == "daily":
        return daily(period.first_day - dt.timedelta(days=1))
    if period.kind == "weekly":
        return weekly(period.first_day - dt.timedelta(days=7))
    if period.kind == "monthly":
        last = period.first_day - dt.timedelta(days=1)
        return monthly(last.year, last.month)
    length = period.last_day - period.first_day
    last = period.first_day - dt.timedelta(days=1)
    return date_range(last - length, last)


def period_for(kind: str, key: str) -> Period:
    """The period of a partition key: `2025-03-09` (daily), `2025-03-03` (weekly, a Monday),
    `2025-03` or `2025-03-01` (monthly), `2025-03-01_2025-03-15` (range); a clear error otherwise."""
    key = (key or "").strip()
    if kind == "daily":
        return daily(parse_date(key))
    if kind == "weekly":
        return weekly(parse_date(key))
    if kind == "monthly":
        if len(key) == 7:
            day = parse_date(f"{key}-01") if key[4:5] == "-" else None
            if day is None:
                raise PeriodError(f"monthly key {key!r} is not a month (expected YYYY-MM or YYYY-MM-01)")
        else:
            try:
                day = parse_date(key)
            except PeriodError:
                raise PeriodError(f"monthly key {key!r} is not a month (expected YYYY-MM or YYYY-MM-01)") from None
            if day.day != 1:
                raise PeriodError(
                    f"monthly key {key} is not the first day of a month (expected {key[:7]} or {key[:7]}-01)"
                )
        return monthly(day.year, day.month)
    if kind == "range":
        first, sep, last = key.partition("_")
        return date_range(parse_date(first), parse_date(last if sep else first))
    raise PeriodError(f"unknown period kind {kind!r} (allowed: {', '.join(PERIOD_KINDS)})")
