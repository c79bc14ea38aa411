"""`history`, `stats`, `upcoming`, `overdue`: the delivery ledger and its figures, for the `pos-exports` CLI.

    pos-exports history [--business-id 2] [--subscription-id 5] [--status failed] [--since 2025-03-01] [--until ...]
    pos-exports history --download 42 --to ./delivery-42     (the files that delivery emailed, from storage)
    pos-exports stats [--since 2025-03-01] [--until ...] [--business-id 2]
    pos-exports upcoming [--business-id 2] [--limit 20]
    pos-exports overdue [--business-id 2] [--lookback-days 7]

Wiring: `COMMANDS` maps each name to its click command (`pos_exports.cli` adds them to `pos-exports`);
a command returns the exit code: 0, or 2 after printing `error: <message>` to stderr (no traceback).
SQLAlchemy, the ledger and the storage are imported inside the handlers (a fast `--help`).

The state database is `--state-url` or `POS_EXPORTS_STATE_URL`; the storage `--storage` or
`POS_EXPORTS_STORAGE` (exports, archive, and the business time zones of `archive/businesses.json`).
`--since` / `--until` take `YYYY-MM-DD` (00:00 UTC) or an ISO date-time (naive = UTC); `until` is exclusive.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pos_exports.cli.kit import Args, args_of, checked
from pos_exports.core.clock import utc_now

if TYPE_CHECKING:
    import sqlalchemy as sa

    from pos_exports.storage import Storage

UTC = dt.UTC


class CliError(Exception):
    """A clean error for the user: printed as `error: <message>`, exit code 2."""


# --- helpers -------------------------------------------------------------------------------------------


def _instant(name: str, text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"{name}: {text!r} is not a date (YYYY-MM-DD) or ISO date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise CliError(f"{name}: {value} must be 1 or more")
    return value


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _short(text: str | None, width: int = 50) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _utc_text(instant: dt.datetime | None) -> str:
    return "-" if instant is None else f"{instant.astimezone(UTC):%Y-%m-%d %H:%M}"


def _local_text(instant: dt.datetime | None) -> str:
    return "-" if instant is None else f"{instant:%Y-%m-%d %H:%M} {instant.tzname()}"


def _rate(value: float | None) -> str:
    from pos_exports.core.figures import percent_text

    return "n/a" if value is None else percent_text(value)  # `15.47%`, as the files and emails write it


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


class Context:
    def __init__(self, args: Args) -> None:
        self.args = args
        self.out = sys.stdout
        self._engine: sa.Engine | None = None
        self._storage: Storage | None = None

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
    def storage(self) -> Storage:
        from pos_exports import config
        from pos_exports.storage import open_storage

        if self._storage is None:
            self._storage = open_storage(getattr(self.args, "storage", None) or config.storage_root())
        return self._storage

    @property
    def now(self) -> dt.datetime:
        return _instant("now", getattr(self.args, "now", None)) or utc_now()

    def zones(self) -> dict[int, str]:
        from pos_exports.operations.stats import business_zones

        return business_zones(self.storage)

    def print(self, text: str = "") -> None:
        print(text, file=self.out)


# --- history ---------------------------------------------------------------------------------------------


def _history(args: Args, ctx: Context) -> int:
    from pos_exports.delivery import ledger
    from pos_exports.delivery.email import human_size

    if args.download is not None:
        if not args.to:
            raise CliError("--download needs --to DIR (where to copy the files)")
        return _download(ctx, args.download, Path(args.to))
    if args.to:
        raise CliError("--to is only for --download ID")
    try:
        rows = ledger.history(
            ctx.engine,
            business_id=args.business_id,
            subscription_id=args.subscription_id,
            status=args.status,
            since=_instant("since", args.since),
            until=_instant("until", args.until),
        )
    except ValueError as exc:
        raise CliError(f"status: {exc}") from None
    total = len(rows)
    if args.limit:
        rows = rows[: _positive("limit", args.limit)]
    if not rows:
        ctx.print("no deliveries match")
        return 0
    from pos_exports.operations.stats import duration_seconds

    table = [
        ["ID", "CREATED UTC", "BUSINESS", "SUB", "PERIOD", "RECIPIENT", "STATUS", "TRIES", "FILES", "SIZE", "TOOK"]
    ]
    for r in rows:
        files = r.get("files") or []
        table.append(
            [
                str(r["id"]),
                _utc_text(r["created_at"]),
                str(r["business_id"]),
                str(r["subscription_id"]),
                f"{r['period_kind']} {r['period_key']}",
                r["recipient"],
                r["status"],
                str(r["attempts"]),
                str(len(files)),
                human_size(r["bytes"]) if r.get("bytes") is not None else "-",
                _seconds(duration_seconds(r)),
            ]
        )
    for line in _table(table):
        ctx.print(line)
    errors = [r for r in rows if r.get("error")]
    if errors:
        ctx.print()
        for r in errors:
            ctx.print(f"  {r['id']}: {_short(r['error'], 110)}")
    ctx.print()
    ctx.print(f"{len(rows)} of {total} delivery row(s)" if len(rows) < total else f"{total} delivery row(s)")
    return 0


def _download(ctx: Context, delivery_id: int, target: Path) -> int:
    import sqlalchemy as sa

    from pos_exports import state
    from pos_exports.delivery.files import storage_key

    with ctx.engine.connect() as conn:
        row = conn.execute(sa.select(state.deliveries).where(state.deliveries.c.id == delivery_id)).mappings().first()
    if row is None:
        raise CliError(f"download: no delivery with id {delivery_id}")
    files = list(row["files"] or [])
    if not files:
        reason = f" ({_short(row['error'], 100)})" if row["error"] else ""
        raise CliError(f"download: delivery {delivery_id} has no stored files (status {row['status']}{reason})")
    storage = ctx.storage
    target.mkdir(parents=True, exist_ok=True)
    copied, problems = [], []
    for f in files:
        name = Path(f["name"]).name  # never a path of the ledger's choosing
        key = storage_key(storage, f.get("uri") or "")
        if key is None:
            problems.append(f"{name}: {f.get('uri')} is not in the storage {storage.root} (set --storage)")
            continue
        if not storage.exists(key):
            problems.append(f"{name}: no longer in storage ({f.get('uri')})")
            continue
        destination = target / name
        with storage.local_copy(key) as path:
            shutil.copyfile(path, destination)
        digest = hashlib.sha256(destination.read_bytes()).hexdigest()
        if f.get("sha256") and digest != f["sha256"]:
            print(f"warning: {name} has changed in storage since it was emailed (SHA-256 differs)", file=sys.stderr)
        copied.append(destination)
    for path in copied:
        ctx.print(str(path.resolve()))
    if problems:
        raise CliError("download: " + "; ".join(problems))
    return 0


# --- stats -------------------------------------------------------------------------------------------------


def format_stats(stats: dict[str, Any]) -> list[str]:
    from pos_exports.delivery.email import human_size

    since, until = stats["since"] or "the start", stats["until"] or "now"
    scope = "all businesses" if stats["business_id"] is None else f"business {stats['business_id']}"
    lines = [
        f"Deliveries of {scope}, created from {since} to {until}",
        f"  attempted     {stats['attempted']} (recipient rows of {stats['deliveries']} deliveries)",
        f"  emailed       {stats['emailed']}",
        f"  failed        {stats['failed']}"
        + (f" ({stats['failed_transient']} transient: retried automatically)" if stats["failed_transient"] else ""),
        f"  skipped       {stats['skipped']} (no data, only_if_data)",
        f"  unknown       {stats['unknown']} (maybe delivered: see `pos-exports resend`)",
        f"  not sent yet  {stats['pending']}",
        f"  retried       {stats['retried']}",
        f"  success rate  {_rate(stats['success_rate'])}",
        f"  recipients    {stats['recipients']}",
        f"  emailed size  {human_size(stats['bytes'])} ({stats['bytes']} bytes, {stats['files']} files)",
        f"  duration      median {_seconds(stats['median_seconds'])}, p95 {_seconds(stats['p95_seconds'])}",
    ]
    for title, group in (("dataset", "by_dataset"), ("format", "by_format")):
        if not stats[group]:
            continue
        table = [
            [title.upper(), "ATTEMPTED", "EMAILED", "FAILED", "RETRIED", "SUCCESS", "FILES", "BYTES", "MEDIAN", "P95"]
        ]
        for name, c in stats[group].items():
            table.append(
                [
                    name,
                    str(c["attempted"]),
                    str(c["emailed"]),
                    str(c["failed"]),
                    str(c["retried"]),
                    _rate(c["success_rate"]),
                    str(c["files"]),
                    str(c["bytes"]),
                    _seconds(c["median_seconds"]),
                    _seconds(c["p95_seconds"]),
                ]
            )
        lines += ["", *_table(table)]
    exports = stats.get("exports")
    if exports is not None:
        lines += ["", f"Exports produced (periods ending from {since} to {until})"]
        table = [["KIND", "PERIODS", "FILES", "BYTES"]]
        table += [[k, str(v["periods"]), str(v["files"]), str(v["bytes"])] for k, v in exports["by_kind"].items()]
        table.append(["all", str(exports["periods"]), str(exports["files"]), str(exports["bytes"])])
        lines += _table(table)
        for title, group in (("DATASET", "by_dataset"), ("FORMAT", "by_format")):
            if exports[group]:
                table = [[title, "FILES", "BYTES"]]
                table += [[k, str(v["files"]), str(v["bytes"])] for k, v in exports[group].items()]
                lines += ["", *_table(table)]
    return lines


def _stats(args: Args, ctx: Context) -> int:
    from pos_exports.operations.stats import delivery_stats

    stats = delivery_stats(
        ctx.engine,
        since=_instant("since", args.since),
        until=_instant("until", args.until),
        business_id=args.business_id,
        storage=ctx.storage,
    )
    for line in format_stats(stats):
        ctx.print(line)
    return 0


# --- upcoming / overdue -----------------------------------------------------------------------------------


def _upcoming(args: Args, ctx: Context) -> int:
    from pos_exports.operations.stats import upcoming

    entries = upcoming(ctx.engine, ctx.zones(), ctx.now, _positive("limit", args.limit), business_id=args.business_id)
    if not entries:
        ctx.print("no active subscriptions")
        return 0
    table = [["NEXT FIRE UTC", "LOCAL", "SUB", "BUSINESS", "NAME", "WHEN", "DELIVERS", "TO"]]
    for e in entries:
        table.append(
            [
                _utc_text(e["fire_utc"]),
                _local_text(e["fire_local"]) if e["error"] is None else f"? {_short(e['error'], 40)}",
                str(e["subscription_id"]),
                str(e["business_id"]),
                _short(e["name"], 30),
                e["when"],
                f"{e['period_kind']} {e['period_key']}" if e["period_key"] else "-",
                str(len(e["recipients"])),
            ]
        )
    for line in _table(table):
        ctx.print(line)
    return 0


def _overdue(args: Args, ctx: Context) -> int:
    from pos_exports.operations.stats import overdue

    lookback = _positive("lookback_days", args.lookback_days)
    entries = overdue(ctx.engine, ctx.storage, ctx.zones(), ctx.now, lookback, business_id=args.business_id)
    if not entries:
        ctx.print(f"nothing overdue (fires of the last {lookback} day(s) are all delivered)")
        return 0
    table = [["FIRED UTC", "SUB", "BUSINESS", "NAME", "PERIOD", "REASON"]]
    for e in entries:
        table.append(
            [
                _utc_text(e["fire_utc"]),
                str(e["subscription_id"]),
                str(e["business_id"]),
                _short(e["name"], 30),
                f"{e['period_kind']} {e['period_key']}" if e["period_key"] else "-",
                e["reason"].replace("_", " "),
            ]
        )
    for line in _table(table):
        ctx.print(line)
    ctx.print()
    for e in entries:
        ctx.print(f"  {e['subscription_id']} {e['period_key'] or ''}: {_short(e['detail'], 150)}")
    ctx.print()
    ctx.print(f"{len(entries)} overdue")
    return 0


# --- wiring -------------------------------------------------------------------------------------------------


def _command(
    name: str, help: str, params: list[click.Parameter], handler: Callable[[Args, Context], int]
) -> click.Command:
    """One top-level command: its own options plus --state-url, --storage (and a hidden --now for tests)."""
    common = [
        click.Option(["--state-url"], help="state database URL (default: POS_EXPORTS_STATE_URL or SQLite)"),
        click.Option(["--storage"], help="exports storage (default: POS_EXPORTS_STORAGE)"),
        click.Option(["--now"], hidden=True),  # tests: a fixed "now"
    ]

    def callback(**params: Any) -> int:
        return run(handler, args_of(params))

    return click.Command(name, params=[*params, *common], callback=checked(callback), help=help)


def _int(name: str, help: str | None = None, **kwargs: Any) -> click.Option:
    return click.Option([name], type=int, help=help, **kwargs)


COMMANDS: dict[str, click.Command] = {
    "history": _command(
        "history",
        "Past deliveries (the ledger), newest first: one row per subscription, period and recipient; "
        "or download the files one of them emailed.",
        [
            _int("--business-id"),
            _int("--subscription-id"),
            click.Option(["--status"], help="a delivery status: emailed, failed, unknown, skipped, pending, ..."),
            click.Option(["--since"], help="created at or after (YYYY-MM-DD or ISO date-time, UTC)"),
            click.Option(["--until"], help="created before (exclusive)"),
            _int("--limit", "show at most N rows"),
            _int("--download", "copy the files of delivery ID (with --to DIR)", metavar="ID"),
            click.Option(["--to"], metavar="DIR", help="where --download copies the files"),
        ],
        _history,
    ),
    "stats": _command(
        "stats",
        "Delivery statistics (success rate, sizes, durations) per dataset and format, and the exports produced.",
        [
            click.Option(["--since"], help="from (YYYY-MM-DD or ISO date-time, UTC; default: the start)"),
            click.Option(["--until"], help="to (exclusive; default: now)"),
            _int("--business-id"),
        ],
        _stats,
    ),
    "upcoming": _command(
        "upcoming", "The next fire of every active subscription.", [_int("--business-id"), _int("--limit")], _upcoming
    ),
    "overdue": _command(
        "overdue",
        "Subscription fires of the last days not delivered (waiting for the archive, failed, never ran), "
        "with the reason.",
        [_int("--business-id"), _int("--lookback-days", default=7, show_default=True)],
        _overdue,
    ),
}


def run(handler: Callable[[Args, Context], int], args: Args) -> int:
    """Run a handler; 0 on success, 2 after a clean `error: ...` on stderr."""
    from pos_exports.cli.subscriptions import run_handler

    ctx = Context(args)
    try:
        return run_handler(handler, args, ctx, CliError)
    except Exception as exc:  # storage unreachable, a broken manifest, ...: a message, not a traceback
        from pos_exports.cli.kit import print_traceback
        from pos_exports.redact import scrub

        print_traceback(exc)
        print(f"error: {type(exc).__name__}: {scrub(exc)}", file=sys.stderr)
        return 2
