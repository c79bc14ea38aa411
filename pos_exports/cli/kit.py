"""What every `pos-exports` command shares: the settings check, clean errors and `--verbose`.

Imports only click and the standard library, so that `pos-exports --help` stays fast: the commands
import Dagster, SQLAlchemy, pyarrow and reportlab inside their functions.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
import traceback
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click

from pos_exports.core.clock import instant  # noqa: F401 (the CLI's reading of --since/--until)

if TYPE_CHECKING:
    import sqlalchemy as sa

Args = SimpleNamespace  # the parsed options of a command, as attributes (what the handlers read)


def verbose() -> bool:
    """True when the global `--verbose` was given (tracebacks of failures are then printed)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("verbose"))


def now() -> dt.datetime:
    """The global hidden `--now` (tests: a fixed instant), else the UTC clock: the CLI's one reading of time."""
    from pos_exports.core.clock import utc_now

    ctx = click.get_current_context(silent=True)
    return (ctx and ctx.find_root().params.get("now")) or utc_now()


def text_table(rows: list[list[str]]) -> list[str]:
    """Rows of cells as aligned text columns, the first row a header underlined with dashes."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def short(text: str | None, width: int) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis."""
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


class StateContext:
    """What a command handler shares: its options (`args`), the state database (created lazily), the
    command's `--now` (else the global one, else the clock) and its output."""

    def __init__(self, args: Args) -> None:
        self.args = args
        self.out = sys.stdout
        self._engine: sa.Engine | None = None

    @property
    def state_url(self) -> str:
        from pos_exports import state

        return getattr(self.args, "state_url", None) or state.state_url()

    @property
    def engine(self) -> sa.Engine:
        from pos_exports import state

        if self._engine is None:
            self._engine = state.engine(self.state_url)
        return self._engine

    @property
    def now(self) -> dt.datetime:
        return instant(getattr(self.args, "now", None)) or now()

    def print(self, text: str = "") -> None:
        print(text, file=self.out)


def error(text: str) -> None:
    """Print one `error: ...` line on stderr (the caller returns the exit code)."""
    print(f"error: {text}", file=sys.stderr)


def print_traceback(exc: BaseException) -> None:
    """With `--verbose`: the traceback of `exc`, scrubbed of secrets."""
    if verbose():
        from pos_exports.redact import scrub

        print(scrub("".join(traceback.format_exception(exc))), file=sys.stderr, end="")


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, scrubbed: an unexpected failure in one line."""
    from pos_exports.redact import scrub

    lines = scrub(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def checked(fn: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a command: check every setting first (exit 2), and turn an unexpected exception into
    one `error:` line (exit 1; `--verbose` adds the traceback) instead of a stack trace."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        from pos_exports import config

        try:  # every setting, before any command does anything
            config.settings()
        except config.SettingsError as exc:
            print(exc, file=sys.stderr)
            return 2
        try:
            return fn(*args, **kwargs) or 0
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            print_traceback(exc)
            error(f"{one_line(exc)}{'' if verbose() else ' (--verbose for the traceback)'}")
            return 1

    return wrapper


def args_of(params: dict[str, Any]) -> Args:
    """click's values as the handlers read them: a repeatable option given no value is None, else a list."""
    return Args(**{k: (list(v) or None) if isinstance(v, tuple) else v for k, v in params.items()})
