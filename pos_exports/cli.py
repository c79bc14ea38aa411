"""`pos-exports`: the command line of the data team (demo set-up and archive runs outside the UI)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import dagster as dg

from pos_exports import config
from pos_exports.archive.assets import archive_partitions, asset_key
from pos_exports.archive.tables import DATASETS
from pos_exports.delivery import history_cli, subscriptions_cli
from pos_exports.periods import PeriodError, parse_date
from pos_exports.redact import scrub

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _execute(
    job_name: str, *, run_config: dict, tags: dict | None = None, selection=None, partition_key: str | None = None
) -> dg.ExecuteInProcessResult:
    """Run a job of the code location in this process, on the instance in DAGSTER_HOME (visible in the UI)."""
    from pos_exports.definitions import defs

    run_config = {**run_config, "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance,
            run_config=run_config,
            tags=tags,
            asset_selection=selection,
            partition_key=partition_key,
            raise_on_error=False,
        )
    if not result.success:
        for failure in result.get_step_failure_events():
            print(f"FAILED: {scrub(failure.step_failure_data.error.message)}", file=sys.stderr)
    return result


def run_archive(first: dt.date, last: dt.date, datasets: list[str], business_ids: list[int]) -> bool:
    """Materialize the archive for `[first, last]` in one run on the Dagster instance (visible in the UI)."""
    result = _execute(
        "daily_archive_job",
        run_config={"ops": {"daily_archive": {"config": {"business_ids": business_ids}}}},
        tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()},
        selection=[asset_key(d) for d in datasets],
    )
    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'} ({first}..{last})")
    seen = set()
    for event in result.get_asset_materialization_events():
        m = event.materialization
        if m.asset_key not in seen:  # a range run records the same totals on every partition
            seen.add(m.asset_key)
            print(
                f"  {m.asset_key.to_user_string():20} rows={m.metadata['rows'].value:>8}  {m.metadata['storage'].value}"
            )
    return result.success


def _date(text: str) -> dt.date:
    try:
        return parse_date(text)
    except PeriodError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pos-exports", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="build the demo POS database and archive its most recent days")
    demo.add_argument("--days", type=int, default=7, help="how many recent days of events to archive (default 7)")

    archive = sub.add_parser("archive", help="archive a business-local day or a range of days")
    archive.add_argument("--date", type=_date, required=True, help="first day, YYYY-MM-DD")
    archive.add_argument("--to", type=_date, help="last day (default: --date)")
    archive.add_argument("--dataset", action="append", choices=sorted(DATASETS), help="default: all four")
    archive.add_argument("--business-id", type=int, action="append", default=[], help="default: every active one")

    export = sub.add_parser("export", help="an on-demand export of one business (from the archive)")
    export.add_argument("--business-id", type=int, required=True)
    export.add_argument("--dataset", action="append", choices=sorted(DATASETS), help="default: all four")
    export.add_argument(
        "--period", nargs=2, metavar=("KIND", "KEY"), help="daily 2025-03-09 | weekly 2025-03-03 | monthly 2025-03"
    )
    export.add_argument("--from", dest="start", help="or a date range: first day YYYY-MM-DD")
    export.add_argument("--to", dest="end", help="last day YYYY-MM-DD")
    export.add_argument("--format", action="append", choices=["xlsx", "csv", "pdf"], help="default: all three")
    export.add_argument("--filter", action="append", default=[], metavar="NAME=VALUE", help="a REPORTS.md filter")

    retention = sub.add_parser(
        "retention", help="is every business-day the POS still holds archived? (exit 1 warn, 2 error)"
    )
    retention.set_defaults(command="retention")
    cleanup = sub.add_parser("cleanup", help="delete period exports older than the maximum age (never the archive)")
    cleanup.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    cleanup.add_argument("--max-age-days", type=int, help="default POS_EXPORTS_EXPORT_MAX_AGE_DAYS or 30")

    subscriptions_cli.register_command(
        "trigger",
        "deliver one subscription's period now (default: its latest completed period)",
        _trigger_options,
        _trigger,
    )
    subscriptions_cli.register(sub)
    history_cli.register(sub)  # history, stats, upcoming, overdue

    args = parser.parse_args(argv)
    if args.command == "subscriptions":
        return subscriptions_cli.run(args)
    if args.command in history_cli.COMMANDS:
        return history_cli.run(args)
    if args.command == "demo":
        return _demo(args.days)
    if args.command == "export":
        return _export(args, parser)
    if args.command == "retention":
        from pos_exports.automation.retention import print_coverage

        return print_coverage()
    if args.command == "cleanup":
        from pos_exports.automation.cleanup import run_cleanup

        return run_cleanup(args.dry_run, args.max_age_days)
    last = args.to or args.date
    if last < args.date:
        parser.error("--to must not be before --date")
    latest = parse_date(archive_partitions.get_last_partition_key())
    if last > latest:
        parser.error(f"{last} has not ended in every time zone yet; the latest day to archive is {latest}")
    return 0 if run_archive(args.date, last, args.dataset or list(DATASETS), args.business_id) else 1


def _trigger_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=int, help="the subscription id")
    parser.add_argument("--period", metavar="KEY", help="2025-03-09 (daily), 2025-03-03 (weekly), 2025-03 (monthly)")


def _trigger(args: argparse.Namespace, ctx: subscriptions_cli.Context) -> int:
    """Deliver a subscription now through the delivery job (a run in the UI, the ledger as always)."""
    from pos_exports.delivery import schedule
    from pos_exports.delivery.subscriptions import SubscriptionError, get

    sub = get(ctx.engine, args.id)
    if sub is None:
        raise SubscriptionError("id", f"no subscription with id {args.id}")
    kind, key = sub.frequency, args.period
    if not key:
        _, key = schedule.period_at(sub, ctx.zone_for(sub), schedule.next_fire(sub, ctx.zone_for(sub), ctx.now))
        key = _previous_key(kind, key)
    cfg = {"subscription_id": sub.id, "period_kind": kind, "period_key": key}
    result = _execute("delivery_job", run_config={"ops": {"deliver_subscription": {"config": cfg}}})
    ctx.print(
        f"run {result.run_id}: delivery of {sub.name!r} for {kind} {key}: "
        f"{result.output_for_node('deliver_subscription') if result.success else 'FAILED'}"
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


def _export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    cfg: dict = {"business_id": args.business_id}
    if args.dataset:
        cfg["datasets"] = args.dataset
    if args.format:
        cfg["formats"] = args.format
    if args.period:
        cfg["period_kind"], cfg["period_key"] = args.period
    cfg["start_date"], cfg["end_date"] = args.start or "", args.end or ""
    try:
        cfg["filters"] = dict(f.split("=", 1) for f in args.filter)
    except ValueError:
        parser.error("--filter: expected NAME=VALUE")
    result = _execute("on_demand_export_job", run_config={"ops": {"on_demand_export": {"config": cfg}}})
    if result.success:
        print(f"exported to {result.output_for_node('on_demand_export')}")
    return 0 if result.success else 1


def _demo_deliveries(day: dt.date) -> bool:
    """Load the demo subscriptions and deliver the daily ones for `day` (to the outbox without SMTP)."""
    from importlib.resources import files

    from pos_exports.delivery.state import engine
    from pos_exports.delivery.subscriptions import find, import_yaml

    eng = engine()
    import_yaml(eng, files("pos_exports.delivery").joinpath("demo_subscriptions.yaml").read_text())
    ok = True
    for sub in find(eng, active=True):
        if sub.frequency == "daily":
            cfg = {"subscription_id": sub.id, "period_kind": "daily", "period_key": day.isoformat()}
            result = _execute("delivery_job", run_config={"ops": {"deliver_subscription": {"config": cfg}}})
            status = result.output_for_node("deliver_subscription") if result.success else "FAILED"
            print(f"run {result.run_id}: delivery of {sub.name!r} (business {sub.business_id}): {status}")
            ok = ok and result.success
    return ok


def _demo(days: int) -> int:
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
        result = _execute("daily_exports_job", run_config={}, partition_key=last.isoformat())
        ok = result.success
        print(f"run {result.run_id}: daily exports of {last}: {'succeeded' if ok else 'FAILED'}")
    if ok:
        ok = _demo_deliveries(last)
    print(f"\narchive: {config.storage_root()}/archive")
    print(f"exports: {config.storage_root()}/exports/<business_id>/daily/{last}/")
    print(f"emails:  {config.storage_root()}/outbox/ (no POS_EXPORTS_SMTP_URL: .eml files)")
    print("open the Dagster UI on this demo with: make dev")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
