"""Catch-up: archive days and deliveries that were missed (daemon down, schedule off, a failed run).

Dagster runs only the latest missed tick of a schedule after downtime, so `catchup_sensor` (every
15 minutes) looks back to the retention horizon (`POS_RETENTION_DAYS`, see `retention.coverage`) and
requests what is missing, oldest first, at most `POS_EXPORTS_CATCHUP_MAX_RUNS` (default 3) runs per
evaluation, and none at all while an earlier catch-up run (tag `pos_exports/catchup`) is still
queued or in progress:

1. **Archive days.** Every partition with an overdue gap (`retention.Gap.overdue`: the daily schedule
   should have archived it, i.e. 3 h after the partition appeared) of an event dataset for any
   active business, or of a snapshot dataset that can still be captured (within 48 h of the end of
   the day), gets one `daily_archive_job` run: `partition_key=day`, run key `catchup:archive:{day}`,
   tags `pos_exports/catchup=archive`, `pos_exports/catchup_day={day}`. The run selects only the
   datasets with a gap that day (a snapshot dataset only if every business missing it can still be
   captured: a lost snapshot would fail the run for nothing) and only the businesses with a gap
   (`business_ids`), so nothing already archived is rewritten needlessly. A day that a queued or
   running run already works on (its `dagster/partition` tag or partition range: the schedule's
   tick, a backfill) is left to that run.
2. **Missed deliveries.** For every active subscription, every fire in
   `(max(horizon, created_at), now - 1 h]` (`schedule.due`; the hour leaves fresh fires to
   `due_subscriptions_sensor`) whose ledger rows are not all done (`ledger.pending_recipients`:
   not emailed, not rejected for good, not being processed by a live run) and whose archive is
   complete gets a `delivery_job` run with the due sensor's run key (`delivery:{sub}:{kind}:{key}`)
   and the tag `pos_exports/catchup=delivery`. A fire with no ledger row at all that happened before
   the subscription's last change (`updated_at`) is not caught up: the subscription may have been
   paused then, and periods fired while paused are skipped, not caught up on resume.

**Exactly once.** Requested run keys are kept in the cursor (per day / per delivery key, pruned at
the horizon), and Dagster itself never launches a sensor's run key twice. The one exception: when the
latest catch-up run of an archive day has *failed* and the day is still missing, the day is
requested once more with the run key `catchup:archive:{day}:retry1` (at most
`MAX_ARCHIVE_ATTEMPTS` = 2 runs per day); after that the retention guard tells the data team.
A delivery is requested once by the catch-up (its failure is alerted by `failure_alert_sensor`).
"""

import datetime as dt
import json
from dataclasses import dataclass

import dagster as dg

from pos_exports import config
from pos_exports.archive.assets import archive_job, archive_partitions, asset_key
from pos_exports.archive.read import load_businesses
from pos_exports.automation import retention
from pos_exports.automation.delivery import delivery_job, run_request
from pos_exports.delivery import ledger
from pos_exports.delivery.deliver import archive_ready
from pos_exports.delivery.schedule import ScheduleError, due
from pos_exports.delivery.state import engine
from pos_exports.delivery.subscriptions import find
from pos_exports.reports.period import period_for
from pos_exports.source.resource import StorageResource
from pos_exports.storage import Storage

UTC = dt.UTC
MAX_RUNS_ENV = "POS_EXPORTS_CATCHUP_MAX_RUNS"
CATCHUP_TAG = "pos_exports/catchup"
DAY_TAG = "pos_exports/catchup_day"
MAX_ARCHIVE_ATTEMPTS = 2
DELIVERY_GRACE = dt.timedelta(hours=1)
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def clock() -> dt.datetime:
    """Now (a function so that tests can evaluate the sensor at chosen instants)."""
    return dt.datetime.now(UTC)


def max_runs() -> int:
    return config.settings().catchup_max_runs


@dataclass(frozen=True)
class ArchiveCatchup:
    day: dt.date
    datasets: tuple[str, ...]
    business_ids: tuple[int, ...]


@dataclass(frozen=True)
class MissedDelivery:
    fire: dt.datetime
    subscription_id: int
    business_id: int
    kind: str
    key: str

    @property
    def run_key(self) -> str:
        return f"delivery:{self.subscription_id}:{self.kind}:{self.key}"


def archive_catchups(cov: retention.Coverage) -> list[ArchiveCatchup]:
    """The archive runs that would fill the overdue, recoverable gaps of `cov`, oldest day first."""
    by_day: dict[dt.date, list[retention.Gap]] = {}
    for gap in cov.gaps:
        if gap.overdue:
            by_day.setdefault(gap.day, []).append(gap)
    out = []
    for day in sorted(by_day):
        gaps = by_day[day]
        datasets = sorted(
            {
                g.dataset
                for g in gaps
                if g.kind == "event" or all(o.recoverable for o in gaps if o.dataset == g.dataset)
            },
            key=retention.ALL_DATASETS.index,
        )
        if datasets:
            ids = sorted({g.business_id for g in gaps if g.dataset in datasets})
            out.append(ArchiveCatchup(day, tuple(datasets), tuple(ids)))
    return out


def missed_deliveries(storage: Storage, eng, horizon: dt.datetime, now: dt.datetime) -> list[MissedDelivery]:
    """Fires of active subscriptions in `(horizon, now - DELIVERY_GRACE]` still undelivered whose archive is
    complete, oldest first (see the module doc)."""
    businesses = {b.id: b for b in load_businesses(storage) if b.is_active}
    until = now - DELIVERY_GRACE
    out: list[MissedDelivery] = []
    for sub in find(eng, active=True):
        business = businesses.get(sub.business_id)
        if business is None:
            continue
        start = max(horizon, sub.created_at or horizon)
        if start >= until:
            continue
        try:
            fires = due(sub, business.timezone, start, until)
        except ScheduleError:
            continue  # a broken subscription: the due sensor and the CLI report it
        rows_by_key: dict[str, list[dict]] = {}
        for row in ledger.history(eng, subscription_id=sub.id, since=start):  # rows open after their fire
            rows_by_key.setdefault(row["period_key"], []).append(row)
        for fire, kind, key in fires:
            rows = rows_by_key.get(key)
            if rows:
                if not ledger.pending_recipients(rows, now=now):
                    continue  # emailed, rejected for good, or a live run is on it
            elif sub.updated_at is not None and fire < sub.updated_at:
                continue  # maybe paused back then: not caught up (schedule.due's rule)
            if archive_ready(storage, sub, sub.business_id, period_for(kind, key)):
                continue  # the archive is not complete yet: the archive catch-up comes first
            out.append(MissedDelivery(fire, sub.id, sub.business_id, kind, key))
    return sorted(out, key=lambda m: (m.fire, m.subscription_id))


def _archive_request(item: ArchiveCatchup, attempt: int) -> dg.RunRequest:
    day = item.day.isoformat()
    return dg.RunRequest(
        run_key=f"catchup:archive:{day}" + (f":retry{attempt - 1}" if attempt > 1 else ""),
        job_name=archive_job.name,
        partition_key=day,
        asset_selection=[asset_key(d) for d in item.datasets],
        run_config={"ops": {"daily_archive": {"config": {"business_ids": list(item.business_ids)}}}},
        tags={CATCHUP_TAG: "archive", DAY_TAG: day, "pos_exports/catchup_attempt": str(attempt)},
    )


def _delivery_request(item: MissedDelivery) -> dg.RunRequest:
    base = run_request(item.subscription_id, item.kind, item.key, item.business_id)
    return dg.RunRequest(
        run_key=base.run_key,
        job_name=delivery_job.name,
        run_config=base.run_config,
        tags={**base.tags, CATCHUP_TAG: "delivery"},
    )


def busy_days(instance: dg.DagsterInstance) -> set[str]:
    """Partition keys that an in-flight run (a schedule tick, a backfill, a hand-launched run) is working on."""
    days: set[str] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
        tags = run.tags
        if key := tags.get("dagster/partition"):
            days.add(key)
        first, last = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
        if first and last:
            try:
                day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
            except ValueError:
                continue
            while day <= end and len(days) < 10_000:
                days.add(day.isoformat())
                day += dt.timedelta(days=1)
    return days


def _latest_failed(instance: dg.DagsterInstance, day: str) -> bool:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={CATCHUP_TAG: "archive", DAY_TAG: day}), limit=1)
    return bool(runs) and runs[0].status == dg.DagsterRunStatus.FAILURE


def plan(
    storage: Storage, eng, instance: dg.DagsterInstance, cursor: dict, now: dt.datetime, limit: int
) -> tuple[list[dg.RunRequest], dict, str]:
    """The run requests of one evaluation, the new cursor, and a one-line account."""
    archived: dict[str, int] = dict(cursor.get("archive", {}))
    delivered: dict[str, str] = dict(cursor.get("deliveries", {}))
    start = archive_partitions.start.date() if archive_partitions.start else None
    cov = retention.coverage(storage, now.date(), retention.retention_days(), now=now, start=start)
    horizon = dt.datetime.combine(cov.window_start, dt.time(0), tzinfo=UTC)
    # forget what is past the horizon: it can no longer be asked for
    archived = {d: n for d, n in archived.items() if d >= cov.window_start.isoformat()}
    delivered = {k: f for k, f in delivered.items() if f >= horizon.isoformat()}

    requests: list[dg.RunRequest] = []
    waiting = 0
    items = archive_catchups(cov)
    busy = busy_days(instance) if items else set()
    for item in items:
        day = item.day.isoformat()
        attempts = archived.get(day, 0)
        if attempts and (attempts >= MAX_ARCHIVE_ATTEMPTS or not _latest_failed(instance, day)):
            continue  # requested already (still running, succeeded, or gave up): the retention guard reports it
        if day in busy:
            continue  # the schedule's (or a backfill's) run for that day is still on it
        if len(requests) >= limit:
            waiting += 1
            continue
        archived[day] = attempts + 1
        requests.append(_archive_request(item, attempts + 1))
    for item in missed_deliveries(storage, eng, horizon, now):
        if item.run_key in delivered:
            continue
        if len(requests) >= limit:
            waiting += 1
            continue
        delivered[item.run_key] = item.fire.isoformat()
        requests.append(_delivery_request(item))
    account = f"{len(requests)} catch-up run(s) requested, {waiting} waiting for a later tick"
    return requests, {"archive": archived, "deliveries": delivered, "checked_at": now.isoformat()}, account


@dg.sensor(
    name="catchup_sensor",
    jobs=[archive_job, delivery_job],
    minimum_interval_seconds=15 * 60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 15 minutes: archive days and deliveries missed back to the retention horizon "
    "(oldest first, POS_EXPORTS_CATCHUP_MAX_RUNS per tick, none while catch-up runs are in flight).",
)
def catchup_sensor(context: dg.SensorEvaluationContext, storage: StorageResource):
    busy = context.instance.get_runs(
        filters=dg.RunsFilter(tags={CATCHUP_TAG: ["archive", "delivery"]}, statuses=IN_FLIGHT), limit=1
    )
    if busy:
        return dg.SkipReason(f"catch-up run {busy[0].run_id} is still {busy[0].status.value.lower()}")
    cursor = json.loads(context.cursor) if context.cursor else {}
    requests, new_cursor, account = plan(storage.get(), engine(), context.instance, cursor, clock(), max_runs())
    context.update_cursor(json.dumps(new_cursor, sort_keys=True))
    if not requests:
        return dg.SkipReason(f"nothing to catch up ({account})")
    context.log.info(account)
    return requests
