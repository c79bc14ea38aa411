"""The one clock. Only the edge (`pos_exports.defs`, the CLI, the service's routes) reads it; everything below takes
`now`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """Now, in UTC."""
    return dt.datetime.now(dt.UTC)
