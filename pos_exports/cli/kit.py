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
from typing import Any

import click

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
