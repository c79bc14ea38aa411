"""Retention guard: which archive days would be lost if the POS purged its rows now.

The POS keeps `POS_RETENTION_DAYS` (default 90) days of rows. A business-local day D is purged once
it is older than that, so on the UTC date `today` the POS still holds the days
`[today - retention_days + 1 .. latest day that has ended for the business]`, and a day D that is
missing from the archive (no `_reconciliation.json`) has `days_left = (D + retention_days) - today`
days before it is gone for good (1 = the last day it can be backfilled). Days before the archive's
first partition (`POS_EXPORTS_START_DATE`) are not expected and never reported.

Each gap (business, dataset, day) gets a level:

- `pending`: the day has ended for the business, but the daily archive schedule has not had its
  chance yet (it runs for D at 12:30 UTC of D+1; a day is *overdue* from `SCHEDULE_GRACE` after
  12:00 UTC of D+1, when its partition appears);
- `info`: an overdue **event** gap (sales, audit_log) with more than 14 days left;
- `warn`: an overdue event gap with 4..14 days left;
- `error`: an overdue event gap with <= 3 days left; **or** an overdue **snapshot** gap (customers,
  inventory) that can still be captured (within 48 h of the end of the day: `archive.capture`, the rule the
  archive and the export messages use too):
  it is lost for good when that window closes;
- `lost`: a snapshot gap past its capture window: it can never be recovered, so it is reported
  (for the record) but drives nothing.

Decision on snapshots: the POS keeps no history of customers or stock, so the 90-day retention
does not apply to them; only a snapshot still inside its capture window is actionable (and then
urgent: `error`). Lost snapshots and pending days never make the guard warn or fail.

The overall status is the worst level of the gaps: `ok` (no gap at all), `info` (only
pending/info/lost gaps), `warn`, `error`. With no business list beside the archive (the archive has
never run) the status is `warn`.

Dagster wiring (`pos_exports.defs.retention`): the asset check `retention_guard` on `sales_archive`, the job
`retention_guard_job` running it, and `retention_guard_sensor` (every 6 hours) that emails the data team once per
UTC day and status when the guard warns or errs, and runs the check so the UI shows the latest gaps.
"""

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from pos_exports import config as settings
from pos_exports.archive import delta, index
from pos_exports.archive.capture import SNAPSHOT_MAX_LAG, Capture, snapshot_capture
from pos_exports.archive.extract import MARKER
from pos_exports.archive.read import load_businesses
from pos_exports.archive.tables import DATASETS
from pos_exports.periods import PeriodError, zone
from pos_exports.state import archive_start, engine
from pos_exports.storage import Storage

UTC = dt.UTC
RETENTION_ENV = "POS_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = settings.default("retention_days")
ALL_DATASETS = ("sales", "audit_log", "customers", "inventory")
EVENT_DATASETS = tuple(name for name in ALL_DATASETS if DATASETS[name].kind == "event")
WARN_DAYS = 14
ERROR_DAYS = 3
# The archive schedule runs for day D at 12:30 UTC of D+1 (00:30 in Etc/GMT+12); give that run time to finish.
SCHEDULE_GRACE = dt.timedelta(hours=3)
INDEX_EMPTY = "the archive index is empty: run pos-exports archive reindex"
LEVELS = ("ok", "pending", "lost", "info", "warn", "error")  # ascending severity (for sorting)


def retention_days() -> int:
    """`POS_RETENTION_DAYS`: how many days of rows the POS keeps (default 90)."""
    return settings.settings().retention_days


def partition_end(day: dt.date) -> dt.datetime:
    """When the archive partition `day` appears: the end of the day in Etc/GMT+12 (12:00 UTC of day+1)."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(12), tzinfo=UTC)


def overdue_at(day: dt.date) -> dt.datetime:
    """From when a missing day counts as a gap the schedule should have filled."""
    return partition_end(day) + SCHEDULE_GRACE


@dataclass(frozen=True)
class Gap:
    business_id: int
    business_name: str
    dataset: str
    kind: str  # event | snapshot
    day: dt.date
    days_left: int  # before the POS purges the day's rows
    level: str  # pending | info | warn | error | lost
    recoverable: bool  # can still be archived (events: always inside the window; snapshots: capture window)
    overdue: bool  # the daily schedule should have archived it by now
    capture: Capture | None = None  # snapshots only: when it can be captured

    @property
    def drives_status(self) -> bool:
        return self.level in ("warn", "error")

    def describe(self, now: dt.datetime | None = None) -> str:
        if self.level == "pending":
            return "not archived yet (the daily schedule has not run for it)"
        if self.kind == "snapshot" and self.capture is not None and now is not None:
            return "snapshot " + self.capture.note(now)
        if self.kind == "snapshot":
            return "snapshot can still be captured" if self.recoverable else "snapshot never captured: lost"
        return f"{self.days_left} day(s) before the POS purges it"


@dataclass
class Coverage:
    today: dt.date
    now: dt.datetime
    retention_days: int
    window_start: dt.date  # first day the POS still holds (or the archive's first partition, if later)
    businesses: list[int] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.businesses:
            return "warn"
        if INDEX_EMPTY in self.notes:
            return "error"
        levels = {g.level for g in self.gaps}
        for level in ("error", "warn"):
            if level in levels:
                return level
        return "info" if self.gaps else "ok"

    @property
    def passed(self) -> bool:
        return self.status in ("ok", "info")

    @property
    def actionable(self) -> list[Gap]:
        """Gaps that can and should be archived now (overdue and recoverable), oldest first."""
        return [g for g in self.gaps if g.overdue and g.recoverable]

    @property
    def oldest(self) -> Gap | None:
        """The most urgent gap: the oldest actionable one, else the oldest of any kind."""
        pool = self.actionable or self.gaps
        return min(pool, key=lambda g: (g.days_left, g.business_id, g.dataset)) if pool else None

    def event_days(self, *, overdue_only: bool = True) -> list[dt.date]:
        """Days with an event-dataset gap (what a backfill of sales/audit_log would fix), oldest first."""
        return sorted({g.day for g in self.gaps if g.kind == "event" and (g.overdue or not overdue_only)})

    def table_md(self, limit: int = 100) -> str:
        """The gaps as a markdown table, most urgent first (a business's consecutive days on one row)."""
        if not self.gaps:
            return "No gaps: every day the POS still holds is archived."
        rows = _runs(sorted(self.gaps, key=lambda g: (-LEVELS.index(g.level), g.business_id, g.dataset, g.day)))
        lines = [
            "| level | business | dataset | days | count | days left (oldest) | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for gaps in rows[:limit]:
            g = gaps[0]
            span = g.day.isoformat() if len(gaps) == 1 else f"{g.day}..{gaps[-1].day}"
            lines.append(
                f"| {g.level} | {g.business_id} {g.business_name} | {g.dataset} | {span} | {len(gaps)} | "
                f"{g.days_left} | {g.describe(self.now)} |"
            )
        if len(rows) > limit:
            lines.append(f"| ... | {len(rows) - limit} more row(s) | | | | | |")
        return "\n".join(lines)

    def how_to_fix(self) -> str:
        if INDEX_EMPTY in self.notes:
            return "Run `pos-exports archive reindex` (reads every archive manifest once), then check again."
        days = self.event_days()
        if not days and not any(g.kind == "snapshot" and g.recoverable and g.overdue for g in self.gaps):
            return "Nothing to do."
        text = ""
        if days:
            text = (
                f"Backfill the listed days of sales_archive and audit_log_archive ({_spans(days)}): Dagster UI > "
                "Assets > sales_archive > Materialize (select sales_archive and audit_log_archive and those "
                f"partitions), or `pos-exports archive --date {days[0]} --to {days[-1]} --dataset sales "
                "--dataset audit_log`. The catch-up sensor requests them automatically when it runs."
            )
        snaps = sorted({g.day for g in self.gaps if g.kind == "snapshot" and g.recoverable and g.overdue})
        if snaps:
            text += (
                f" Archive every dataset of {_spans(snaps)} now (`pos-exports archive --date {snaps[0]} --to "
                f"{snaps[-1]}`): their customers/inventory snapshots are lost "
                f"{SNAPSHOT_MAX_LAG.total_seconds() / 3600:.0f} h after the end of the day."
            )
        return text.strip()

    def summary(self) -> str:
        oldest = self.oldest
        head = f"retention guard {self.status}: {len(self.gaps)} gap(s) in {self.window_start}..{self.today}"
        if INDEX_EMPTY in self.notes:
            return f"retention guard {self.status}: {INDEX_EMPTY}"
        if oldest:
            head += (
                f"; most urgent: {oldest.dataset} {oldest.day} business {oldest.business_id} "
                f"({oldest.describe(self.now)})"
            )
        return head


def _runs(gaps: list[Gap]) -> list[list[Gap]]:
    """Group gaps of the same level/business/dataset on consecutive days."""
    out: list[list[Gap]] = []
    for g in gaps:
        last = out[-1][-1] if out else None
        if (
            last is not None
            and (last.level, last.business_id, last.dataset) == (g.level, g.business_id, g.dataset)
            and g.day - last.day == dt.timedelta(days=1)
        ):
            out[-1].append(g)
        else:
            out.append([g])
    return out


def _spans(days: list[dt.date]) -> str:
    spans: list[list[dt.date]] = []
    for d in sorted(days):
        if spans and d - spans[-1][-1] == dt.timedelta(days=1):
            spans[-1].append(d)
        else:
            spans.append([d])
    return ", ".join(s[0].isoformat() if len(s) == 1 else f"{s[0]}..{s[-1]}" for s in spans)


def _level(kind: str, days_left: int, overdue: bool, recoverable: bool) -> str:
    if not overdue:
        return "pending"
    if kind == "snapshot":
        return "error" if recoverable else "lost"
    if days_left <= ERROR_DAYS:
        return "error"
    if days_left <= WARN_DAYS:
        return "warn"
    return "info"


def coverage(
    storage: Storage,
    today: dt.date,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    datasets: tuple[str, ...] | list[str] = ALL_DATASETS,
    *,
    now: dt.datetime | None = None,
    start: dt.date | None = None,
    eng: sa.Engine | None = None,
) -> Coverage:
    """Every archive gap of every active business inside the POS's retention window (see the module doc).

    `now` (aware) decides which days have ended and which are overdue; default: 00:00 UTC of `today`.
    `start`: the archive's first partition (default `POS_EXPORTS_START_DATE`); earlier days are not expected.
    """
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise ValueError(f"unknown dataset(s) {', '.join(unknown)} (known: {', '.join(DATASETS)})")
    now = (now or dt.datetime.combine(today, dt.time(0), tzinfo=UTC)).astimezone(UTC)
    first = settings.retention_window_start(today, retention_days)
    start = start or archive_start(today, eng)
    window_start = max(first, start)
    result = Coverage(today=today, now=now, retention_days=retention_days, window_start=window_start)
    businesses = [b for b in load_businesses(storage) if b.is_active]
    if not businesses:
        result.notes.append("no active business in archive/businesses.json: the archive has never run")
        return result
    result.businesses = [b.id for b in businesses]
    last_day: dict[int, dt.date] = {}
    for b in businesses:
        try:
            last_day[b.id] = now.astimezone(zone(b.timezone)).date() - dt.timedelta(days=1)
        except PeriodError as exc:
            result.notes.append(f"business {b.id}: {exc}; not checked")
    if not last_day:
        return result
    latest = max(last_day.values())
    days = [window_start + dt.timedelta(days=i) for i in range((latest - window_start).days + 1)]
    eng = eng or engine()
    if (
        days
        and index.is_empty(eng)
        and (delta.records(storage) or any(k.endswith("/" + MARKER) for k in storage.list("archive/")))
    ):
        # an archive written before the index existed (or a new state database): not a wall of gaps
        result.notes.append(INDEX_EMPTY)
        return result
    # What the archive holds, from the state database's index (no storage call): one count per (dataset, day)
    # first; only a day short of its expected businesses is looked at business by business.
    counts = index.day_counts(eng, datasets, last_day, window_start, latest)
    ended_everywhere = min(last_day.values())  # up to this day, every checked business is expected
    for day in days:
        days_left = (day + dt.timedelta(days=retention_days) - today).days
        overdue = now >= overdue_at(day)
        for name in datasets:
            if day <= ended_everywhere and counts.get((name, day), 0) == len(last_day):
                continue  # every checked business has this day: complete
            have = index.business_ids_on(eng, name, day)
            kind = DATASETS[name].kind
            for b in businesses:
                if b.id not in last_day or day > last_day[b.id] or b.id in have:
                    continue
                capture = snapshot_capture(day, b.timezone) if kind == "snapshot" else None
                recoverable = capture is None or capture.capturable(now)
                result.gaps.append(
                    Gap(
                        b.id,
                        b.name,
                        name,
                        kind,
                        day,
                        days_left,
                        _level(kind, days_left, overdue, recoverable),
                        recoverable,
                        overdue,
                        capture,
                    )
                )
    return result


# ---------------------------------------------------------------------------------------------
# Alerts and the CLI


def alert_text(cov: Coverage) -> tuple[str, str]:
    oldest = cov.oldest
    subject = f"[pos_exports] retention guard {cov.status.upper()}: {len(cov.actionable)} archive gap(s)"
    if oldest:
        subject += f", oldest {oldest.day} ({oldest.describe(cov.now)})"
    body = "\n".join(
        [
            cov.summary(),
            "",
            cov.table_md(),
            "",
            *(f"Note: {n}" for n in cov.notes),
            "How to fix: " + cov.how_to_fix(),
        ]
    )
    return subject, body


def print_coverage(now: dt.datetime, storage: Storage | None = None) -> int:
    """CLI: print the retention guard's findings; exit status 0 ok/info, 1 warn, 2 error."""
    from pos_exports.storage import open_storage

    cov = coverage(storage or open_storage(settings.storage_root()), now.date(), retention_days(), now=now)
    print(cov.summary())
    if cov.gaps:
        print(cov.table_md(limit=500))
    for note in cov.notes:
        print(f"note: {note}")
    print("how to fix: " + cov.how_to_fix())
    return {"error": 2, "warn": 1}.get(cov.status, 0)
