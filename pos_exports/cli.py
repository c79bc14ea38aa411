"""`pos-exports`: the command line of the data team (demo set-up and archive runs outside the UI)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import dagster as dg

from pos_exports import config
from pos_exports.archive.assets import archive_partitions, asset_key
from pos_exports.archive.tables import DATASETS
from pos_exports.delivery import subscriptions_cli
from pos_exports.periods import PeriodError, parse_date

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def run_archive(first: dt.date, last: dt.date, datasets: list[str], business_ids: list[int]) -> bool:
    """Materialize the archive for `[first, last]` in one run on the Dagster instance (visible in the UI)."""
    from pos_exports.definitions import defs

    job = defs.resolve_job_def("daily_archive_job")
    tags = {RANGE_START: first.isoformat(), RANGE_END: last.isoformat()}
    selection = [asset_key(d) for d in datasets]
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags=tags,
            asset_selection=selection,
            run_config={
                "ops": {"daily_archive": {"config": {"business_ids": business_ids}}},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
            raise_on_error=False,
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
    if not result.success:
        for failure in result.get_step_failure_events():
            print(f"FAILED: {failure.step_failure_data.error.message}", file=sys.stderr)
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

    subscriptions_cli.register(sub)

    args = parser.parse_args(argv)
    if args.command == "subscriptions":
        return subscriptions_cli.run(args)
    if args.command == "demo":
        return _demo(args.days)
    last = args.to or args.date
    if last < args.date:
        parser.error("--to must not be before --date")
    latest = parse_date(archive_partitions.get_last_partition_key())
    if last > latest:
        parser.error(f"{last} has not ended in every time zone yet; the latest day to archive is {latest}")
    return 0 if run_archive(args.date, last, args.dataset or list(DATASETS), args.business_id) else 1


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
    print(f"\narchive: {config.storage_root()}/archive")
    print("open the Dagster UI on this demo with: make dev")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
