"""Subscriptions: which exports of which business go to whom, and when; validated, then stored.

A subscription is built from user input (CLI arguments or a YAML file) by `validate`, through the strict
pydantic model `SubscriptionInput` (notification settings: `SettingsInput`; filters: the models of
`core.filters`), which refuses anything that could mis-deliver a file (a second address smuggled into a
recipient, a header injected through a subject, a filter of a dataset that is not exported) with a
`SubscriptionError` naming the field, in one line saying what it accepts. The store functions keep
subscriptions and per-business notification settings in the state database (`pos_exports.state`),
SQLite or PostgreSQL.

Filters are one flat mapping, e.g. `{"customer_type": "wholesale", "stock_status": "low_stock"}`;
the filter names (docs/reports.md) do not collide across datasets, and `filters_for(sub, dataset)` gives the
filters of one dataset. In YAML they may also be grouped by dataset (`customers: {...}`).
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache, partial
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import sqlalchemy as sa
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pos_exports import state
from pos_exports.core.addresses import has_control
from pos_exports.core.catalog import DATASETS, FORMATS, FREQUENCIES, PLACEHOLDERS
from pos_exports.core.fields import (
    Address,
    Addresses,
    Choice,
    Choices,
    Flag,
    Line,
    Whole,
    address,
    choice,
    problems,
    show,
    whole_number,
)
from pos_exports.core.filters import FILTER_DATASET, FILTER_MODELS, FilterError, parse_filters
from pos_exports.core.words import ORDINALS, WEEKDAYS

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
# Input models (pydantic, strict, unknown fields refused). Each field type takes the forms people write and
# refuses anything else with one line saying what it accepts (`pos_exports.core.fields`); `validate` and
# `validate_settings` turn the first problem into a SubscriptionError naming the field.


def weekday(value: Any) -> int:
    """0-6 (0 = Monday) or a weekday name: `monday`, `mon`, `tues`, ..."""
    bad = ValueError(f"{show(value)} is not a weekday (monday..sunday, or 0-6 with 0 = Monday)")
    if isinstance(value, str) and not value.strip().isdigit():
        text = value.strip().lower()
        matches = [i for i, day in enumerate(WEEKDAYS) if len(text) >= 3 and day.startswith(text)]
        if len(matches) == 1:
            return matches[0]
        raise bad
    try:
        return whole_number(value, low=0, high=6)
    except ValueError:
        raise bad from None


def day_of_month(value: Any) -> str:
    """`"1"`..`"28"` or `"last"` (a day every month has)."""
    if isinstance(value, str) and value.strip().lower() == "last":
        return "last"
    try:
        day = whole_number(value)
    except ValueError:
        raise ValueError(f"{show(value)} is not a day (1-28 or 'last')") from None
    if not 1 <= day <= 28:
        raise ValueError(f"{day} is not allowed: use 1-28 or 'last' (not every month has day {day})")
    return str(day)


def nth_weekday(value: Any) -> str:
    """`"2nd tuesday"`, `"last friday"` (also `second tue`): an ordinal of `core.words.ORDINALS` and a weekday."""
    usage = "use 1st, 2nd, 3rd, 4th or last followed by a weekday, e.g. '2nd tuesday' or 'last friday'"
    match = re.fullmatch(r"\s*(\w+)\s+(\w+)\s*", value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{show(value)} is not valid: {usage}")
    ordinal = _ORDINAL_ALIASES.get(match.group(1).lower(), match.group(1).lower())
    if ordinal not in ORDINALS:
        raise ValueError(f"{show(value)} is not valid: {usage} (a 5th weekday does not occur every month)")
    try:
        day = weekday(match.group(2))
    except ValueError:
        raise ValueError(f"{show(value)} is not valid: {usage}") from None
    return f"{ordinal} {WEEKDAYS[day]}"


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    unusable = {"localtime", "Factory", "posixrules"}  # the host's own zone, placeholders
    return frozenset(n for n in available_timezones() if n not in unusable and not n.startswith(("posix/", "right/")))


def time_zone(value: Any) -> str:
    """An IANA time zone name (`Africa/Accra`)."""
    name = value.strip() if isinstance(value, str) else ""
    known = name in _zone_names()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        known = False
    if not known:
        raise ValueError(f"{show(value)} is not an IANA time zone (e.g. 'Africa/Accra')")
    return name


def time_of_day(value: Any) -> tuple[int, int]:
    """`"HH:MM"` (00:00-23:59) as (hour, minute)."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("write the time as a quoted string such as '07:00' (YAML reads 7:00 as a number)")
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value) if isinstance(value, str) else None
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"{show(value)} is not a time of day HH:MM (00:00-23:59)")
    return int(match.group(1)), int(match.group(2))


def placeholders_in(template: str) -> list[str]:
    """The placeholder names of a template (as `str.format` reads it)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def template(value: Any, *, single_line: bool, max_len: int) -> str:
    """A subject (one line: it becomes a header) or message whose `{placeholders}` are all of `PLACEHOLDERS`."""
    if not isinstance(value, str):
        raise ValueError(f"{show(value)} is not text")
    if single_line and ("\r" in value or "\n" in value):
        raise ValueError("must not contain a line break (CR or LF): it becomes an email header")
    if has_control(value, allowed="" if single_line else "\r\n\t"):
        raise ValueError("must not contain control characters")
    if not value.strip():
        raise ValueError("must not be empty (leave it out for the default text)")
    if len(value) > max_len:
        raise ValueError(f"is {len(value)} characters long (at most {max_len})")
    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError:
        raise ValueError("has an unmatched '{' or '}' (write {{ or }} for a literal brace)") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            shown = "{" + name + "}" if name else "{}"
            raise ValueError(f"unknown placeholder {shown} (known: {known})")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format or conversion")
    return value.strip() if single_line else value


def _some(addresses: list[str]) -> list[str]:
    if not addresses:
        raise ValueError("give at least one email address")
    return addresses


def _plain_name(name: str) -> str:
    if any(ch in name for ch in '<>@",;'):
        raise ValueError(f"{show(name)} must be a plain name (no <, >, @, quotes, commas)")
    return name


Weekday = Annotated[int, BeforeValidator(weekday)]
DayOfMonth = Annotated[str, BeforeValidator(day_of_month)]
NthWeekday = Annotated[str, BeforeValidator(nth_weekday)]
TimeZone = Annotated[str, BeforeValidator(time_zone)]
TimeOfDay = Annotated[tuple[int, int], BeforeValidator(time_of_day)]
Subject = Annotated[str, BeforeValidator(partial(template, single_line=True, max_len=MAX_SUBJECT))]
Message = Annotated[str, BeforeValidator(partial(template, single_line=False, max_len=MAX_MESSAGE))]
Recipients = Annotated[Addresses(MAX_RECIPIENTS), AfterValidator(_some)]
FromName = Annotated[Line(100), AfterValidator(_plain_name)]


class _Input(BaseModel):
    """Strict, unknown fields refused; a known field given as None counts as absent (its default applies)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _absent(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if not (v is None and k in cls.model_fields)}
        return data

    @field_validator("business_id", check_fields=False)
    @classmethod
    def _known_business(cls, business_id: int, info: ValidationInfo) -> int:
        zones = (info.context or {}).get("business_timezones")
        if zones is not None and business_id not in zones:
            raise ValueError(f"no business with id {business_id}")
        return business_id


class SubscriptionInput(_Input):
    """A subscription as people give it (CLI options, a YAML entry); `validate` makes it a Subscription."""

    business_id: Whole(low=1)
    name: Line(MAX_NAME)
    datasets: Choices(DATASETS)
    formats: Choices(FORMATS)
    frequency: Choice(FREQUENCIES)
    at: TimeOfDay | None = None  # "HH:MM", or hour and minute
    hour: Whole(0, 23) | None = None
    minute: Whole(0, 59) | None = None
    day_of_week: Weekday | None = None  # weekly
    day_of_month: DayOfMonth | None = None  # monthly, or nth_weekday
    nth_weekday: NthWeekday | None = None
    timezone: TimeZone | None = None  # None: the business's own zone
    recipients: Recipients
    subject_template: Subject = DEFAULT_SUBJECT
    message_template: Message = DEFAULT_MESSAGE
    filters: dict[str, Any] = {}
    only_if_data: Flag = False
    is_active: Flag = True

    @field_validator("filters", mode="before")
    @classmethod
    def _filters(cls, value: Any, info: ValidationInfo) -> dict[str, Any]:
        datasets = info.data.get("datasets")
        return {} if datasets is None else subscription_filters(value, datasets)  # else: the datasets' error


class SettingsInput(_Input):
    """A business's notification settings as people give them; absent fields take the defaults."""

    business_id: Whole(low=1)
    notify_success: Flag = False
    notify_failure: Flag = True
    default_recipients: Addresses(MAX_RECIPIENTS) = []
    failure_recipients: Addresses(MAX_RECIPIENTS) = []
    from_name: FromName = DEFAULT_FROM_NAME
    reply_to: Address | None = None

    @field_validator("reply_to", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


INPUT_FIELDS = tuple(SubscriptionInput.model_fields)
SETTINGS_FIELDS = tuple(SettingsInput.model_fields)
# What a required field says when it is missing (else "required").
_REQUIRED = {
    "datasets": f"give at least one of {', '.join(DATASETS)}",
    "formats": f"give at least one of {', '.join(FORMATS)}",
    "frequency": f"required: one of {', '.join(FREQUENCIES)}",
    "recipients": "give at least one email address",
}


def check_address(fld: str, value: Any) -> str:
    """One plain address (`owner@shop.example`), or a SubscriptionError naming `fld` and saying why not
    (the rule: `pos_exports.core.addresses`)."""
    try:
        return address(value)
    except ValueError as exc:
        raise SubscriptionError(fld, str(exc)) from None


# --- filters -----------------------------------------------------------------------------------


def subscription_filters(value: Any, datasets: list[str]) -> dict[str, Any]:
    """A subscription's filters: one flat mapping (or grouped by dataset), each of a dataset it exports, each
    value checked by its dataset's model (`core.filters`) and stored as JSON (an amount as text, `"100.50"`)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{show(value)} is not a mapping of filter: value")
    flat: list[tuple[Any, Any, str | None]] = []  # (filter, value, dataset it was grouped under)
    for key, item in value.items():
        if key in FILTER_MODELS and isinstance(item, Mapping):
            flat.extend((k, v, key) for k, v in item.items())
        else:
            flat.append((key, item, None))
    given: dict[str, dict[str, Any]] = {}
    for key, item, group in flat:
        dataset = FILTER_DATASET.get(key) if isinstance(key, str) else None
        if dataset is None or (group is not None and group != dataset):
            known = "; ".join(f"{ds}: {', '.join(m.model_fields)}" for ds, m in FILTER_MODELS.items() if m.model_fields)
            where = f"of the {group} dataset " if group else ""
            raise ValueError(f"unknown filter {show(key)} {where}(known: {known})")
        if dataset not in datasets:
            raise ValueError(
                f"{key!r} filters the {dataset} dataset, which this subscription does not export "
                f"(datasets: {', '.join(datasets)})"
            )
        if key in given.get(dataset, {}):
            raise ValueError(f"{key!r} is given twice")
        if item is None:
            raise ValueError(f"{key}: give a value")
        given.setdefault(dataset, {})[key] = item
    clean: dict[str, Any] = {}
    for dataset, values in given.items():
        try:
            clean.update(parse_filters(dataset, values))
        except FilterError as exc:
            raise ValueError(str(exc)) from None
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in sorted(clean.items())}


def filters_for(sub: Subscription, dataset: str) -> dict[str, Any]:
    """The subscription's filters of one dataset."""
    return {k: v for k, v in sub.filters.items() if FILTER_DATASET.get(k) == dataset}


# --- validate ----------------------------------------------------------------------------------


def _schedule_problems(data: Mapping[str, Any]) -> list[SubscriptionError]:
    """What the fields say together (given or not; their values are the models' business): the time as `at` or
    hour, and the schedule fields of the frequency."""
    given = {k for k, v in data.items() if v is not None}
    problems = []
    if "at" in given and given & {"hour", "minute"}:
        problems.append(SubscriptionError("at", "give either at ('HH:MM') or hour and minute, not both"))
    if not given & {"at", "hour"}:
        problems.append(SubscriptionError("hour", "required: the local hour 0-23 at which to send (or at: 'HH:MM')"))
    try:
        frequency = choice(data.get("frequency"), FREQUENCIES)
    except ValueError:
        return problems  # the frequency's own error
    schedule = {"weekly": {"day_of_week"}, "monthly": {"day_of_month", "nth_weekday"}}.get(frequency, set())
    for name in sorted({"day_of_week", "day_of_month", "nth_weekday"} & given - schedule, key=INPUT_FIELDS.index):
        problems.append(SubscriptionError(name, f"does not apply to a {frequency} subscription"))
    if frequency == "weekly" and "day_of_week" not in given:
        problems.append(SubscriptionError("day_of_week", "required for a weekly subscription (monday..sunday)"))
    if frequency == "monthly" and {"day_of_month", "nth_weekday"} <= given:
        problems.append(SubscriptionError("day_of_month", "give either day_of_month or nth_weekday, not both"))
    if frequency == "monthly" and not given & {"day_of_month", "nth_weekday"}:
        problems.append(
            SubscriptionError(
                "day_of_month",
                "a monthly subscription needs day_of_month (1-28 or 'last') or nth_weekday (e.g. '2nd tuesday')",
            )
        )
    return problems


def _field_problems(exc: ValidationError, fields: tuple[str, ...]) -> list[SubscriptionError]:
    """pydantic's errors as SubscriptionErrors naming the field, with the field type's own message."""
    out = []
    for name, kind, message in problems(exc):
        if kind == "extra_forbidden":
            message = f"unknown field (known fields: {', '.join(fields)})"
        elif kind == "missing":
            message = _REQUIRED.get(name, "required")
        out.append(SubscriptionError(name or "subscription", message))
    return out


def _first(problems: list[SubscriptionError], fields: tuple[str, ...]) -> SubscriptionError:
    """The problem to report: an unknown field first (a misspelt name), then in the order of the fields."""
    return min(problems, key=lambda p: fields.index(p.field) if p.field in fields else -1)


def _check(model: type[_Input], data: Any, what: str, business_timezones: Mapping[int, str] | None, extra=()):
    if not isinstance(data, Mapping):
        raise SubscriptionError(what, f"expected a mapping of fields, got {show(data)}")
    problems = list(extra)
    try:
        parsed = model.model_validate(dict(data), context={"business_timezones": business_timezones})
    except ValidationError as exc:
        problems += _field_problems(exc, tuple(model.model_fields))
    if problems:
        raise _first(problems, tuple(model.model_fields))
    return parsed


def validate(data: Mapping[str, Any], *, business_timezones: Mapping[int, str] | None = None) -> Subscription:
    """A Subscription from user input, or a SubscriptionError naming the first invalid field.

    `business_timezones` (id -> IANA zone), when given, makes an unknown business an error.
    A key whose value is None counts as absent (the default applies).
    """
    extra = _schedule_problems(data) if isinstance(data, Mapping) else []
    parsed = _check(SubscriptionInput, data, "subscription", business_timezones, extra)
    hour, minute = parsed.at or (parsed.hour, parsed.minute or 0)
    values = parsed.model_dump(exclude={"at", "hour", "minute"})
    return Subscription(**values, hour=hour, minute=minute)


def validate_settings(
    data: Mapping[str, Any], *, business_timezones: Mapping[int, str] | None = None
) -> NotificationSettings:
    """NotificationSettings from user input (absent keys take the defaults), or a SubscriptionError."""
    parsed = _check(SettingsInput, data, "notification_settings", business_timezones)
    return NotificationSettings(**parsed.model_dump())


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


def _by_name(conn: sa.Connection, business_id: int, name: str) -> Subscription | None:
    t = state.subscriptions
    row = conn.execute(sa.select(t).where(t.c.business_id == business_id, t.c.name == name)).first()
    return _sub_from_row(row) if row else None


def _duplicate(sub: Subscription, other: Subscription) -> SubscriptionError:
    return SubscriptionError(
        "name", f"business {sub.business_id} already has a subscription named {sub.name!r} (id {other.id})"
    )


def _insert(conn: sa.Connection, sub: Subscription, now: dt.datetime) -> Subscription:
    t = state.subscriptions
    values = {**_sub_values(sub), "created_at": now, "updated_at": now}
    new_id = conn.execute(sa.insert(t).values(**values)).inserted_primary_key[0]
    return Subscription(**_sub_values(sub), id=new_id, created_at=now, updated_at=now)


def _write(
    conn: sa.Connection, sub_id: int, sub: Subscription, created_at: dt.datetime | None, now: dt.datetime
) -> Subscription:
    t = state.subscriptions
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
    now: dt.datetime,
) -> Subscription:
    """Store a new subscription (validated again); a second one with the same (business_id, name) is refused.
    `now`: its creation time (the caller's clock)."""
    sub = _revalidate(sub, business_timezones)
    try:
        with eng.begin() as conn:
            if existing := _by_name(conn, sub.business_id, sub.name):
                raise _duplicate(sub, existing)
            return _insert(conn, sub, now)
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
        raise SubscriptionError("changes", f"expected a mapping of fields, got {show(changes)}")
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
    now: dt.datetime,
) -> Subscription:
    """Apply `changes` (see `merge_changes`), validate the result as a whole, store it (updated at `now`).

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
        return _write(conn, sub_id, new, current.created_at, now)


def set_active(eng: sa.Engine, sub_id: int, active: bool, *, now: dt.datetime) -> Subscription:
    """Pause (False) or resume (True) a subscription."""
    t = state.subscriptions
    with eng.begin() as conn:
        current = _require(conn, sub_id)
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


def _put_settings(conn: sa.Connection, settings: NotificationSettings, now: dt.datetime) -> NotificationSettings:
    t = state.notification_settings
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
    now: dt.datetime,
) -> NotificationSettings:
    """Validate and store (insert or replace) a business's notification settings (updated at `now`)."""
    data = settings.to_input() if isinstance(settings, NotificationSettings) else settings
    clean = validate_settings(data, business_timezones=business_timezones)
    with eng.begin() as conn:
        return _put_settings(conn, clean, now)


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
    eng: sa.Engine,
    path_or_text: str | Path,
    *,
    business_timezones: Mapping[int, str] | None = None,
    now: dt.datetime,
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
                stored.append(_insert(conn, sub, now))
            else:
                stored.append(_write(conn, existing.id, sub, existing.created_at, now))
        for item in settings:
            _put_settings(conn, item, now)
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
