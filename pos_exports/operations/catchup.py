"""Catch-up: archive days and deliveries that were missed (daemon down, schedule off, a failed run).

Dagster runs only the latest missed tick of a schedule after downtime, so `catchup_sensor` (every
15 minutes) looks back to the retention horizon (`POS_RETENTION_DAYS`, see `retention.coverage`) and
requests what is missing, **what would be lost first first** (a snapshot's capture deadline, an event
day's purge by the POS), at most `POS_EXPORTS_CATCHUP_MAX_RUNS` (default 3) runs per evaluation. While
an earlier catch-up run (tag `pos_exports/catchup`) is still queued or in progress only snapshot
captures are requested (they cannot wait); a run STARTED longer ago than its time limit (its
`dagster/max_runtime` tag, else the instance's `run_monitoring.max_runtime_seconds`) is dead, not in
flight, and holds nothing up (run monitoring fails it, run retries re-run it once).

1. **Archive days.** Every partition with an overdue gap (`retention.Gap.overdue`: the daily schedule
   should have archived it, i.e. 3 h after the partition appeared) of an event dataset for any
   active business, or of a snapshot dataset that can still be captured (within 48 h of the end of
   the day), gets one `daily_archive_job` run: `partition_key=day`, run key `catchup:archive:{day}`,
   tags `pos_exports/catchup=archive`, `pos_exports/catchup_day={day}`. The run selects only the
   datasets with a gap that day and only the businesses with a gap (`business_ids`), so nothing
   already archived is rewritten needlessly. A business whose snapshot of that day is lost would fail
   a run asking for it, so then the day's events get that run and the capturable snapshots of the
   other businesses a run of their own (`catchup:archive:{day}:snapshot`). Snapshot runs carry a
   higher `dagster/priority`. A day that a live run already works on (its `dagster/partition` tag or
   partition range: the schedule's tick, a backfill) is left to that run, except the snapshots when
   that run archives only the event datasets (a backfill as the README advises): those are captured
   beside it. A lost snapshot is never requested; it is reported to the data team once (the state
   database's `reported` table remembers it).
2. **Missed deliveries** (after the archive runs; none while catch-up runs are in flight). For every
   active subscription, every fire in
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
`MAX_ARCHIVE_ATTEMPTS` = 2 runs per day); after that the retention guard tells the data team. A run
that captures snapshots is retried (`...:retryN`) as long as they can still be captured, 30 min after
its first failure, then 1 h, 2 h, ... after each further one (`may_retry`): giving up would lose them.
A delivery is requested once by the catch-up (its failure is alerted by `failure_alert_sensor`).
"""

import datetime as dt
from dataclasses import dataclass

from pos_exports import config
from pos_exports.archive.read import load_businesses
from pos_exports.delivery import ledger, notify
from pos_exports.delivery.deliver import archive_gaps
from pos_exports.delivery.schedule import ScheduleError, due
from pos_exports.delivery.subscriptions import Subscription, find
from pos_exports.operations import retention
from pos_exports.reports.period import period_for
from pos_exports.storage import Storage

UTC = dt.UTC
MAX_RUNS_ENV = "POS_EXPORTS_CATCHUP_MAX_RUNS"
CATCHUP_TAG = "pos_exports/catchup"
DAY_TAG = "pos_exports/catchup_day"
ITEM_TAG = "pos_exports/catchup_item"
PRIORITY_TAG = "dagster/priority"
SNAPSHOT_PRIORITY = "10"  # the run queue dequeues higher priorities first
MAX_RUNTIME_TAG = "dagster/max_runtime"
LOST_PREFIX = "lost_snapshot:"
MAX_ARCHIVE_ATTEMPTS = 2
SNAPSHOT_RETRY_BACKOFF = dt.timedelta(minutes=30)
DELIVERY_GRACE = dt.timedelta(hours=1)


def max_runs() -> int:
    return config.settings().catchup_max_runs


@dataclass(frozen=True)
class ArchiveCatchup:
    day: dt.date
    datasets: tuple[str, ...]
    business_ids: tuple[int, ...]
    deadline: dt.datetime  # when the first of its gaps is lost (a snapshot's capture window, a purge)
    part: str = "day"  # day | snapshot (the capturable snapshots alone, see `archive_catchups`)
    snapshots: "ArchiveCatchup | None" = None  # a day's snapshot part, requested alone when the day is busy

    @property
    def key(self) -> str:
        """The cursor key and run key stem: `2025-03-09`, or `2025-03-09:snapshot` for a snapshot part."""
        return self.day.isoformat() + ("" if self.part == "day" else f":{self.part}")

    @property
    def captures_snapshots(self) -> bool:
        return any(retention.DATASETS[d].kind == "snapshot" for d in self.datasets)


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


def deadline(gap: retention.Gap, today: dt.date) -> dt.datetime:
    """When `gap` can no longer be archived: a snapshot's capture deadline, else the POS's purge of the day."""
    if gap.capture is not None:
        return gap.capture.closes
    return dt.datetime.combine(today + dt.timedelta(days=gap.days_left), dt.time(0), tzinfo=UTC)


def _item(day, gaps, today, part="day", snapshots=None) -> ArchiveCatchup:
    datasets = sorted({g.dataset for g in gaps}, key=retention.ALL_DATASETS.index)
    ids = tuple(sorted({g.business_id for g in gaps}))
    return ArchiveCatchup(day, tuple(datasets), ids, min(deadline(g, today) for g in gaps), part, snapshots)


def archive_catchups(cov: retention.Coverage) -> list[ArchiveCatchup]:
    """The archive runs that would fill the overdue, recoverable gaps of `cov`, the first to be lost first.

    One run per day (its event gaps and capturable snapshots), except when a business of the day's event
    gaps has lost its snapshot: asking it for the snapshot would fail, so the capturable snapshots of
    the other businesses get a run of their own (`part="snapshot"`). Lost snapshots are never requested.
    """
    by_day: dict[dt.date, list[retention.Gap]] = {}
    for gap in cov.gaps:
        if gap.overdue and gap.recoverable:
            by_day.setdefault(gap.day, []).append(gap)
    lost = {(g.day, g.business_id) for g in cov.gaps if g.kind == "snapshot" and not g.recoverable}
    out = []
    for day, gaps in by_day.items():
        events = [g for g in gaps if g.kind == "event"]
        snaps = [g for g in gaps if g.kind == "snapshot"]
        part = _item(day, snaps, cov.today, "snapshot") if snaps else None
        if not events:
            out.append(_item(day, snaps, cov.today, snapshots=part))
        elif snaps and not any((day, g.business_id) in lost for g in events):
            out.append(_item(day, gaps, cov.today, snapshots=part))
        else:
            out.append(_item(day, events, cov.today))
            if part:
                out.append(part)
    return sorted(out, key=lambda i: (i.deadline, i.day, i.part))


def missed_deliveries(storage: Storage, eng, horizon: dt.datetime, now: dt.datetime) -> list[MissedDelivery]:
    """Fires of active subscriptions in `(horizon, now - DELIVERY_GRACE]` still undelivered whose archive is
    complete, oldest first (see the module doc)."""
    businesses = {b.id: b for b in load_businesses(storage) if b.is_active}
    until = now - DELIVERY_GRACE
    fired: list[tuple[dt.datetime, Subscription, str, str]] = []
    for sub in find(eng, active=True):
        business = businesses.get(sub.business_id)
        if business is None:
            continue
        start = max(horizon, sub.created_at or horizon)
        if start >= until:
            continue
        try:
            fired += [(fire, sub, kind, key) for fire, kind, key in due(sub, business.timezone, start, until)]
        except ScheduleError:
            continue  # a broken subscription: the due sensor and the CLI report it
    # the ledger rows of exactly these fires (one query), not each subscription's history
    rows_by_pair = ledger.rows_for(eng, [(sub.id, key) for _, sub, _, key in fired])
    candidates = []
    for fire, sub, kind, key in fired:
        rows = rows_by_pair.get((sub.id, key))
        if rows:
            if not ledger.pending_recipients(rows, now=now):
                continue  # emailed, rejected for good, or a live run is on it
        elif sub.updated_at is not None and fire < sub.updated_at:
            continue  # maybe paused back then: not caught up (schedule.due's rule)
        candidates.append((fire, sub, kind, key))
    # the archive index once per dataset for all of them; an incomplete archive: the archive catch-up comes first
    gaps = archive_gaps(
        [
            (sub, sub.business_id, businesses[sub.business_id].timezone, period_for(kind, key))
            for _, sub, kind, key in candidates
        ],
        now,
        eng,
    )
    out = [
        MissedDelivery(fire, sub.id, sub.business_id, kind, key)
        for (fire, sub, kind, key), found in zip(candidates, gaps, strict=True)
        if all(g.lost for g in found)
    ]
    return sorted(out, key=lambda m: (m.fire, m.subscription_id))


def may_retry(item: ArchiveCatchup, attempts: int, failed_at: float | None, now: dt.datetime) -> bool:
    """Whether a failed catch-up is requested again: an event day once (`MAX_ARCHIVE_ATTEMPTS`); a capturable
    snapshot as long as its window is open, after 30 min, 1 h, 2 h, ... (it is lost if it waits)."""
    if failed_at is None:
        return False
    if not item.captures_snapshots:
        return attempts < MAX_ARCHIVE_ATTEMPTS
    backoff = SNAPSHOT_RETRY_BACKOFF * 2 ** (attempts - 1)
    return now < item.deadline and now.timestamp() - failed_at >= backoff.total_seconds()


def lost_snapshots(cov: retention.Coverage) -> list[retention.Gap]:
    """Snapshot gaps past their capture window: never requested, reported once (`report_lost`)."""
    return [g for g in cov.gaps if g.kind == "snapshot" and g.overdue and not g.recoverable]


def _lost_key(gap: retention.Gap) -> str:
    return f"{LOST_PREFIX}{gap.day.isoformat()}:{gap.dataset}:{gap.business_id}"


def report_lost(eng, cov: retention.Coverage, now: dt.datetime) -> list[retention.Gap]:
    """Queue one alert to the data team about the snapshots lost since the last report; return those."""
    gaps = {_lost_key(g): g for g in lost_snapshots(cov)}

    def describe(keys: list[str]) -> tuple[str, str]:
        lost = [gaps[k] for k in keys]
        subject = f"[pos_exports] {len(lost)} snapshot(s) lost: never captured, cannot be recovered"
        body = "\n".join(
            [
                "These customers/inventory snapshots were never captured within 48 h of the end of their day. "
                "The POS keeps no history of that state, so they are lost for good: nothing will retry them, "
                "and this is the only report of them.",
                "",
                *(
                    f"- {g.dataset} of {g.day} for business {g.business_id} {g.business_name} "
                    f"(capture window closed {g.capture.closes:%Y-%m-%d %H:%M} UTC)"
                    for g in lost
                ),
            ]
        )
        return subject, body

    new = notify.queue_once(eng, LOST_PREFIX, list(gaps), describe, notify.data_team(), now=now)
    notify.forget_reported(eng, LOST_PREFIX, cov.window_start.isoformat())  # past the horizon: never listed again
    return [gaps[k] for k in new]
