"""Field types of the input models (subscriptions, notification settings, filters): what people type becomes a
typed value, or is refused with one line saying what the field accepts.

Each type is a pydantic `Annotated` type whose `BeforeValidator` takes the forms people write (`"7"` for 7, `yes`
for true, ` Wholesale ` for `wholesale`) and raises a `ValueError` with the message; the models are strict, so
nothing else is coerced. `problems` gives those lines back from a pydantic error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ValidationError

from pos_exports.core.addresses import address_problem, has_control
from pos_exports.core.clock import instant
from pos_exports.core.words import truth

_WHOLE = re.compile(r"\s*[+-]?\d{1,18}\s*")


def show(value: Any) -> str:
    """A value as the messages quote it (its repr, cut at 80 characters)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def whole_number(value: Any, low: int | None = None, high: int | None = None) -> int:
    """An int, or the text of one (`" 7 "`); never a bool."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _WHOLE.fullmatch(value))):
        raise ValueError(f"{show(value)} is not a whole number")
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        if high is None:
            raise ValueError(f"{number} is out of range (must be at least {low})")
        raise ValueError(f"{number} is out of range ({low}-{high})")
    return number


def flag(value: Any) -> bool:
    """A bool, 0 / 1, or a word of `core.words` (true/yes/y/on/1, false/no/n/off/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and (found := truth(value)) is not None:
        return found
    raise ValueError(f"{show(value)} is not true or false")


def line(value: Any, max_len: int) -> str:
    """A non-empty single line of text (no CR, LF or other control characters), stripped."""
    if not isinstance(value, str):
        raise ValueError(f"{show(value)} is not text")
    if "\r" in value or "\n" in value:
        raise ValueError(f"{show(value)} must not contain a line break (CR or LF)")
    if has_control(value):
        raise ValueError(f"{show(value)} must not contain control characters")
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > max_len:
        raise ValueError(f"is {len(text)} characters long (at most {max_len})")
    return text


def choice(value: Any, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (any case, surrounding spaces ignored)."""
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise ValueError(f"{show(value)} is not one of {', '.join(allowed)}")
    return value.strip().lower()


def choices(value: Any, allowed: tuple[str, ...]) -> list[str]:
    """A non-empty list drawn from `allowed` (a single string is a list of one), duplicates dropped, order kept."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"give at least one of {', '.join(allowed)}")
    return list(dict.fromkeys(choice(item, allowed) for item in items))


def amount(value: Any) -> Decimal:
    """An amount of money of at least 0 with at most 2 decimals (`100`, `"250.5"`), as a Decimal of 2 places."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{show(value)} is not an amount")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{show(value)} is not an amount") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{show(value)} must be an amount of at least 0")
    if number != number.quantize(Decimal("0.01")):
        raise ValueError(f"{show(value)} has more than 2 decimal places")
    return number.quantize(Decimal("0.01"))


def address(value: Any) -> str:
    """Exactly one plain email address (the rule: `core.addresses`), stripped."""
    if not isinstance(value, str):
        raise ValueError(f"{show(value)} is not an email address")
    text = value.strip()
    problem = address_problem(text)
    if problem is not None:
        raise ValueError(f"{show(value)} is not a valid email address" + (f": {problem}" if problem else ""))
    return text


def addresses(value: Any, most: int) -> list[str]:
    """A list of addresses (a single string is a list of one; None is none), duplicates dropped ignoring case."""
    items = [] if value is None else [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"{show(value)} is not a list of email addresses")
    clean: dict[str, str] = {}
    for item in items:
        text = address(item)
        clean.setdefault(text.lower(), text)
    if len(clean) > most:
        raise ValueError(f"{len(clean)} addresses; at most {most}")
    return list(clean.values())


def _before(function: Callable[..., Any], **bound: Any) -> BeforeValidator:
    return BeforeValidator(partial(function, **bound) if bound else function)


def Whole(low: int | None = None, high: int | None = None) -> Any:  # noqa: N802 - a type factory
    """A whole number, within [low, high] when given."""
    return Annotated[int, _before(whole_number, low=low, high=high)]


def Line(max_len: int) -> Any:  # noqa: N802
    """One line of text of at most `max_len` characters."""
    return Annotated[str, _before(line, max_len=max_len)]


def Choice(allowed: tuple[str, ...]) -> Any:  # noqa: N802
    """One word of `allowed`, typed as the `Literal` of them (so schemas and the Launchpad list them)."""
    return Annotated[Literal[allowed], _before(choice, allowed=allowed)]  # type: ignore[valid-type]


def Choices(allowed: tuple[str, ...]) -> Any:  # noqa: N802
    """A non-empty list of words of `allowed`."""
    return Annotated[list[Literal[allowed]], _before(choices, allowed=allowed)]  # type: ignore[valid-type]


def Addresses(most: int) -> Any:  # noqa: N802
    """Up to `most` plain email addresses."""
    return Annotated[list[str], _before(addresses, most=most)]


Flag = Annotated[bool, _before(flag)]
Amount = Annotated[Decimal, _before(amount)]
Address = Annotated[str, _before(address)]
Instant = Annotated[dt.datetime, _before(instant)]  # an ISO date or date-time, naive = UTC


def problems(error: ValidationError) -> list[tuple[str, str, str]]:
    """Each problem of a pydantic error as (field, pydantic's error type, one-line message): the message of the
    field type that refused the value, else pydantic's own ("unknown field" for an extra one, "required")."""
    out = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, Exception):
            message = str(cause)
        else:
            message = {"extra_forbidden": "unknown field", "missing": "required"}.get(item["type"], item["msg"])
        out.append((name, item["type"], message))
    return out
