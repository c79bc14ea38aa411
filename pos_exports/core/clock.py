"""The one clock. Only the edge (`pos_exports.defs`, the CLI, the service's routes) reads it; everything below takes
`now`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """Now, in UTC."""
    return dt.datetime.now(dt.UTC)


def instant(text: str | dt.datetime | None) -> dt.datetime | None:
    """An ISO date or date-time people give (`--since`, `?since=`), naive = UTC; ValueError saying what it accepts."""
    if text is None or isinstance(text, dt.datetime):
        return text
    try:
        value = dt.datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or ISO date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
