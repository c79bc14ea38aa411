"""Dagster wiring of the catch-up (operations.catchup): `catchup_sensor` turns the plan into run requests, skipping
what a live run already covers."""

import datetime as dt
import json

import dagster as dg

from pos_exports.defs.archive import archive_job, archive_partitions, asset_key
from pos_exports.defs.deliveries import delivery_job, run_request
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.operations import retention
from pos_exports.operations.catchup import (
    CATCHUP_TAG,
    DAY_TAG,
    ITEM_TAG,
    MAX_RUNTIME_TAG,
    PRIORITY_TAG,
    SNAPSHOT_PRIORITY,
    UTC,
    ArchiveCatchup,
    MissedDelivery,
    archive_catchups,
    max_runs,
    may_retry,
    missed_deliveries,
    report_lost,
)
from pos_exports.state import engine
from pos_exports.storage import Storage

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _archive_request(item: ArchiveCatchup, attempt: int) -> dg.RunRequest:
    day = item.day.isoformat()
    tags = {CATCHUP_TAG: "archive", DAY_TAG: day, ITEM_TAG: item.key, "pos_exports/catchup_attempt": str(attempt)}
    if item.captures_snapshots:  # dequeued before the runs of days that can wait
        tags[PRIORITY_TAG] = SNAPSHOT_PRIORITY
    return dg.RunRequest(
        run_key=f"catchup:archive:{item.key}" + (f":retry{attempt - 1}" if attempt > 1 else ""),
        job_name=archive_job.name,
        partition_key=day,
        asset_selection=[asset_key(d) for d in item.datasets],
        run_config={"ops": {"daily_archive": {"config": {"business_ids": list(item.business_ids)}}}},
        tags=tags,
    )


def _delivery_request(item: MissedDelivery) -> dg.RunRequest:
    base = run_request(item.subscription_id, item.kind, item.key, item.business_id)
    return dg.RunRequest(
        run_key=base.run_key,
        job_name=delivery_job.name,
        run_config=base.run_config,
        tags={**base.tags, CATCHUP_TAG: "delivery"},
    )


def time_limit(instance: dg.DagsterInstance, run: dg.DagsterRun) -> float:
    """A run's time limit in seconds as run monitoring applies it (its `dagster/max_runtime` tag, else the
    instance's `run_monitoring.max_runtime_seconds`); 0: none."""
    raw = run.tags.get(MAX_RUNTIME_TAG) or run.tags.get(f"{MAX_RUNTIME_TAG}_seconds")
    try:
        return float(raw) if raw else float(instance.run_monitoring_max_runtime_seconds or 0)
    except ValueError:
        return 0.0


def live_runs(instance: dg.DagsterInstance, now: dt.datetime, tags: dict | None = None) -> list[dg.DagsterRun]:
    """Runs queued or in progress, without those STARTED longer ago than their time limit: their process
    has died (run monitoring fails them and run retries re-runs them), they must not hold anything up."""
    out = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=IN_FLIGHT, tags=tags or {})):
        run, limit = record.dagster_run, time_limit(instance, record.dagster_run)
        started = record.start_time
        if run.status == dg.DagsterRunStatus.STARTED and limit and started and now.timestamp() - started > limit:
            continue
        out.append(run)
    return out


def busy_days(instance: dg.DagsterInstance, now: dt.datetime) -> dict[str, set[str] | None]:
    """Partition keys that a live run (a schedule tick, a backfill, a hand-launched run) is working on, each
    with the datasets it archives (None: all of them)."""
    days: dict[str, set[str] | None] = {}

    def add(day: str, datasets: set[str] | None) -> None:
        if day in days:
            days[day] = None if datasets is None or days[day] is None else days[day] | datasets
        else:
            days[day] = datasets

    for run in live_runs(instance, now):
        tags = run.tags
        keys = run.asset_selection
        datasets = {k.path[-1].removesuffix("_archive") for k in keys} if keys else None
        if key := tags.get("dagster/partition"):
            add(key, datasets)
        first, last = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
        if first and last:
            try:
                day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
            except ValueError:
                continue
            while day <= end and len(days) < 10_000:
                add(day.isoformat(), datasets)
                day += dt.timedelta(days=1)
    return days


def _latest_failure(instance: dg.DagsterInstance, item: ArchiveCatchup) -> float | None:
    """When the latest catch-up run of `item` failed (a timestamp), or None when it did not fail."""
    day = item.day.isoformat()
    records = instance.get_run_records(filters=dg.RunsFilter(tags={CATCHUP_TAG: "archive", DAY_TAG: day}), limit=10)
    mine = [r for r in records if r.dagster_run.tags.get(ITEM_TAG, day) == item.key]
    if not mine or mine[0].dagster_run.status != dg.DagsterRunStatus.FAILURE:
        return None
    return mine[0].end_time or mine[0].update_timestamp.timestamp()


def plan(
    storage: Storage,
    eng,
    instance: dg.DagsterInstance,
    cursor: dict,
    now: dt.datetime,
    limit: int,
    *,
    blocked: bool = False,
) -> tuple[list[dg.RunRequest], dict, str]:
    """The run requests of one evaluation, the new cursor, and a one-line account.

    `blocked`: earlier catch-up runs are still in flight; only snapshots (lost if they wait) are requested.
    """
    archived: dict[str, int] = dict(cursor.get("archive", {}))
    delivered: dict[str, str] = dict(cursor.get("deliveries", {}))
    start = archive_partitions.start.date() if archive_partitions.start else None
    cov = retention.coverage(storage, now.date(), retention.retention_days(), now=now, start=start)
    horizon = dt.datetime.combine(cov.window_start, dt.time(0), tzinfo=UTC)
    # forget what is past the horizon: it can no longer be asked for
    archived = {d: n for d, n in archived.items() if d >= cov.window_start.isoformat()}
    delivered = {k: f for k, f in delivered.items() if f >= horizon.isoformat()}
    lost = report_lost(eng, cov, now)

    requests: list[dg.RunRequest] = []
    waiting = 0
    items = archive_catchups(cov)
    busy = busy_days(instance, now) if items else {}
    for item in items:
        day = item.day.isoformat()
        if day in busy:
            covered, snapshots = busy[day], (item if item.part == "snapshot" else item.snapshots)
            if snapshots is None or covered is None or covered & set(snapshots.datasets):
                continue  # the schedule's (or a backfill's) run for that day is on it
            item = snapshots  # that run archives the events only: capture the snapshots beside it
        attempts = archived.get(item.key, 0)
        if attempts and not may_retry(item, attempts, _latest_failure(instance, item), now):
            continue  # requested already (running, succeeded, waiting to retry, or gave up: the guard reports it)
        if len(requests) >= limit or (blocked and not item.captures_snapshots):
            waiting += 1
            continue
        archived[item.key] = attempts + 1
        requests.append(_archive_request(item, attempts + 1))
    for item in [] if blocked else missed_deliveries(storage, eng, horizon, now):
        if item.run_key in delivered:
            continue
        if len(requests) >= limit:
            waiting += 1
            continue
        delivered[item.run_key] = item.fire.isoformat()
        requests.append(_delivery_request(item))
    account = f"{len(requests)} catch-up run(s) requested, {waiting} waiting for a later tick"
    if lost:
        account += f"; {len(lost)} snapshot(s) lost (never captured), reported to the data team: " + ", ".join(
            f"{g.dataset} {g.day} business {g.business_id}" for g in lost[:20]
        )
    return requests, {"archive": archived, "deliveries": delivered, "checked_at": now.isoformat()}, account


@dg.sensor(
    name="catchup_sensor",
    jobs=[archive_job, delivery_job],
    minimum_interval_seconds=15 * 60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 15 minutes: archive days and deliveries missed back to the retention horizon "
    "(what is lost first comes first, POS_EXPORTS_CATCHUP_MAX_RUNS per tick; while catch-up runs are in "
    "flight, only snapshots that would otherwise expire).",
)
def catchup_sensor(context: dg.SensorEvaluationContext, storage: StorageResource, clock: ClockResource):
    now = clock.now()
    busy = live_runs(context.instance, now, tags={CATCHUP_TAG: ["archive", "delivery"]})
    cursor = json.loads(context.cursor) if context.cursor else {}
    requests, new_cursor, account = plan(
        storage.get(), engine(), context.instance, cursor, now, max_runs(), blocked=bool(busy)
    )
    context.update_cursor(json.dumps(new_cursor, sort_keys=True))
    if busy:
        account += f" (catch-up run {busy[0].run_id} is still {busy[0].status.value.lower()})"
    if not requests:
        return dg.SkipReason(f"nothing to catch up ({account})")
    context.log.info(account)
    return requests
