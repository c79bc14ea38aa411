"""When a subscription fires, and which period each firing delivers (pure functions over datetimes).

A subscription fires at its local hour:minute in its zone (`sub.timezone`, else the business's
own zone `tz`) on its days. Across DST changes the local time is kept, so the UTC hour moves:
- a local time that does not exist that day (spring-forward gap, e.g. 02:30 in Warsaw on
  2025-03-30) fires at the first valid instant after the gap (03:00 CEST = 01:00 UTC);
- a local time that happens twice (fall-back, e.g. 01:30 in New York on 2025-11-02) fires once,
  at its first occurrence (fold=0: 01:30 EDT = 05:30 UTC).

Each firing delivers the most recently completed period as of the local date it fires on: the
previous day, the previous Monday-Sunday week, or the previous calendar month.
The fire dates are a `dateutil.rrule` (`day_rule`); the local time and the DST rules above are ours.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import rrule

from pos_exports.core.words import ORDINALS, WEEKDAYS

UTC = dt.UTC
_TICK = dt.timedelta(microseconds=1)


class ScheduleError(ValueError):
    """A schedule that cannot be evaluated (unknown zone, naive datetime, broken subscription)."""


class Scheduled(Protocol):
    """What the schedule needs of a subscription (`pos_exports.delivery.subscriptions.Subscription`)."""

    frequency: str
    hour: int
    minute: int
    day_of_week: int | None
    day_of_month: str | None
    nth_weekday: str | None
    timezone: str | None
    is_active: bool


def zone_of(sub: Scheduled, tz: str | None) -> ZoneInfo:
    """The subscription's own zone, else the business's zone `tz`."""
    name = sub.timezone or tz
    if not name:
        raise ScheduleError("no time zone: the subscription has none and no business time zone was given")
    return _zone(name)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


def _utc(name: str, value: dt.datetime) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def day_rule(sub: Scheduled, start: dt.datetime) -> rrule.rrule:
    """The subscription's local fire dates from the naive local midnight `start` on, as a `dateutil.rrule`
    (midnights, no zone: the time of day and the DST rules are applied by `local_instant`)."""
    if sub.frequency == "daily":
        return rrule.rrule(rrule.DAILY, dtstart=start)
    if sub.frequency == "weekly":
        if sub.day_of_week is None:
            raise ScheduleError("a weekly subscription without day_of_week")
        return rrule.rrule(rrule.WEEKLY, byweekday=sub.day_of_week, dtstart=start)
    if sub.frequency == "monthly":
        if sub.nth_weekday:
            try:
                ordinal_text, weekday_text = sub.nth_weekday.lower().split()
                ordinal, weekday = ORDINALS[ordinal_text], WEEKDAYS.index(weekday_text)
            except (ValueError, KeyError):
                raise ScheduleError(f"nth_weekday {sub.nth_weekday!r} is not like '2nd tuesday'") from None
            return rrule.rrule(rrule.MONTHLY, byweekday=rrule.weekday(weekday, ordinal), dtstart=start)
        if sub.day_of_month == "last":
            return rrule.rrule(rrule.MONTHLY, bymonthday=-1, dtstart=start)
        if sub.day_of_month and sub.day_of_month.isdigit():
            return rrule.rrule(rrule.MONTHLY, bymonthday=int(sub.day_of_month), dtstart=start)
        raise ScheduleError("a monthly subscription without day_of_month or nth_weekday")
    raise ScheduleError(f"unknown frequency {sub.frequency!r}")


def fires_on(sub: Scheduled, day: dt.date) -> bool:
    """Whether the subscription fires on this local date."""
    midnight = dt.datetime.combine(day, dt.time())
    return day_rule(sub, midnight).after(midnight, inc=True) == midnight


def local_instant(day: dt.date, hour: int, minute: int, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of local `hour:minute` on `day`, with the DST rules of this module."""
    wall = dt.datetime.combine(day, dt.time(hour, minute))
    first = wall.replace(tzinfo=zone)  # fold=0: the first occurrence of an ambiguous time
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # `wall` falls in a gap. Read with the offset after the transition it lies before the
    # transition, read with the offset before it lies after: the transition is in between.
    lo = int(wall.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    hi = int(instant.timestamp())
    if lo > hi:
        lo, hi = hi, lo
    after = dt.datetime.fromtimestamp(hi, UTC).astimezone(zone).utcoffset()
    while hi - lo > 1:  # the first second carrying the new offset
        mid = (lo + hi) // 2
        if dt.datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return dt.datetime.fromtimestamp(hi, UTC)


def fire_times(sub: Scheduled, tz: str | None, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Every UTC instant in `[start, end)` at which the subscription fires, oldest first.

    The schedule only: whether the subscription is active is not looked at (see `due`).
    """
    zone = zone_of(sub, tz)
    start_utc, end_utc = _utc("start", start), _utc("end", end)
    if end_utc <= start_utc:
        return []
    first = dt.datetime.combine(start_utc.astimezone(zone).date() - dt.timedelta(days=1), dt.time())
    last = dt.datetime.combine(end_utc.astimezone(zone).date() + dt.timedelta(days=1), dt.time())
    fires: list[dt.datetime] = []
    for midnight in day_rule(sub, first).between(first, last, inc=True):
        instant = local_instant(midnight.date(), sub.hour, sub.minute, zone)
        if start_utc <= instant < end_utc and (not fires or fires[-1] != instant):
            fires.append(instant)
    return fires


def period_for_fire(sub: Scheduled, fire_local_date: dt.date) -> tuple[str, str]:
    """(period kind, period key) that a firing on this LOCAL date delivers: the last completed period.

    daily -> the previous day (`2025-03-09`); weekly -> the previous Monday-Sunday week, keyed by
    its Monday (`2025-03-03`); monthly -> the previous calendar month (`2025-02`).
    """
    day = fire_local_date.date() if isinstance(fire_local_date, dt.datetime) else fire_local_date
    if sub.frequency == "daily":
        return "daily", (day - dt.timedelta(days=1)).isoformat()
    if sub.frequency == "weekly":
        monday = day - dt.timedelta(days=day.weekday()) - dt.timedelta(weeks=1)
        return "weekly", monday.isoformat()
    if sub.frequency == "monthly":
        previous = day.replace(day=1) - dt.timedelta(days=1)
        return "monthly", f"{previous.year:04d}-{previous.month:02d}"
    raise ScheduleError(f"unknown frequency {sub.frequency!r}")


def period_at(sub: Scheduled, tz: str | None, fire: dt.datetime) -> tuple[str, str]:
    """(period kind, period key) delivered by the fire at this instant.

    Periods are business-local calendar dates, so the fire's date is taken in the business's zone
    `tz` (in the subscription's zone when `tz` is not known). The two differ only for a subscription
    with its own zone: one sent at Monday 00:30 Tokyo time for a Honolulu business fires while it is
    still Sunday in Honolulu, so it delivers the week before last, the last one complete there.
    """
    zone = _zone(tz) if tz else zone_of(sub, None)
    return period_for_fire(sub, _utc("fire", fire).astimezone(zone).date())


def next_fire(sub: Scheduled, tz: str | None, after: dt.datetime) -> dt.datetime:
    """The first fire strictly after `after` (UTC)."""
    start = _utc("after", after) + _TICK
    for _ in range(30):  # 30 x 40 days: far more than any schedule here needs (monthly: <= 31 days)
        end = start + dt.timedelta(days=40)
        if fires := fire_times(sub, tz, start, end):
            return fires[0]
        start = end
    raise ScheduleError("the subscription never fires")


def due(
    sub: Scheduled, tz: str | None, last_checked: dt.datetime, now: dt.datetime
) -> list[tuple[dt.datetime, str, str]]:
    """The fires in `(last_checked, now]` as (fire UTC, period kind, period key), oldest first.

    `tz` is the business's zone (used when the subscription has none, and for the period: see
    `period_at`).

    A paused subscription (`is_active` false) is never due: the periods it would have fired for
    while paused are skipped, not caught up on resume.
    """
    if not getattr(sub, "is_active", True):
        return []
    start, end = _utc("last_checked", last_checked) + _TICK, _utc("now", now) + _TICK
    result: list[tuple[dt.datetime, str, str]] = []
    seen: set[str] = set()
    for fire in fire_times(sub, tz, start, end):
        kind, key = period_at(sub, tz, fire)
        if key not in seen:  # a skipped calendar day (Pacific/Apia 2011) must not deliver a period twice
            seen.add(key)
            result.append((fire, kind, key))
    return result
