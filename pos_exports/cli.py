"""`pos-exports`: the command line of the data team (demo set-up and archive runs outside the UI)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import dagster as dg

from pos_exports import config
from pos_exports.archive.tables import DATASETS
from pos_exports.delivery import history_cli, subscriptions_cli
from pos_exports.periods import PeriodError, parse_date
from pos_exports.redact import scrub

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _execute(
    job_name: str, *, run_config: dict, tags: dict | None = None, selection=None, partition_key: str | None = None
) -> dg.ExecuteInProcessResult:
    """Run a job of the code location in this process, on the instance in DAGSTER_HOME (visible in the UI).

    Such a run carries no code location origin; `in_process_failure_alert_sensor` alerts its failure.
    """
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
    from pos_exports.archive.assets import asset_key

    result = _execute(
        "daily_archive_job",
        run_config={"ops": {"daily_archive": {"config": {"business_ids": business_ids}}}},
        tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()},
        selection=[asset_key(d) for d in datasets],
    )
    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'} ({first}..{last})")
    totals: dict[dg.AssetKey, list] = {}  # each partition's materialization carries that day's rows
    for event in result.get_asset_materialization_events():
        m = event.materialization
        total = totals.setdefault(m.asset_key, [0, m.metadata["storage"].value])
        total[0] += m.metadata["rows"].value
    for key, (rows, folder) in totals.items():
        print(f"  {key.to_user_string():20} rows={rows:>8}  {folder}")
    return result.success


def _reindex() -> int:
    """Rebuild the archive index of the state database from every manifest on storage (idempotent)."""
    from pos_exports.archive.index import reindex
    from pos_exports.delivery.state import engine
    from pos_exports.storage import open_storage

    count = reindex(open_storage(config.storage_root()), engine(), progress=print)
    print(f"archive index rebuilt: {count} archived business-day(s)")
    return 0


def _maintain(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`archive migrate | vacuum | compact`: explicit steps on the Delta tables (see README "The archive")."""
    from pos_exports.archive import delta
    from pos_exports.storage import open_storage

    if args.action == "vacuum":
        if not args.table or args.keep_days is None:
            parser.error("archive vacuum: --table and --keep-days are required")
        try:
            delta.check_vacuum(args.table, args.keep_days)
        except ValueError as exc:
            parser.error(f"archive vacuum {exc}")
    if args.action == "compact" and args.table and args.table not in [*delta.data_tables(), delta.RECORDS]:
        parser.error(f"archive compact --table: {args.table!r} is not an archive table")
    storage = open_storage(config.storage_root())
    if args.action == "migrate":
        from pos_exports.archive.migrate import migrate

        count = migrate(storage, progress=print)
        print(f"migrated {count} business-day(s) into {storage.uri(delta.TABLES)}; the folder files are kept")
        return 0
    if args.action == "compact":
        for name, figures in delta.compact(storage, [args.table] if args.table else None).items():
            print(f"{name}: {figures['files_before']} file(s) -> {figures['files_after']}")
        return 0
    files = delta.vacuum(storage, args.table, args.keep_days, yes=args.yes)
    for name in files:
        print(("deleted " if args.yes else "would delete ") + name)
    verb = "deleted" if args.yes else "would be deleted (dry run; --yes deletes them)"
    print(
        f"{args.table}: {len(files)} file(s) no longer in the latest version and removed more than "
        f"{args.keep_days} days ago {verb}"
    )
    return 0


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

    archive = sub.add_parser(
        "archive", help="archive a business-local day or a range of days; `archive reindex`: rebuild the archive index"
    )
    archive.add_argument(
        "action",
        nargs="?",
        choices=["reindex", "migrate", "vacuum", "compact"],
        help="reindex: rebuild the index from storage; migrate: convert the folder archive into the Delta tables; "
        "vacuum: list (or with --yes delete) a Delta table's files removed more than --keep-days ago; "
        "compact: rewrite days of several files sorted on business_id",
    )
    archive.add_argument("--table", help="vacuum/compact: the Delta table (sales, sale_items, ...)")
    archive.add_argument("--keep-days", type=int, help="vacuum: keep the history of the last N days (at least 30)")
    archive.add_argument("--yes", action="store_true", help="vacuum: delete the files listed (default: dry run)")
    archive.add_argument("--date", type=_date, help="first day, YYYY-MM-DD (required to archive)")
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
    export.add_argument("--filter", action="append", default=[], metavar="NAME=VALUE", help="see docs/reports.md")

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
    resend = sub.add_parser(
        "resend",
        help="send again the emails whose outcome is unknown (the recipient may then have them twice)",
        description="Send again, through the delivery job, the export emails of one subscription and period whose "
        "outcome is `unknown` (the connection was lost after the message was sent, or the run died right after). "
        "Prints what it risks; sends only with --yes.",
    )
    _resend_options(resend)

    args = parser.parse_args(argv)
    try:  # every setting, before any command does anything
        config.settings()
    except config.SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "subscriptions":
        return subscriptions_cli.run(args)
    if args.command in history_cli.COMMANDS:
        return history_cli.run(args)
    if args.command == "demo":
        return _demo(args.days)
    if args.command == "resend":
        return _resend(args)
    if args.command == "export":
        return _export(args, parser)
    if args.command == "retention":
        from pos_exports.automation.retention import print_coverage

        return print_coverage()
    if args.command == "cleanup":
        from pos_exports.automation.cleanup import run_cleanup

        return run_cleanup(args.dry_run, args.max_age_days)
    if args.action == "reindex":
        return _reindex()
    if args.action in ("migrate", "vacuum", "compact"):
        return _maintain(args, parser)
    if args.date is None:
        parser.error("archive: --date is required (or `pos-exports archive reindex`)")
    last = args.to or args.date
    if last < args.date:
        parser.error("--to must not be before --date")
    from pos_exports.archive.assets import archive_partitions

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
        business_zone = (ctx.business_timezones or {}).get(sub.business_id) or ctx.zone_for(sub)
        _, key = schedule.period_at(sub, business_zone, schedule.next_fire(sub, business_zone, ctx.now))
        key = _previous_key(kind, key)
    from pos_exports.automation.delivery import run_request

    request = run_request(sub.id, kind, key, sub.business_id)  # the tags a sensor's run has (failure alerts)
    result = _execute("delivery_job", run_config=request.run_config, tags=request.tags)
    ctx.print(
        f"run {result.run_id}: delivery of {sub.name!r} for {kind} {key}: "
        f"{result.output_for_node('deliver_subscription') if result.success else 'FAILED'}"
    )
    return 0 if result.success else 1


def _resend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=int, help="the subscription id")
    parser.add_argument("--period", metavar="KEY", required=True, help="the period key (see `history`)")
    parser.add_argument("--recipient", action="append", help="only this recipient; repeatable (default: all unknown)")
    parser.add_argument("--yes", action="store_true", help="send (without it: only print what would be sent)")


def _resend(args: argparse.Namespace) -> int:
    """Resend the `unknown` outcomes of one delivery, after saying what that risks."""
    from pos_exports.delivery import ledger
    from pos_exports.delivery.deliver import sender_address
    from pos_exports.delivery.email import SmtpSettings, message_id_for
    from pos_exports.delivery.state import engine
    from pos_exports.delivery.subscriptions import get
    from pos_exports.reports.period import period_for

    eng = engine()
    sub = get(eng, args.id)
    if sub is None:
        print(f"error: id: no subscription with id {args.id}", file=sys.stderr)
        return 2
    try:
        period = period_for(sub.frequency, args.period)
    except ValueError as exc:
        print(f"error: period: {exc}", file=sys.stderr)
        return 2
    wanted = {ledger.normalize_recipient(r) for r in args.recipient or []}
    rows = [
        r
        for r in ledger.history(eng, subscription_id=sub.id)
        if r["period_key"] == period.key and (not wanted or r["recipient"] in wanted)
    ]
    unknown = [r for r in rows if r["status"] == "unknown"]
    if not unknown:
        statuses = ", ".join(f"{r['recipient']} {r['status']}" for r in rows) or "no delivery yet"
        print(f"nothing to resend: no outcome of subscription {sub.id} for {period.key} is unknown ({statuses})")
        return 0
    from_address = sender_address(SmtpSettings.from_env())
    print(f"resend of {sub.name!r} (subscription {sub.id}) for {period.label}:")
    for r in unknown:
        mid = message_id_for(sub.id, period.kind, period.key, r["recipient"], from_address)
        print(f"  {r['recipient']}: {r['error'] or 'outcome unknown'}")
        print(f"    Message-ID {mid}")
    print(
        "RISK: these recipients may already have this email; resending sends a second copy (with the same "
        "Message-ID, so many mail clients show it once). Check the mail server's log for the Message-ID first."
    )
    if not args.yes:
        print("nothing sent: run again with --yes to resend")
        return 1
    cfg = {
        "subscription_id": sub.id,
        "period_kind": period.kind,
        "period_key": period.key,
        "resend_unknown": True,
        "recipients": [r["recipient"] for r in unknown],
    }
    result = _execute("delivery_job", run_config={"ops": {"deliver_subscription": {"config": cfg}}})
    print(
        f"run {result.run_id}: resend of {sub.name!r} for {period.kind} {period.key}: "
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


_ALL = {"ops": {"daily_exports": {"config": {"render": "all"}}}}  # the demo shows every file


def _demo(days: int) -> int:
    from pos_exports.archive.assets import archive_partitions
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
        result = _execute("daily_exports_job", run_config=_ALL, partition_key=last.isoformat())
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
