"""`pos-exports`: the command line of the data team (demo set-up and archive runs outside the UI).

Built on click, one function per command. Dagster, SQLAlchemy, pyarrow and reportlab are imported
inside the command functions, so `pos-exports --help` (and every `--help`) answers without them.
A new `archive` subcommand is one function under `@archive.command(...)`.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import threading
from typing import TYPE_CHECKING, Any

import click

from pos_exports.cli import history as history_cli
from pos_exports.cli import subscriptions as subscriptions_cli
from pos_exports.cli.kit import Args, checked, error, now, verbose
from pos_exports.core.catalog import DATASETS, FORMATS

if TYPE_CHECKING:
    import dagster as dg

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


# --- running a job ---------------------------------------------------------------------------------------


def _follow(instance: dg.DagsterInstance, run_id: str, done: threading.Event) -> None:
    """Print each INFO line the run's ops log (e.g. `sales 2025-03-09: 3 business(es), ...`) as it comes:
    the progress of a long run, one line per dataset-day or period. Best effort: a read error skips a poll."""
    import logging

    from pos_exports.redact import scrub

    cursor = None
    while True:
        finished = done.wait(0.5)
        try:
            while True:
                conn = instance.get_records_for_run(run_id, cursor=cursor, limit=500)
                for record in conn.records:
                    entry = record.event_log_entry
                    if entry.dagster_event is None and entry.level == logging.INFO:
                        print(f"  {scrub(entry.user_message)}", flush=True)
                cursor = conn.cursor
                if not conn.has_more:
                    break
        except Exception:  # the run is not stored yet, or storage is busy: the next poll catches up
            if finished:
                return
            continue
        if finished:
            return


def failure_cause(error_info: Any) -> str:
    """The cause of a step failure in one or two lines: Dagster's own wrappers (a retry policy's
    `Exceeded max_retries`, `Error occurred while executing op`) are skipped down to the error raised."""
    from pos_exports.redact import scrub

    while error_info.cause is not None and (
        (error_info.cls_name or "").startswith(("Dagster", "RetryRequested"))
        or error_info.message.startswith("Exceeded max_retries")
    ):
        error_info = error_info.cause
    lines = [line for line in scrub(error_info.message).strip().splitlines() if line.strip()]
    qualified = re.match(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+): ", lines[0]) if lines else None
    if qualified:  # `package.module.Error: text` -> `Error: text`; a `dg.Failure` is its description
        name, rest = qualified.group(1).rsplit(".", 1)[-1], lines[0][qualified.end() :]
        lines[0] = rest if name == "Failure" else f"{name}: {rest}"
    return "\n".join(lines[:2]) + (" ..." if len(lines) > 2 else "")


def _execute(
    job_name: str,
    *,
    run_config: dict,
    tags: dict | None = None,
    selection: list | None = None,
    partition_key: str | None = None,
    progress: bool = False,
) -> dg.ExecuteInProcessResult:
    """Run a job of the code location in this process, on the instance in DAGSTER_HOME (visible in the UI).

    Such a run carries no code location origin; `in_process_failure_alert_sensor` alerts its failure.
    A failed step prints its cause in one or two lines; `--verbose` shows Dagster's log with the traces.
    """
    import uuid
    import warnings

    import dagster as dg

    with warnings.catch_warnings():  # Dagster's notes on its beta APIs are for developers, not the CLI's user
        if not verbose():
            warnings.simplefilter("ignore", dg.BetaWarning)
            warnings.simplefilter("ignore", dg.PreviewWarning)
        from pos_exports.definitions import defs

        job = defs.resolve_job_def(job_name)

    level = "WARNING" if verbose() else "CRITICAL"
    run_config = {**run_config, "loggers": {"console": {"config": {"log_level": level}}}}
    run_id = str(uuid.uuid4())  # known before the run starts: the progress follower reads its events
    with dg.DagsterInstance.get() as instance:
        done = threading.Event()
        follower = threading.Thread(target=_follow, args=(instance, run_id, done), daemon=True)
        if progress:
            follower.start()
        try:
            result = job.execute_in_process(
                instance=instance,
                run_config=run_config,
                tags=tags,
                asset_selection=selection,
                partition_key=partition_key,
                raise_on_error=False,
                run_id=run_id,
            )
        finally:
            done.set()
            if progress:
                follower.join(timeout=30)
    if not result.success:
        for failure in result.get_step_failure_events():
            print(f"FAILED: {failure.step_key}: {failure_cause(failure.step_failure_data.error)}", file=sys.stderr)
    return result


def _output(result: dg.ExecuteInProcessResult, node: str) -> str:
    return result.output_for_node(node) if result.success else "FAILED"


# --- the group -------------------------------------------------------------------------------------------


@click.group(
    name="pos-exports",
    help=__doc__.split("\n\n")[0],
    epilog="Documentation: README.md; what each export contains, its figures, filters and files: docs/reports.md.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.option("--verbose", "-v", is_flag=True, help="on a failure, show the traceback (and Dagster's log)")
@click.option("--now", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z"]), hidden=True)  # tests: a fixed instant
def cli(verbose: bool, now: dt.datetime | None) -> None:
    """The root group: `--verbose` (read by `cli.kit.verbose`) and a hidden `--now` (read by `cli.kit.now`)."""


def _date(text: str | dt.date | None) -> dt.date | None:
    """A click type: YYYY-MM-DD (`periods.parse_date`, its message on a bad value)."""
    if text is None or isinstance(text, dt.date):
        return text
    from pos_exports.periods import PeriodError, parse_date

    try:
        return parse_date(text)
    except PeriodError as exc:
        raise click.BadParameter(str(exc)) from None


def _datasets(names: tuple[str, ...]) -> list[str]:
    """The datasets named (default: all; `--dataset` is a choice of the catalogue, which needs no pyarrow)."""
    return list(names) or list(DATASETS)


DATASET_HELP = "a dataset of the archive (sales, customers, ...); repeatable (default: all)"


# --- demo ------------------------------------------------------------------------------------------------


@cli.command()
@click.option("--days", type=int, default=7, show_default=True, help="how many recent days of events to archive")
@checked
def demo(days: int) -> int:
    """Build the demo POS database and archive its most recent days."""
    from pos_exports import config
    from pos_exports.archive.tables import DATASETS
    from pos_exports.defs.archive import archive_partitions
    from pos_exports.periods import parse_date
    from pos_exports.source.demo import ensure_demo_database

    db = ensure_demo_database(config.demo_database_path())
    print(f"demo POS database: {db}")
    last = parse_date(archive_partitions.get_last_partition_key())
    first = last - dt.timedelta(days=max(days, 1) - 1)
    events = [name for name, ds in DATASETS.items() if ds.kind == "event"]
    snapshots = [name for name, ds in DATASETS.items() if ds.kind == "snapshot"]
    print(f"archiving {', '.join(events)} for {first}..{last} and {', '.join(snapshots)} as of {last}")
    ok = run_archive(first, last, events, []) and run_archive(last, last, snapshots, [])
    if ok:
        result = _execute("daily_exports_job", run_config=_ALL, partition_key=last.isoformat(), progress=True)
        ok = result.success
        print(f"run {result.run_id}: daily exports of {last}: {'succeeded' if ok else 'FAILED'}")
    if ok:
        ok = _demo_deliveries(last)
    print(f"\narchive: {config.storage_root()}/archive")
    print(f"exports: {config.storage_root()}/exports/<business_id>/daily/{last}/")
    print(f"emails:  {config.storage_root()}/outbox/ (no POS_EXPORTS_SMTP_URL: .eml files)")
    print("open the Dagster UI on this demo with: make dev")
    return 0 if ok else 1


_ALL = {"ops": {"daily_exports": {"config": {"render": "all"}}}}  # the demo shows every file


def _demo_deliveries(day: dt.date) -> bool:
    """Load the demo subscriptions and deliver the daily ones for `day` (to the outbox without SMTP)."""
    from importlib.resources import files

    from pos_exports.delivery.subscriptions import find, import_yaml
    from pos_exports.state import engine

    eng = engine()
    import_yaml(eng, files("pos_exports.delivery").joinpath("demo_subscriptions.yaml").read_text(), now=now())
    ok = True
    for sub in find(eng, active=True):
        if sub.frequency == "daily":
            cfg = {"subscription_id": sub.id, "period_kind": "daily", "period_key": day.isoformat()}
            result = _execute("delivery_job", run_config={"ops": {"deliver_subscription": {"config": cfg}}})
            status = _output(result, "deliver_subscription")
            print(f"run {result.run_id}: delivery of {sub.name!r} (business {sub.business_id}): {status}")
            ok = ok and result.success
    return ok


# --- archive ---------------------------------------------------------------------------------------------


class _ArchiveGroup(click.Group):
    """`archive --date D ...` (the short form, as before) is `archive run --date D ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0].startswith("-") and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_ArchiveGroup)
def archive() -> None:
    """Archive business-local days (`archive run`, short form `archive --date ...`), or rebuild the index.

    \b
    pos-exports archive run --date 2025-03-09 [--to 2025-03-15] [--dataset sales] [--business-id 2]
    pos-exports archive --date 2025-03-09 ...      (the same: `run` is the default)
    pos-exports archive reindex
    pos-exports archive migrate | compact [--table T] | vacuum --table T --keep-days N [--yes]
    """


@archive.command("run")
@click.option("--date", "first", type=_date, required=True, metavar="YYYY-MM-DD", help="the first day")
@click.option("--to", "last", type=_date, metavar="YYYY-MM-DD", help="the last day (default: --date)")
@click.option("--dataset", multiple=True, type=click.Choice(DATASETS), help=DATASET_HELP)
@click.option("--business-id", type=int, multiple=True, help="repeatable (default: every active one)")
@checked
def archive_run(first: dt.date, last: dt.date | None, dataset: tuple[str, ...], business_id: tuple[int, ...]) -> int:
    """Archive a business-local day or a range of days, in one run (visible in the UI)."""
    from pos_exports.defs.archive import archive_partitions
    from pos_exports.periods import parse_date

    datasets = _datasets(dataset)
    last = last or first
    if last < first:
        raise click.BadParameter("must not be before --date", param_hint="--to")
    earliest = parse_date(archive_partitions.get_first_partition_key())
    if first < earliest:
        raise click.BadParameter(
            f"{first} is before the first day of the archive, {earliest} (POS_EXPORTS_START_DATE)", param_hint="--date"
        )
    latest = parse_date(archive_partitions.get_last_partition_key())
    if last > latest:
        raise click.UsageError(f"{last} has not ended in every time zone yet; the latest day to archive is {latest}")
    return 0 if run_archive(first, last, datasets, list(business_id)) else 1


def run_archive(first: dt.date, last: dt.date, datasets: list[str], business_ids: list[int]) -> bool:
    """Materialize the archive for `[first, last]` in one run on the Dagster instance (visible in the UI)."""
    from pos_exports.defs.archive import asset_key

    result = _execute(
        "daily_archive_job",
        run_config={"ops": {"daily_archive": {"config": {"business_ids": business_ids}}}},
        tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()},
        selection=[asset_key(d) for d in datasets],
        progress=True,
    )
    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'} ({first}..{last})")
    totals: dict[Any, list] = {}  # each partition's materialization carries that day's rows
    for event in result.get_asset_materialization_events():
        m = event.materialization
        total = totals.setdefault(m.asset_key, [0, m.metadata["storage"].value])
        total[0] += m.metadata["rows"].value
    for key, (rows, folder) in totals.items():
        print(f"  {key.to_user_string():20} rows={rows:>8}  {folder}")
    return result.success


@archive.command("reindex")
@checked
def archive_reindex() -> int:
    """Rebuild the archive index of the state database from every manifest on storage (idempotent)."""
    from pos_exports import config
    from pos_exports.archive.index import reindex
    from pos_exports.state import engine
    from pos_exports.storage import open_storage

    count = reindex(open_storage(config.storage_root()), engine(), progress=print)
    print(f"archive index rebuilt: {count} archived business-day(s)")
    return 0


@archive.command("migrate")
@checked
def archive_migrate() -> int:
    """Convert the folder archive into the Delta tables, verified row by row and sum by sum (resumable; the
    folder files are kept, and days not migrated yet are still read from them)."""
    from pos_exports import config
    from pos_exports.archive import delta
    from pos_exports.archive.migrate import migrate
    from pos_exports.storage import open_storage

    storage = open_storage(config.storage_root())
    count = migrate(storage, progress=print)
    print(f"migrated {count} business-day(s) into {storage.uri(delta.TABLES)}; the folder files are kept")
    return 0


@archive.command("compact")
@click.option("--table", help="one Delta table (sales, sale_items, ...; default: all)")
@checked
def archive_compact(table: str | None) -> int:
    """Rewrite the days held in several files as one file sorted on business_id (every version stays readable)."""
    from pos_exports import config
    from pos_exports.archive import delta
    from pos_exports.storage import open_storage

    if table and table not in [*delta.data_tables(), delta.RECORDS]:
        raise click.BadParameter(f"{table!r} is not an archive table", param_hint="--table")
    for name, figures in delta.compact(open_storage(config.storage_root()), [table] if table else None).items():
        print(f"{name}: {figures['files_before']} file(s) -> {figures['files_after']}")
    return 0


@archive.command("vacuum")
@click.option("--table", required=True, help="the Delta table (sales, sale_items, ...)")
@click.option("--keep-days", type=int, required=True, help="keep the history of the last N days (at least 30)")
@click.option("--yes", is_flag=True, help="delete the files listed (default: a dry run that deletes nothing)")
@checked
def archive_vacuum(table: str, keep_days: int, yes: bool) -> int:
    """The explicit, guarded retention step: list (with --yes delete) a Delta table's files that no version of
    the last --keep-days needs. Never run automatically."""
    from pos_exports import config
    from pos_exports.archive import delta
    from pos_exports.storage import open_storage

    try:
        delta.check_vacuum(table, keep_days)
    except ValueError as exc:
        raise click.UsageError(f"archive vacuum {exc}") from None
    files = delta.vacuum(open_storage(config.storage_root()), table, keep_days, yes=yes)
    for name in files:
        print(("deleted " if yes else "would delete ") + name)
    verb = "deleted" if yes else "would be deleted (dry run; --yes deletes them)"
    print(
        f"{table}: {len(files)} file(s) no longer in the latest version and removed more than "
        f"{keep_days} days ago {verb}"
    )
    return 0


# --- exports ---------------------------------------------------------------------------------------------


@cli.command()
@click.option("--business-id", type=int, required=True)
@click.option("--dataset", multiple=True, type=click.Choice(DATASETS), help=DATASET_HELP)
@click.option(
    "--period", nargs=2, metavar="KIND KEY", default=None, help="daily 2025-03-09 | weekly 2025-03-03 | monthly 2025-03"
)
@click.option("--from", "start", help="or a date range: first day YYYY-MM-DD")
@click.option("--to", "end", help="last day YYYY-MM-DD")
@click.option("--format", "formats", multiple=True, type=click.Choice(FORMATS), help="repeatable (default: all three)")
@click.option(
    "--filter", "filters", multiple=True, metavar="NAME=VALUE", help="a filter of docs/reports.md; repeatable"
)
@checked
def export(
    business_id: int,
    dataset: tuple[str, ...],
    period: tuple[str, str] | None,
    start: str | None,
    end: str | None,
    formats: tuple[str, ...],
    filters: tuple[str, ...],
) -> int:
    """An on-demand export of one business (from the archive)."""
    cfg: dict = {"business_id": business_id}
    if dataset:
        cfg["datasets"] = _datasets(dataset)
    if formats:
        cfg["formats"] = list(formats)
    if period:
        cfg["period_kind"], cfg["period_key"] = period
    cfg["start_date"], cfg["end_date"] = start or "", end or ""
    if any("=" not in f for f in filters):
        raise click.BadParameter("expected NAME=VALUE", param_hint="--filter")
    cfg["filters"] = dict(f.split("=", 1) for f in filters)
    what = " ".join(period) if period else f"{start or '?'}..{end or '?'}"
    print(f"exporting business {business_id}, {what}", flush=True)
    result = _execute("on_demand_export_job", run_config={"ops": {"on_demand_export": {"config": cfg}}})
    if result.success:
        print(f"exported to {result.output_for_node('on_demand_export')}")
    return 0 if result.success else 1


@cli.command()
@checked
def retention() -> int:
    """Is every business-day the POS still holds archived? (exit 1 warn, 2 error)"""
    from pos_exports.operations.retention import print_coverage

    return print_coverage(now())


@cli.command()
@click.option("--dry-run", is_flag=True, help="list what would be deleted, delete nothing")
@click.option("--max-age-days", type=int, help="default POS_EXPORTS_EXPORT_MAX_AGE_DAYS or 30")
@checked
def cleanup(dry_run: bool, max_age_days: int | None) -> int:
    """Delete period exports older than the maximum age (never the archive)."""
    from pos_exports.operations.cleanup import run_cleanup

    return run_cleanup(now().date(), dry_run, max_age_days)


# --- delivery --------------------------------------------------------------------------------------------


def _trigger(args: Args, ctx: subscriptions_cli.Context) -> int:
    """Deliver a subscription now through the delivery job (a run in the UI, the ledger as always)."""
    from pos_exports.delivery import schedule
    from pos_exports.delivery.subscriptions import SubscriptionError, get

    sub = get(ctx.engine, args.id)
    if sub is None:
        raise SubscriptionError("id", f"no subscription with id {args.id}")
    kind, key = sub.frequency, args.period
    if not key:
        business_zone = (ctx.business_timezones or {}).get(sub.business_id) or ctx.zone_for(sub)
        _, key = schedule.period_at(sub, business_zone, schedule.next_fire(sub, business_zone, ctx.now))
        key = _previous_key(kind, key)
    from pos_exports.defs.deliveries import run_request

    request = run_request(sub.id, kind, key, sub.business_id)  # the tags a sensor's run has (failure alerts)
    ctx.print(f"delivering {sub.name!r} for {kind} {key}")
    result = _execute("delivery_job", run_config=request.run_config, tags=request.tags, progress=True)
    ctx.print(
        f"run {result.run_id}: delivery of {sub.name!r} for {kind} {key}: {_output(result, 'deliver_subscription')}"
    )
    return 0 if result.success else 1


def _previous_key(kind: str, key: str) -> str:
    """The period before `key` (the next fire delivers `key`, so the latest completed one is before it)."""
    from pos_exports.reports.period import period_for

    period = period_for(kind, key)
    before = period.first_day - dt.timedelta(days=1)
    return {
        "daily": before.isoformat(),
        "weekly": (before - dt.timedelta(days=6)).isoformat(),
        "monthly": before.strftime("%Y-%m"),
    }[kind]


trigger = subscriptions_cli.register_command(
    "trigger",
    "Deliver one subscription's period now (default: its latest completed period).",
    [
        click.Argument(["id"], type=int),
        click.Option(["--period"], metavar="KEY", help="2025-03-09 (daily), 2025-03-03 (weekly), 2025-03 (monthly)"),
    ],
    _trigger,
)
cli.add_command(trigger)  # `pos-exports trigger ID` is `pos-exports subscriptions trigger ID`
cli.add_command(subscriptions_cli.group)
for _command in history_cli.COMMANDS.values():  # history, stats, upcoming, overdue
    cli.add_command(_command)


@cli.command(
    epilog="Send again, through the delivery job, the export emails of one subscription and period whose outcome "
    "is `unknown` (the connection was lost after the message was sent, or the run died right after). "
    "Prints what it risks; sends only with --yes."
)
@click.argument("id", type=int)
@click.option("--period", metavar="KEY", required=True, help="the period key (see `history`)")
@click.option("--recipient", multiple=True, help="only this recipient; repeatable (default: all unknown)")
@click.option("--yes", is_flag=True, help="send (without it: only print what would be sent)")
@checked
def resend(id: int, period: str, recipient: tuple[str, ...], yes: bool) -> int:
    """Send again the emails whose outcome is unknown (the recipient may then have them twice)."""
    from pos_exports.delivery import ledger
    from pos_exports.delivery.deliver import sender_address
    from pos_exports.delivery.email import SmtpSettings, message_id_for
    from pos_exports.delivery.subscriptions import get
    from pos_exports.reports.period import period_for
    from pos_exports.state import engine

    eng = engine()
    sub = get(eng, id)
    if sub is None:
        error(f"id: no subscription with id {id}")
        return 2
    try:
        chosen = period_for(sub.frequency, period)
    except ValueError as exc:
        error(f"period: {exc}")
        return 2
    wanted = {ledger.normalize_recipient(r) for r in recipient}
    rows = [
        r
        for r in ledger.history(eng, subscription_id=sub.id)
        if r["period_key"] == chosen.key and (not wanted or r["recipient"] in wanted)
    ]
    unknown = [r for r in rows if r["status"] == "unknown"]
    if not unknown:
        statuses = ", ".join(f"{r['recipient']} {r['status']}" for r in rows) or "no delivery yet"
        print(f"nothing to resend: no outcome of subscription {sub.id} for {chosen.key} is unknown ({statuses})")
        return 0
    from_address = sender_address(SmtpSettings.from_env())
    print(f"resend of {sub.name!r} (subscription {sub.id}) for {chosen.label}:")
    for r in unknown:
        mid = message_id_for(sub.id, chosen.kind, chosen.key, r["recipient"], from_address)
        print(f"  {r['recipient']}: {r['error'] or 'outcome unknown'}")
        print(f"    Message-ID {mid}")
    print(
        "RISK: these recipients may already have this email; resending sends a second copy (with the same "
        "Message-ID, so many mail clients show it once). Check the mail server's log for the Message-ID first."
    )
    if not yes:
        print("nothing sent: run again with --yes to resend")
        return 1
    cfg = {
        "subscription_id": sub.id,
        "period_kind": chosen.kind,
        "period_key": chosen.key,
        "resend_unknown": True,
        "recipients": [r["recipient"] for r in unknown],
    }
    result = _execute("delivery_job", run_config={"ops": {"deliver_subscription": {"config": cfg}}})
    print(
        f"run {result.run_id}: resend of {sub.name!r} for {chosen.kind} {chosen.key}: "
        f"{_output(result, 'deliver_subscription')}"
    )
    return 0 if result.success else 1


# --- main ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run `pos-exports` with `argv` (default: the process's arguments); returns the exit code.

    A usage mistake prints `error: <what>` and the command to ask for help (exit 2); `--help` exits 0.
    """
    try:
        result = cli.main(args=argv, prog_name="pos-exports", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message(), err=True)
        return 2
    except click.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        error(f"{exc.format_message()}{where}")
        return exc.exit_code
    except click.ClickException as exc:
        error(exc.format_message())
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        error("aborted")
        return 1
    return result if isinstance(result, int) else 0


# --- the HTTP API ----------------------------------------------------------------------------------------


@cli.command(epilog="OpenAPI at /docs. In production run it behind a reverse proxy (TLS there); see docs/api.md.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@click.option("--proxy-headers", is_flag=True, help="trust X-Forwarded-For/Proto from the reverse proxy")
@checked
def serve(host: str, port: int, proxy_headers: bool) -> int:
    """Serve the HTTP API (subscriptions, history, downloads, statistics) with uvicorn."""
    import copy

    import uvicorn

    from pos_exports.service.app import create_app

    logs = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)  # the API's own lines (refusals) as uvicorn's are written
    logs["loggers"]["pos_exports"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    uvicorn.run(create_app(), host=host, port=port, proxy_headers=proxy_headers, log_config=logs)
    return 0


@cli.group()
def tokens() -> None:
    """Tokens of the HTTP API (shown once at creation, stored hashed)."""


@tokens.command("create")
@click.option("--business", type=int, help="the one business it acts on")
@click.option("--data-team", is_flag=True, help="acts on any business")
@click.option("--read-only", is_flag=True, help="cannot change anything")
@click.option("--label", help="who or what uses it")
@checked
def tokens_create(business: int | None, data_team: bool, read_only: bool, label: str | None) -> int:
    """Create a token; prints its secret once."""
    from pos_exports.operations import tokens as store
    from pos_exports.state import engine

    if (business is None) == (not data_team):
        error("business: give either --business N or --data-team")
        return 2
    token, secret = store.create(engine(), None if data_team else business, now=now(), read_only=read_only, label=label)
    print(f"token {token.id} ({token.scope}{', read-only' if read_only else ''}): {secret}")
    print("keep it now: it is not shown again")
    return 0


@tokens.command("list")
@checked
def tokens_list() -> int:
    """List the tokens (never their secrets)."""
    from pos_exports.operations import tokens as store
    from pos_exports.state import engine

    for t in store.find(engine()):
        state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
        used = f"last used {t.last_used_at:%Y-%m-%d %H:%M} UTC" if t.last_used_at else "never used"
        access = "read-only" if t.read_only else "read-write"
        print(f"{t.id}  {t.scope}  {access}  {state}  {used}  {t.label or ''}".rstrip())
    return 0


@tokens.command("revoke")
@click.argument("id", type=int)
@checked
def tokens_revoke(id: int) -> int:
    """Revoke a token: it is refused (401) from now on."""
    from pos_exports.operations import tokens as store
    from pos_exports.state import engine

    if not store.revoke(engine(), id, now=now()):
        error(f"id: no active token with id {id}")
        return 2
    print(f"token {id} revoked")
    return 0
