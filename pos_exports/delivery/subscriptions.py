"""Subscriptions: which exports of which business go to whom, and when; validated, then stored.

A subscription is built from user input (CLI arguments or a YAML file) by `validate`, which refuses
anything that could mis-deliver a file (a second address smuggled into a recipient, a header
injected through a subject, a filter of a dataset that is not exported) with a `SubscriptionError`
naming the field. The store functions keep subscriptions and per-business notification settings
in the state database (`pos_exports.state`), SQLite or PostgreSQL.

Filters are one flat mapping, e.g. `{"customer_type": "wholesale", "stock_status": "low_stock"}`;
the filter names (docs/reports.md) do not collide across datasets, and `filters_for(sub, dataset)` gives the
filters of one dataset. In YAML they may also be grouped by dataset (`customers: {...}`).
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import sqlalchemy as sa
import yaml

from pos_exports import state
from pos_exports.core.addresses import address_problem, has_control
from pos_exports.core.catalog import DATASETS, FORMATS, FREQUENCIES, PLACEHOLDERS
from pos_exports.core.words import ORDINALS, WEEKDAYS, truth

UTC = dt.UTC

_ORDINAL_ALIASES = {"first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th"}
DEFAULT_SUBJECT = "{business_name}: {datasets} export for {period_label}"
DEFAULT_MESSAGE = (
    "Hello,\n\n"
    "Here is the {datasets} export of {business_name} for {period_label}.\n"
    'You receive it through the {frequency} subscription "{subscription_name}".\n'
)
DEFAULT_FROM_NAME = "POS Exports"
MAX_NAME = 100
MAX_SUBJECT = 200
MAX_MESSAGE = 10_000
MAX_RECIPIENTS = 50

# The fields `validate` accepts. `at` ("HH:MM") is an alternative to hour + minute.
INPUT_FIELDS = (
    "business_id",
    "name",
    "datasets",
    "formats",
    "frequency",
    "at",
    "hour",
    "minute",
    "day_of_week",
    "day_of_month",
    "nth_weekday",
    "timezone",
    "recipients",
    "subject_template",
    "message_template",
    "filters",
    "only_if_data",
    "is_active",
)
SETTINGS_FIELDS = (
    "business_id",
    "notify_success",
    "notify_failure",
    "default_recipients",
    "failure_recipients",
    "from_name",
    "reply_to",
)


class SubscriptionError(ValueError):
    """Input that cannot become a subscription (or a store operation that cannot be done).

    `str(exc)` is `field: message`, prefixed by the entry (`subscriptions[2] ('Weekly')`) when the
    input came from a file.
    """

    def __init__(self, field: str, message: str, *, entry: str | None = None) -> None:
        self.field = field
        self.message = message
        self.entry = entry
        super().__init__(field, message)

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}"
        return f"{self.entry}: {text}" if self.entry else text


@dataclass
class Subscription:
    """One row of the `subscriptions` table (`id`, `created_at`, `updated_at` are None before insert)."""

    business_id: int
    name: str
    datasets: list[str]
    formats: list[str]
    frequency: str  # daily | weekly | monthly
    hour: int
    minute: int
    recipients: list[str]
    day_of_week: int | None = None  # weekly: 0 = Monday .. 6 = Sunday
    day_of_month: str | None = None  # monthly: "1".."28" or "last"
    nth_weekday: str | None = None  # monthly: "2nd tuesday", "last friday"
    timezone: str | None = None  # None: the business's own zone
    subject_template: str = DEFAULT_SUBJECT
    message_template: str = DEFAULT_MESSAGE
    filters: dict[str, Any] = field(default_factory=dict)
    only_if_data: bool = False
    is_active: bool = True
    id: int | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    def to_input(self) -> dict[str, Any]:
        """The fields as `validate` takes them: `validate(sub.to_input())` gives the same subscription."""
        return {
            "business_id": self.business_id,
            "name": self.name,
            "datasets": list(self.datasets),
            "formats": list(self.formats),
            "frequency": self.frequency,
            "hour": self.hour,
            "minute": self.minute,
            "day_of_week": self.day_of_week,
            "day_of_month": self.day_of_month,
            "nth_weekday": self.nth_weekday,
            "timezone": self.timezone,
            "recipients": list(self.recipients),
            "subject_template": self.subject_template,
            "message_template": self.message_template,
            "filters": dict(self.filters),
            "only_if_data": self.only_if_data,
            "is_active": self.is_active,
        }

    @property
    def at(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}"

    @property
    def when(self) -> str:
        """`daily at 07:00`, `weekly on monday at 07:00`, `monthly on the last day at 18:00`, ..."""
        if self.frequency == "weekly" and self.day_of_week is not None:
            return f"weekly on {WEEKDAYS[self.day_of_week]} at {self.at}"
        if self.frequency == "monthly":
            if self.nth_weekday:
                return f"monthly on the {self.nth_weekday} at {self.at}"
            if self.day_of_month == "last":
                return f"monthly on the last day at {self.at}"
            return f"monthly on day {self.day_of_month} at {self.at}"
        return f"{self.frequency} at {self.at}"


@dataclass
class NotificationSettings:
    """One row of the `notification_settings` table; the defaults apply to a business without a row."""

    business_id: int
    notify_success: bool = False
    notify_failure: bool = True
    default_recipients: list[str] = field(default_factory=list)
    failure_recipients: list[str] = field(default_factory=list)
    from_name: str = DEFAULT_FROM_NAME
    reply_to: str | None = None
    updated_at: dt.datetime | None = None

    def to_input(self) -> dict[str, Any]:
        return {
            "business_id": self.business_id,
            "notify_success": self.notify_success,
            "notify_failure": self.notify_failure,
            "default_recipients": list(self.default_recipients),
            "failure_recipients": list(self.failure_recipients),
            "from_name": self.from_name,
            "reply_to": self.reply_to,
        }


# ---------------------------------------------------------------------------------------------
# Field parsers. Each takes (field name, raw value) and returns the clean value or raises.


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _int(fld: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool):
        raise SubscriptionError(fld, f"{_show(value)} is not a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,18}\s*", value):
        number = int(value)
    else:
        raise SubscriptionError(fld, f"{_show(value)} is not a whole number")
    if (low is not None and number < low) or (high is not None and number > high):
        if high is None:
            raise SubscriptionError(fld, f"{number} is out of range (must be at least {low})")
        raise SubscriptionError(fld, f"{number} is out of range ({low}-{high})")
    return number


def _bool(fld: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and (flag := truth(value)) is not None:
        return flag
    raise SubscriptionError(fld, f"{_show(value)} is not true or false")


def _line(fld: str, value: Any, *, max_len: int) -> str:
    """A non-empty single line of text (no CR, LF or other control characters)."""
    if not isinstance(value, str):
        raise SubscriptionError(fld, f"{_show(value)} is not text")
    if "\r" in value or "\n" in value:
        raise SubscriptionError(fld, f"{_show(value)} must not contain a line break (CR or LF)")
    if has_control(value):
        raise SubscriptionError(fld, f"{_show(value)} must not contain control characters")
    text = value.strip()
    if not text:
        raise SubscriptionError(fld, "must not be empty")
    if len(text) > max_len:
        raise SubscriptionError(fld, f"is {len(text)} characters long (at most {max_len})")
    return text


def _choice(fld: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise SubscriptionError(fld, f"{_show(value)} is not one of {', '.join(allowed)}")
    return value.strip().lower()


def _choices(fld: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    """A non-empty list drawn from `allowed` (a single string is a list of one), without duplicates."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise SubscriptionError(fld, f"give at least one of {', '.join(allowed)}")
    chosen: list[str] = []
    for item in items:
        name = _choice(fld, item, allowed)
        if name not in chosen:
            chosen.append(name)
    return chosen


def _weekday(fld: str, value: Any) -> int:
    """0-6 (0 = Monday) or a weekday name: `monday`, `mon`, `tues`, ..."""
    if isinstance(value, str) and not value.strip().isdigit():
        text = value.strip().lower()
        matches = [i for i, day in enumerate(WEEKDAYS) if len(text) >= 3 and day.startswith(text)]
        if len(matches) == 1:
            return matches[0]
        raise SubscriptionError(fld, f"{_show(value)} is not a weekday (monday..sunday, or 0-6 with 0 = Monday)")
    try:
        return _int(fld, value, low=0, high=6)
    except SubscriptionError:
        raise SubscriptionError(
            fld, f"{_show(value)} is not a weekday (monday..sunday, or 0-6 with 0 = Monday)"
        ) from None


def _day_of_month(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() == "last":
        return "last"
    try:
        day = _int("day_of_month", value)
    except SubscriptionError:
        raise SubscriptionError("day_of_month", f"{_show(value)} is not a day (1-28 or 'last')") from None
    if not 1 <= day <= 28:
        raise SubscriptionError(
            "day_of_month", f"{day} is not allowed: use 1-28 or 'last' (not every month has day {day})"
        )
    return str(day)


def _nth_weekday(value: Any) -> str:
    usage = "use 1st, 2nd, 3rd, 4th or last followed by a weekday, e.g. '2nd tuesday' or 'last friday'"
    match = re.fullmatch(r"\s*(\w+)\s+(\w+)\s*", value) if isinstance(value, str) else None
    if not match:
        raise SubscriptionError("nth_weekday", f"{_show(value)} is not valid: {usage}")
    ordinal = _ORDINAL_ALIASES.get(match.group(1).lower(), match.group(1).lower())
    if ordinal not in ORDINALS:
        raise SubscriptionError(
            "nth_weekday", f"{_show(value)} is not valid: {usage} (a 5th weekday does not occur every month)"
        )
    try:
        day = _weekday("nth_weekday", match.group(2))
    except SubscriptionError:
        raise SubscriptionError("nth_weekday", f"{_show(value)} is not valid: {usage}") from None
    return f"{ordinal} {WEEKDAYS[day]}"


def parse_nth_weekday(text: str) -> tuple[int, int]:
    """`'2nd tuesday'` -> (2, 1); `'last friday'` -> (-1, 4): (ordinal, weekday with 0 = Monday)."""
    ordinal, day = _nth_weekday(text).split()
    return ORDINALS[ordinal], WEEKDAYS.index(day)


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    unusable = {"localtime", "Factory", "posixrules"}  # the host's own zone, placeholders
    return frozenset(n for n in available_timezones() if n not in unusable and not n.startswith(("posix/", "right/")))


def _timezone(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SubscriptionError("timezone", f"{_show(value)} is not an IANA time zone (e.g. 'Africa/Accra')")
    name = value.strip()
    known = name in _zone_names()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        known = False
    if not known:
        raise SubscriptionError("timezone", f"{_show(value)} is not an IANA time zone (e.g. 'Africa/Accra')")
    return name


def _time(data: Mapping[str, Any]) -> tuple[int, int]:
    at = data.get("at")
    if at is not None:
        if data.get("hour") is not None or data.get("minute") is not None:
            raise SubscriptionError("at", "give either at ('HH:MM') or hour and minute, not both")
        if isinstance(at, int) and not isinstance(at, bool):
            raise SubscriptionError(
                "at", "write the time as a quoted string such as '07:00' (YAML reads 7:00 as a number)"
            )
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", at) if isinstance(at, str) else None
        if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise SubscriptionError("at", f"{_show(at)} is not a time of day HH:MM (00:00-23:59)")
        return int(match.group(1)), int(match.group(2))
    if data.get("hour") is None:
        raise SubscriptionError("hour", "required: the local hour 0-23 at which to send (or at: 'HH:MM')")
    hour = _int("hour", data["hour"], low=0, high=23)
    minute = 0 if data.get("minute") is None else _int("minute", data["minute"], low=0, high=59)
    return hour, minute


def _schedule_fields(frequency: str, data: Mapping[str, Any]) -> tuple[int | None, str | None, str | None]:
    dow, dom, nth = (data.get(k) for k in ("day_of_week", "day_of_month", "nth_weekday"))
    if frequency != "weekly" and dow is not None:
        raise SubscriptionError("day_of_week", f"does not apply to a {frequency} subscription")
    if frequency != "monthly":
        for name, value in (("day_of_month", dom), ("nth_weekday", nth)):
            if value is not None:
                raise SubscriptionError(name, f"does not apply to a {frequency} subscription")
    if frequency == "weekly":
        if dow is None:
            raise SubscriptionError("day_of_week", "required for a weekly subscription (monday..sunday)")
        return _weekday("day_of_week", dow), None, None
    if frequency == "monthly":
        if dom is not None and nth is not None:
            raise SubscriptionError("day_of_month", "give either day_of_month or nth_weekday, not both")
        if dom is None and nth is None:
            raise SubscriptionError(
                "day_of_month",
                "a monthly subscription needs day_of_month (1-28 or 'last') or nth_weekday (e.g. '2nd tuesday')",
            )
        return None, (_day_of_month(dom) if dom is not None else None), (_nth_weekday(nth) if nth is not None else None)
    return None, None, None


# --- email addresses ---------------------------------------------------------------------------


def check_address(fld: str, value: Any) -> str:
    """One plain address (`owner@shop.example`), or a SubscriptionError naming `fld` and saying why not
    (the rule: `pos_exports.core.addresses`)."""
    if not isinstance(value, str):
        raise SubscriptionError(fld, f"{_show(value)} is not an email address")
    text = value.strip()
    problem = address_problem(text)
    if problem is not None:
        raise SubscriptionError(
            fld, f"{_show(value)} is not a valid email address" + (f": {problem}" if problem else "")
        )
    return text


def _addresses(fld: str, value: Any, *, required: bool) -> list[str]:
    if value is None:
        value = []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise SubscriptionError(fld, f"{_show(value)} is not a list of email addresses")
    clean: list[str] = []
    seen: set[str] = set()
    for item in items:
        address = check_address(fld, item)
        if address.lower() not in seen:
            seen.add(address.lower())
            clean.append(address)
    if required and not clean:
        raise SubscriptionError(fld, "give at least one email address")
    if len(clean) > MAX_RECIPIENTS:
        raise SubscriptionError(fld, f"{len(clean)} addresses; at most {MAX_RECIPIENTS}")
    return clean


# --- templates ---------------------------------------------------------------------------------


def placeholders_in(template: str) -> list[str]:
    """The placeholder names of a template (as `str.format` reads it)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def _template(fld: str, value: Any, default: str, *, single_line: bool, max_len: int) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise SubscriptionError(fld, f"{_show(value)} is not text")
    if single_line and ("\r" in value or "\n" in value):
        raise SubscriptionError(fld, "must not contain a line break (CR or LF): it becomes an email header")
    if has_control(value, allowed="" if single_line else "\r\n\t"):
        raise SubscriptionError(fld, "must not contain control characters")
    if not value.strip():
        raise SubscriptionError(fld, "must not be empty (leave it out for the default text)")
    if len(value) > max_len:
        raise SubscriptionError(fld, f"is {len(value)} characters long (at most {max_len})")
    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError:
        raise SubscriptionError(fld, "has an unmatched '{' or '}' (write {{ or }} for a literal brace)") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            shown = "{" + name + "}" if name else "{}"
            raise SubscriptionError(fld, f"unknown placeholder {shown} (known: {known})")
        if spec or conversion:
            raise SubscriptionError(fld, f"placeholder {{{name}}} takes no format or conversion")
    return value.strip() if single_line else value


# --- filters -----------------------------------------------------------------------------------


def _decimal_at_least_zero(fld: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise SubscriptionError(fld, f"{_show(value)} is not an amount")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise SubscriptionError(fld, f"{_show(value)} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise SubscriptionError(fld, f"{_show(value)} must be an amount of at least 0")
    if amount != amount.quantize(Decimal("0.01")):
        raise SubscriptionError(fld, f"{_show(value)} has more than 2 decimal places")
    return str(amount.quantize(Decimal("0.01")))


def _enum(*allowed: str) -> Callable[[str, Any], str]:
    return lambda fld, value: _choice(fld, value, allowed)


def _positive(fld: str, value: Any) -> int:
    return _int(fld, value, low=1)


def _any_int(fld: str, value: Any) -> int:
    return _int(fld, value)


def _short_text(fld: str, value: Any) -> str:
    return _line(fld, value, max_len=100)


# docs/reports.md, "Filters": dataset -> filter -> parser.
FILTERS: dict[str, dict[str, Callable[[str, Any], Any]]] = {
    "sales": {},
    "customers": {
        "customer_type": _enum("retail", "wholesale"),
        "credit_status": _enum("good", "near_limit", "over_limit", "blocked"),
        "min_outstanding_balance": _decimal_at_least_zero,
        "is_active": _bool,
    },
    "inventory": {
        "storefront_id": _positive,
        "category": _short_text,
        "stock_status": _enum("in_stock", "low_stock", "out_of_stock"),
        "min_quantity": _any_int,
        "exclude_zero_value": _bool,
        "include_movement_history": _bool,
    },
    "audit_log": {
        "event_type": _short_text,
        "user_id": _positive,
        "sale_id": _positive,
        "customer_id": _positive,
    },
}
FILTER_DATASET = {name: ds for ds, names in FILTERS.items() for name in names}


def _filters(value: Any, datasets: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SubscriptionError("filters", f"{_show(value)} is not a mapping of filter: value")
    flat: list[tuple[str, Any, str | None]] = []  # (filter, value, dataset it was grouped under)
    for key, item in value.items():
        if key in FILTERS and isinstance(item, Mapping):
            flat.extend((k, v, key) for k, v in item.items())
        else:
            flat.append((key, item, None))
    clean: dict[str, Any] = {}
    for key, item, group in flat:
        dataset = FILTER_DATASET.get(key) if isinstance(key, str) else None
        if dataset is None or (group is not None and group != dataset):
            known = "; ".join(f"{ds}: {', '.join(names)}" for ds, names in FILTERS.items() if names)
            where = f"of the {group} dataset " if group else ""
            raise SubscriptionError("filters", f"unknown filter {_show(key)} {where}(known: {known})")
        if dataset not in datasets:
            raise SubscriptionError(
                "filters",
                f"{key!r} filters the {dataset} dataset, which this subscription does not export "
                f"(datasets: {', '.join(datasets)})",
            )
        if key in clean:
            raise SubscriptionError("filters", f"{key!r} is given twice")
        if item is None:
            raise SubscriptionError("filters", f"{key}: give a value")
        try:
            clean[key] = FILTERS[dataset][key](key, item)
        except SubscriptionError as exc:
            raise SubscriptionError("filters", str(exc)) from None
    return dict(sorted(clean.items()))


def filters_for(sub: Subscription, dataset: str) -> dict[str, Any]:
    """The subscription's filters of one dataset."""
    return {k: v for k, v in sub.filters.items() if FILTER_DATASET.get(k) == dataset}


# --- validate ----------------------------------------------------------------------------------


def _check_keys(data: Any, allowed: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise SubscriptionError(what, f"expected a mapping of fields, got {_show(data)}")
    for key in data:
        if key not in allowed:
            raise SubscriptionError(str(key), f"unknown field (known fields: {', '.join(allowed)})")
    return data


def _business_id(value: Any, business_timezones: Mapping[int, str] | None) -> int:
    if value is None:
        raise SubscriptionError("business_id", "required")
    business_id = _int("business_id", value, low=1)
    if business_timezones is not None and business_id not in business_timezones:
        raise SubscriptionError("business_id", f"no business with id {business_id}")
    return business_id


def validate(data: Mapping[str, Any], *, business_timezones: Mapping[int, str] | None = None) -> Subscription:
    """A Subscription from user input, or a SubscriptionError naming the first invalid field.

    `business_timezones` (id -> IANA zone), when given, makes an unknown business an error.
    A key whose value is None counts as absent (the default applies).
    """
    data = _check_keys(data, INPUT_FIELDS, "subscription")
    business_id = _business_id(data.get("business_id"), business_timezones)
    if data.get("name") is None:
        raise SubscriptionError("name", "required")
    name = _line("name", data["name"], max_len=MAX_NAME)
    datasets = _choices("datasets", data.get("datasets"), DATASETS)
    formats = _choices("formats", data.get("formats"), FORMATS)
    if data.get("frequency") is None:
        raise SubscriptionError("frequency", f"required: one of {', '.join(FREQUENCIES)}")
    frequency = _choice("frequency", data["frequency"], FREQUENCIES)
    hour, minute = _time(data)
    day_of_week, day_of_month, nth_weekday = _schedule_fields(frequency, data)
    timezone = None if data.get("timezone") is None else _timezone(data["timezone"])
    recipients = _addresses("recipients", data.get("recipients"), required=True)
    subject = _template(
        "subject_template", data.get("subject_template"), DEFAULT_SUBJECT, single_line=True, max_len=MAX_SUBJECT
    )
    message = _template(
        "message_template", data.get("message_template"), DEFAULT_MESSAGE, single_line=False, max_len=MAX_MESSAGE
    )
    filters = _filters(data.get("filters"), datasets)
    only_if_data = False if data.get("only_if_data") is None else _bool("only_if_data", data["only_if_data"])
    is_active = True if data.get("is_active") is None else _bool("is_active", data["is_active"])
    return Subscription(
        business_id=business_id,
        name=name,
        datasets=datasets,
        formats=formats,
        frequency=frequency,
        hour=hour,
        minute=minute,
        recipients=recipients,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        nth_weekday=nth_weekday,
        timezone=timezone,
        subject_template=subject,
        message_template=message,
        filters=filters,
        only_if_data=only_if_data,
        is_active=is_active,
    )


def validate_settings(
    data: Mapping[str, Any], *, business_timezones: Mapping[int, str] | None = None
) -> NotificationSettings:
    """NotificationSettings from user input (absent keys take the defaults), or a SubscriptionError."""
    data = _check_keys(data, SETTINGS_FIELDS, "notification_settings")
    business_id = _business_id(data.get("business_id"), business_timezones)
    defaults = NotificationSettings(business_id)

    def flag(name: str, default: bool) -> bool:
        return default if data.get(name) is None else _bool(name, data[name])

    from_name = (
        defaults.from_name if data.get("from_name") is None else _line("from_name", data["from_name"], max_len=100)
    )
    if any(ch in from_name for ch in '<>@",;'):
        raise SubscriptionError("from_name", f"{_show(from_name)} must be a plain name (no <, >, @, quotes, commas)")
    reply_to = None if data.get("reply_to") in (None, "") else check_address("reply_to", data["reply_to"])
    return NotificationSettings(
        business_id=business_id,
        notify_success=flag("notify_success", defaults.notify_success),
        notify_failure=flag("notify_failure", defaults.notify_failure),
        default_recipients=_addresses("default_recipients", data.get("default_recipients"), required=False),
        failure_recipients=_addresses("failure_recipients", data.get("failure_recipients"), required=False),
        from_name=from_name,
        reply_to=reply_to,
    )


# ---------------------------------------------------------------------------------------------
# Store


_SUB_COLUMNS = tuple(k for k in Subscription.__dataclass_fields__ if k not in ("id", "created_at", "updated_at"))


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _sub_from_row(row: Any) -> Subscription:
    m = row._mapping
    values = {k: m[k] for k in _SUB_COLUMNS}
    values["datasets"] = list(values["datasets"])
    values["formats"] = list(values["formats"])
    values["recipients"] = list(values["recipients"])
    values["filters"] = dict(values["filters"] or {})
    values["only_if_data"] = bool(values["only_if_data"])
    values["is_active"] = bool(values["is_active"])
    return Subscription(**values, id=m["id"], created_at=_aware(m["created_at"]), updated_at=_aware(m["updated_at"]))


def _sub_values(sub: Subscription) -> dict[str, Any]:
    return {k: getattr(sub, k) for k in _SUB_COLUMNS}


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _by_name(conn: sa.Connection, business_id: int, name: str) -> Subscription | None:
    t = state.subscriptions
    row = conn.execute(sa.select(t).where(t.c.business_id == business_id, t.c.name == name)).first()
    return _sub_from_row(row) if row else None


def _duplicate(sub: Subscription, other: Subscription) -> SubscriptionError:
    return SubscriptionError(
        "name", f"business {sub.business_id} already has a subscription named {sub.name!r} (id {other.id})"
    )


def _insert(conn: sa.Connection, sub: Subscription) -> Subscription:
    t = state.subscriptions
    now = _now()
    values = {**_sub_values(sub), "created_at": now, "updated_at": now}
    new_id = conn.execute(sa.insert(t).values(**values)).inserted_primary_key[0]
    return Subscription(**_sub_values(sub), id=new_id, created_at=now, updated_at=now)


def _write(conn: sa.Connection, sub_id: int, sub: Subscription, created_at: dt.datetime | None) -> Subscription:
    t = state.subscriptions
    now = _now()
    conn.execute(sa.update(t).where(t.c.id == sub_id).values(**_sub_values(sub), updated_at=now))
    return Subscription(**_sub_values(sub), id=sub_id, created_at=created_at, updated_at=now)


def _revalidate(sub: Subscription | Mapping[str, Any], business_timezones: Mapping[int, str] | None) -> Subscription:
    data = sub.to_input() if isinstance(sub, Subscription) else sub
    return validate(data, business_timezones=business_timezones)


def add(
    eng: sa.Engine,
    sub: Subscription | Mapping[str, Any],
    *,
    business_timezones: Mapping[int, str] | None = None,
) -> Subscription:
    """Store a new subscription (validated again); a second one with the same (business_id, name) is refused."""
    sub = _revalidate(sub, business_timezones)
    try:
        with eng.begin() as conn:
            if existing := _by_name(conn, sub.business_id, sub.name):
                raise _duplicate(sub, existing)
            return _insert(conn, sub)
    except sa.exc.IntegrityError:  # a concurrent add of the same name
        with eng.connect() as conn:
            existing = _by_name(conn, sub.business_id, sub.name)
        if existing:
            raise _duplicate(sub, existing) from None
        raise


def get(eng: sa.Engine, sub_id: int) -> Subscription | None:
    t = state.subscriptions
    with eng.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == sub_id)).first()
    return _sub_from_row(row) if row else None


def _require(conn: sa.Connection, sub_id: int) -> Subscription:
    t = state.subscriptions
    row = conn.execute(sa.select(t).where(t.c.id == sub_id)).first()
    if row is None:
        raise SubscriptionError("id", f"no subscription with id {sub_id}")
    return _sub_from_row(row)


def find(eng: sa.Engine, business_id: int | None = None, active: bool | None = None) -> list[Subscription]:
    """Subscriptions ordered by business and id, optionally of one business and/or only (in)active ones."""
    t = state.subscriptions
    query = sa.select(t).order_by(t.c.business_id, t.c.id)
    if business_id is not None:
        query = query.where(t.c.business_id == business_id)
    if active is not None:
        query = query.where(t.c.is_active == active)
    with eng.connect() as conn:
        return [_sub_from_row(r) for r in conn.execute(query)]


_SCHEDULE_FIELDS = {"daily": (), "weekly": ("day_of_week",), "monthly": ("day_of_month", "nth_weekday")}


def merge_changes(current: Subscription, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The input of `current` with `changes` applied, ready for `validate`.

    So that a change says only what changes: a new `frequency` drops the schedule fields of the
    old one that the change does not give; a new day_of_month drops nth_weekday and vice versa; `at`
    replaces hour and minute.
    """
    if not isinstance(changes, Mapping):
        raise SubscriptionError("changes", f"expected a mapping of fields, got {_show(changes)}")
    for key in ("id", "created_at", "updated_at"):
        if key in changes:
            raise SubscriptionError(key, "cannot be changed")
    data = current.to_input()
    if changes.get("at") is not None:
        data.pop("hour")
        data.pop("minute")
    if changes.get("frequency") is not None and str(changes["frequency"]).strip().lower() != current.frequency:
        for key in ("day_of_week", "day_of_month", "nth_weekday"):
            if key not in changes:
                data[key] = None
    if changes.get("day_of_month") is not None and "nth_weekday" not in changes:
        data["nth_weekday"] = None
    if changes.get("nth_weekday") is not None and "day_of_month" not in changes:
        data["day_of_month"] = None
    data.update(changes)
    return data


def update(
    eng: sa.Engine,
    sub_id: int,
    changes: Mapping[str, Any],
    *,
    business_timezones: Mapping[int, str] | None = None,
) -> Subscription:
    """Apply `changes` (see `merge_changes`), validate the result as a whole, store it.

    A subscription does not move to another business (its recipients would get another business's
    data): a different business_id is refused.
    """
    with eng.begin() as conn:
        current = _require(conn, sub_id)
        new = validate(merge_changes(current, changes), business_timezones=business_timezones)
        if new.business_id != current.business_id:
            raise SubscriptionError(
                "business_id", "a subscription cannot move to another business; add a new subscription instead"
            )
        if new.name != current.name and (other := _by_name(conn, new.business_id, new.name)):
            raise _duplicate(new, other)
        return _write(conn, sub_id, new, current.created_at)


def set_active(eng: sa.Engine, sub_id: int, active: bool) -> Subscription:
    """Pause (False) or resume (True) a subscription."""
    t = state.subscriptions
    with eng.begin() as conn:
        current = _require(conn, sub_id)
        now = _now()
        conn.execute(sa.update(t).where(t.c.id == sub_id).values(is_active=bool(active), updated_at=now))
    current.is_active = bool(active)
    current.updated_at = now
    return current


def remove(eng: sa.Engine, sub_id: int) -> Subscription:
    """Delete a subscription; returns what was removed. Its delivery ledger rows stay (history)."""
    t = state.subscriptions
    with eng.begin() as conn:
        current = _require(conn, sub_id)
        conn.execute(sa.delete(t).where(t.c.id == sub_id))
    return current


# --- notification settings ---------------------------------------------------------------------


def _settings_from_row(row: Any) -> NotificationSettings:
    m = row._mapping
    return NotificationSettings(
        business_id=int(m["business_id"]),
        notify_success=bool(m["notify_success"]),
        notify_failure=bool(m["notify_failure"]),
        default_recipients=list(m["default_recipients"] or []),
        failure_recipients=list(m["failure_recipients"] or []),
        from_name=m["from_name"],
        reply_to=m["reply_to"],
        updated_at=_aware(m["updated_at"]),
    )


def _get_settings(conn: sa.Connection, business_id: int) -> NotificationSettings | None:
    t = state.notification_settings
    row = conn.execute(sa.select(t).where(t.c.business_id == business_id)).first()
    return _settings_from_row(row) if row else None


def get_settings(eng: sa.Engine, business_id: int) -> NotificationSettings:
    """The business's notification settings, or the defaults when it has none stored."""
    with eng.connect() as conn:
        return _get_settings(conn, business_id) or NotificationSettings(business_id)


def _put_settings(conn: sa.Connection, settings: NotificationSettings) -> NotificationSettings:
    t = state.notification_settings
    now = _now()
    values = {k: v for k, v in settings.to_input().items() if k != "business_id"}
    if _get_settings(conn, settings.business_id) is None:
        conn.execute(sa.insert(t).values(business_id=settings.business_id, updated_at=now, **values))
    else:
        conn.execute(sa.update(t).where(t.c.business_id == settings.business_id).values(updated_at=now, **values))
    return NotificationSettings(business_id=settings.business_id, updated_at=now, **values)


def save_settings(
    eng: sa.Engine,
    settings: NotificationSettings | Mapping[str, Any],
    *,
    business_timezones: Mapping[int, str] | None = None,
) -> NotificationSettings:
    """Validate and store (insert or replace) a business's notification settings."""
    data = settings.to_input() if isinstance(settings, NotificationSettings) else settings
    clean = validate_settings(data, business_timezones=business_timezones)
    with eng.begin() as conn:
        return _put_settings(conn, clean)


# --- YAML --------------------------------------------------------------------------------------


def _read_document(path_or_text: str | Path) -> str:
    if isinstance(path_or_text, Path):
        try:
            return path_or_text.read_text(encoding="utf-8")
        except OSError as exc:
            raise SubscriptionError("file", f"cannot read {path_or_text}: {exc.strerror or exc}") from None
    text = str(path_or_text)
    if "\n" not in text and text.strip().lower().endswith((".yaml", ".yml")):
        return _read_document(Path(text.strip()))
    return text


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int) and key in seen:
                line = key_node.start_mark.line + 1
                raise SubscriptionError("yaml", f"{key!r} is given twice in the same mapping (line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _entry_label(kind: str, index: int, entry: Any) -> str:
    if kind == "subscriptions" and isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
        return f"{kind}[{index}] ({entry['name'].strip()!r})"
    if kind == "notification_settings" and isinstance(entry, Mapping) and entry.get("business_id") is not None:
        return f"{kind}[{index}] (business {entry['business_id']})"
    return f"{kind}[{index}]"


def parse_yaml(
    path_or_text: str | Path, *, business_timezones: Mapping[int, str] | None = None
) -> tuple[list[Subscription], list[NotificationSettings]]:
    """Read and validate a whole subscriptions document; nothing is stored."""
    try:
        doc = yaml.load(_read_document(path_or_text), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SubscriptionError("yaml", f"not valid YAML{where}: {problem}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise SubscriptionError("yaml", "the document must be a mapping with a 'subscriptions:' list")
    for key in doc:
        if key not in ("subscriptions", "notification_settings"):
            raise SubscriptionError(str(key), "unknown top-level key (expected subscriptions, notification_settings)")
    subs: list[Subscription] = []
    settings: list[NotificationSettings] = []
    for kind in ("subscriptions", "notification_settings"):
        entries = doc.get(kind) or []
        if not isinstance(entries, list):
            raise SubscriptionError(kind, "must be a list of mappings")
        seen: dict[Any, str] = {}
        for index, entry in enumerate(entries):
            label = _entry_label(kind, index, entry)
            try:
                if kind == "subscriptions":
                    item: Any = validate(entry, business_timezones=business_timezones)
                    key: Any = (item.business_id, item.name)
                    dup_field = "name"
                else:
                    item = validate_settings(entry, business_timezones=business_timezones)
                    key = item.business_id
                    dup_field = "business_id"
            except SubscriptionError as exc:
                raise SubscriptionError(exc.field, exc.message, entry=label) from None
            if key in seen:
                raise SubscriptionError(dup_field, f"the same entry is already given as {seen[key]}", entry=label)
            seen[key] = label
            (subs if kind == "subscriptions" else settings).append(item)
    return subs, settings


def import_yaml(
    eng: sa.Engine, path_or_text: str | Path, *, business_timezones: Mapping[int, str] | None = None
) -> list[Subscription]:
    """Upsert the subscriptions (by business_id and name) and notification settings of a YAML document.

    All or nothing: the whole document is validated first (an error names the entry and the field)
    and then written in one transaction. An entry is the whole definition: fields it leaves out
    take their defaults (so `is_active` is true unless the entry says otherwise).
    """
    subs, settings = parse_yaml(path_or_text, business_timezones=business_timezones)
    stored: list[Subscription] = []
    with eng.begin() as conn:
        for sub in subs:
            existing = _by_name(conn, sub.business_id, sub.name)
            if existing is None:
                stored.append(_insert(conn, sub))
            else:
                stored.append(_write(conn, existing.id, sub, existing.created_at))
        for item in settings:
            _put_settings(conn, item)
    return stored


def _yaml_entry(sub: Subscription) -> dict[str, Any]:
    data = sub.to_input()
    data["at"] = sub.at
    del data["hour"], data["minute"]
    if data["subject_template"] == DEFAULT_SUBJECT:
        del data["subject_template"]
    if data["message_template"] == DEFAULT_MESSAGE:
        del data["message_template"]
    if not data["filters"]:
        del data["filters"]
    if data["day_of_week"] is not None:
        data["day_of_week"] = WEEKDAYS[data["day_of_week"]]
    ordered = [k for k in INPUT_FIELDS if k in data]
    return {k: data[k] for k in ordered if data[k] is not None}


def export_yaml(eng: sa.Engine, business_id: int | None = None) -> str:
    """The stored subscriptions (and notification settings) as a document `import_yaml` reads back."""
    subs = find(eng, business_id=business_id)
    t = state.notification_settings
    query = sa.select(t).order_by(t.c.business_id)
    if business_id is not None:
        query = query.where(t.c.business_id == business_id)
    with eng.connect() as conn:
        settings = [_settings_from_row(r) for r in conn.execute(query)]
    doc: dict[str, Any] = {"subscriptions": [_yaml_entry(s) for s in subs]}
    if settings:
        doc["notification_settings"] = [{k: v for k, v in s.to_input().items() if v is not None} for s in settings]
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
