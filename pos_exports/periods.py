"""Business-local calendar periods and their UTC windows.

A partition key such as `2025-03-01` is each business's own local day: `[00:00, next 00:00)` in the
business's IANA zone, so a DST day lasts 23 or 25 hours and a day in Tokyo starts on the previous
UTC date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.UTC


class PeriodError(ValueError):
    """A period key or time zone that cannot be used."""


@dataclass(frozen=True)
class Window:
    """A half-open UTC window `[start, end)` for one business's local period."""

    start: dt.datetime
    end: dt.datetime
    timezone: str

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


def parse_date(key: str) -> dt.date:
    """A partition key as a date, or a clear error."""
    try:
        return dt.date.fromisoformat(key)
    except (TypeError, ValueError):
        raise PeriodError(f"partition key {key!r} is not a date (expected YYYY-MM-DD)") from None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"unknown time zone {name!r} (expected an IANA name such as 'Africa/Accra')") from None


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant of local 00:00 on `day`."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(UTC)


def window(first_day: dt.date, end_day_exclusive: dt.date, timezone: str) -> Window:
    """The UTC window of local days `[first_day, end_day_exclusive)` in `timezone`."""
    tz = zone(timezone)
    return Window(local_midnight(first_day, tz), local_midnight(end_day_exclusive, tz), timezone)


def day_window(day: dt.date, timezone: str) -> Window:
    return window(day, day + dt.timedelta(days=1), timezone)
