"""The weekly summary: what was exported, delivered and archived in a Monday-Sunday week.

Every business with an active subscription gets its own (to its notification settings' default
recipients, else its subscriptions' recipients), the data team (`POS_EXPORTS_DATA_TEAM_EMAIL`) a
fleet-wide one. They go through the alert queue (`notify.queue` + `notify.flush`), so a summary
whose sending fails stays pending and `alert_outbox_sensor` sends it later. A summary already queued
for that week and business is not queued again (re-running the job is safe), unless `force`.

What a summary says:
- exports produced: the manifests of periods ending in the week (its 7 daily periods, the week
  itself, a month ending in it, on-demand and filtered renders), files and bytes per kind, dataset, format
- deliveries: ledger rows created in the week (a business: its local week; the fleet: the UTC week),
  emailed, failed, retried, pending, success rate, recipients, bytes emailed, durations
- archive coverage: archived business-days of the week per dataset, expected 7 per business
  (the fleet: per active business); a missing day whose archive run has not come yet (day D is
  archived at 12:30 UTC on D+1) is marked as such.
"""

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pos_exports.archive import index
from pos_exports.archive.read import load_businesses
from pos_exports.archive.tables import DATASETS
from pos_exports.core.figures import percent_text
from pos_exports.delivery import notify
from pos_exports.delivery.email import SmtpSettings, human_size
from pos_exports.delivery.subscriptions import find, get_settings
from pos_exports.operations.stats import delivery_stats, export_stats
from pos_exports.periods import PeriodError, parse_date
from pos_exports.reports.period import weekly
from pos_exports.state import alerts
from pos_exports.storage import Storage

UTC = dt.UTC
KIND = "summary"  # the alerts' kind
ARCHIVE_RUNS_AT = dt.time(12, 30)  # UTC, the day after: `daily_archive_schedule` (00:30 in Etc/GMT+12)


@dataclass
class Coverage:
    """Archived business-days of the week for one dataset."""

    dataset: str
    archived: int
    expected: int
    missing: list[tuple[int, dt.date]] = field(default_factory=list)  # (business id, day)
    not_due: list[tuple[int, dt.date]] = field(default_factory=list)  # missing, but its archive run is later


@dataclass
class Summary:
    business_id: int | None  # None: the fleet
    business_name: str
    timezone: str
    week_start: dt.date
    deliveries: dict[str, Any]
    exports: dict[str, Any]
    coverage: dict[str, Coverage]
    businesses: list[dict[str, Any]] = field(default_factory=list)  # the fleet: one line per business

    @property
    def week_end(self) -> dt.date:
        return self.week_start + dt.timedelta(days=6)

    @property
    def label(self) -> str:
        return weekly(self.week_start).label

    @property
    def subject(self) -> str:
        return f"[pos_exports] Weekly summary {self.label} ({self.week_start.isoformat()}): {self.business_name}"

    def text(self) -> str:
        d, e = self.deliveries, self.exports
        who = self.business_name if self.business_id is None else f"{self.business_name} (business {self.business_id})"
        lines = [
            f"Weekly summary for {who}",
            f"Week: {self.label} (Monday {self.week_start.isoformat()} to Sunday {self.week_end.isoformat()}, "
            f"{self.timezone})",
            "",
            "Exports produced (periods ending in the week)",
            f"  Periods: {e['periods']}",
            f"  Files: {e['files']}",
            f"  Size: {human_size(e['bytes'])} ({e['bytes']} bytes)",
        ]
        if e["by_kind"]:
            lines += [
                "  By period: "
                + ", ".join(
                    f"{k} {v['periods']} ({v['files']} files, {human_size(v['bytes'])})"
                    for k, v in e["by_kind"].items()
                ),
                "  By dataset: "
                + ", ".join(f"{k} {v['files']} files ({human_size(v['bytes'])})" for k, v in e["by_dataset"].items()),
                "  By format: "
                + ", ".join(f"{k} {v['files']} files ({human_size(v['bytes'])})" for k, v in e["by_format"].items()),
            ]
        lines += [
            "",
            "Deliveries (one per subscription, period and recipient, started in the week)",
            f"  Delivered: {d['emailed']}",
            f"  Failed: {d['failed']}",
            f"  Retried: {d['retried']}",
            f"  Not sent yet: {d['pending']}",
            f"  Skipped (no data): {d['skipped']}",
            f"  Success rate: {_rate(d['success_rate'])}",
            f"  Recipients: {d['recipients']}",
            f"  Emailed: {d['files']} file(s), {human_size(d['bytes'])} ({d['bytes']} bytes)",
        ]
        if d["median_seconds"] is not None:
            lines.append(f"  Time to render: median {d['median_seconds']:.1f} s, p95 {d['p95_seconds']:.1f} s")
        for title, group in (("By dataset", "by_dataset"), ("By format", "by_format")):
            if d[group]:
                lines.append(
                    f"  {title}: "
                    + ", ".join(
                        f"{k} {c['emailed']} delivered / {c['failed']} failed ({human_size(c['bytes'])})"
                        for k, c in d[group].items()
                    )
                )
        lines += ["", "Archive coverage (business-days archived of the week)"]
        for cov in self.coverage.values():
            line = f"  {cov.dataset}: {cov.archived} of {cov.expected}"
            late = [m for m in cov.missing if m not in cov.not_due]
            if late:
                line += "; missing " + self._days(late)
            if cov.not_due:
                line += "; not archived yet (its run is later) " + self._days(cov.not_due)
            lines.append(line)
        if self.businesses:
            lines += ["", "Per business"]
            for b in self.businesses:
                lines.append(
                    f"  {b['name']} (business {b['business_id']}): {b['emailed']} delivered, {b['failed']} failed, "
                    f"{b['retried']} retried, success {_rate(b['success_rate'])}, {b['exports']} export period(s), "
                    f"{b['missing_days']} archive day(s) missing"
                )
        return "\n".join(lines) + "\n"

    def _days(self, missing: list[tuple[int, dt.date]]) -> str:
        """`2025-03-05, 2025-03-09` (a business); `business 1: 6 days, business 2: 2025-03-05` (the fleet)."""
        if self.business_id is not None:
            return ", ".join(day.isoformat() for _, day in missing)
        per: dict[int, list[dt.date]] = {}
        for business_id, day in missing:
            per.setdefault(business_id, []).append(day)
        return ", ".join(
            f"business {b}: " + (days[0].isoformat() if len(days) == 1 else f"{len(days)} days")
            for b, days in per.items()
        )


def _rate(value: float | None) -> str:
    return "n/a" if value is None else percent_text(value)  # `15.47%`, as the files write it


def last_complete_week(now: dt.datetime) -> dt.date:
    """The Monday of the last Monday-Sunday week that has ended (in UTC) by `now`."""
    today = now.astimezone(UTC).date()
    return today - dt.timedelta(days=today.weekday() + 7)


def _check_monday(week_start: dt.date) -> dt.date:
    weekly(week_start)  # raises PeriodError naming the week that holds the day
    return week_start


def coverage(eng: sa.Engine, business_ids: list[int], week_start: dt.date, now: dt.datetime) -> dict[str, Coverage]:
    """Archived business-days of the week per dataset over `business_ids` (expected: 7 each), from the state
    database's archive index (one query per dataset, no storage call)."""
    days = weekly(week_start).days
    now = now.astimezone(UTC)
    result = {}
    for name in DATASETS:
        cov = Coverage(name, 0, 7 * len(business_ids))
        have = index.archived_days(eng, name, business_ids, days)
        for business_id in business_ids:
            for day in days:
                if (business_id, day) in have:
                    cov.archived += 1
                    continue
                cov.missing.append((business_id, day))
                if now < dt.datetime.combine(day + dt.timedelta(days=1), ARCHIVE_RUNS_AT, UTC):
                    cov.not_due.append((business_id, day))
        result[name] = cov
    return result


def week_summary(
    eng: sa.Engine,
    storage: Storage,
    business_id: int | None,
    week_start: dt.date,
    *,
    now: dt.datetime,
) -> Summary:
    """The summary of one business (or the fleet, `business_id` None) for the week starting Monday `week_start`."""
    _check_monday(week_start)
    week = weekly(week_start)
    businesses = {b.id: b for b in load_businesses(storage)}
    exports = export_stats(storage, week.first_day, week.end_day, business_id=business_id)
    if business_id is not None:
        business = businesses.get(business_id)
        zone = business.timezone if business else "UTC"
        window = week.window(zone)
        return Summary(
            business_id,
            business.name if business else f"business {business_id}",
            zone,
            week_start,
            delivery_stats(eng, window.start, window.end, business_id),
            exports,
            coverage(eng, [business_id], week_start, now),
        )
    start = dt.datetime.combine(week.first_day, dt.time(), UTC)
    end = dt.datetime.combine(week.end_day, dt.time(), UTC)
    active = sorted(b.id for b in businesses.values() if b.is_active)
    covered = coverage(eng, active, week_start, now)
    per_business = []
    for b in sorted(businesses.values(), key=lambda b: b.id):
        if not b.is_active:
            continue
        window = week.window(b.timezone)
        stats = delivery_stats(eng, window.start, window.end, b.id)
        produced = export_stats(storage, week.first_day, week.end_day, business_id=b.id)
        per_business.append(
            {
                "business_id": b.id,
                "name": b.name,
                "emailed": stats["emailed"],
                "failed": stats["failed"],
                "retried": stats["retried"],
                "success_rate": stats["success_rate"],
                "exports": produced["periods"],
                "missing_days": sum(1 for cov in covered.values() for bid, _ in cov.missing if bid == b.id),
            }
        )
    return Summary(
        None,
        "all businesses",
        "UTC",
        week_start,
        delivery_stats(eng, start, end),
        exports,
        covered,
        per_business,
    )


def summary_recipients(eng: sa.Engine) -> dict[int, list[str]]:
    """business id -> who gets its summary, for every business with an active subscription."""
    by_business: dict[int, list[str]] = {}
    for sub in find(eng, active=True):
        by_business.setdefault(sub.business_id, [])
        by_business[sub.business_id] += [r for r in sub.recipients if r not in by_business[sub.business_id]]
    result = {}
    for business_id, recipients in sorted(by_business.items()):
        settings = get_settings(eng, business_id)
        result[business_id] = list(settings.default_recipients) or recipients
    return result


def _queued_already(eng: sa.Engine, business_id: int | None, subject: str) -> bool:
    query = sa.select(sa.func.count()).where(alerts.c.kind == KIND, alerts.c.subject == subject)
    query = query.where(alerts.c.business_id.is_(None) if business_id is None else alerts.c.business_id == business_id)
    with eng.connect() as conn:
        return bool(conn.execute(query).scalar())


def send_weekly_summaries(
    eng: sa.Engine,
    storage: Storage,
    week_start: dt.date,
    smtp: SmtpSettings | None,
    outbox_dir: Path,
    *,
    now: dt.datetime,
    force: bool = False,
    sleep=None,
) -> dict[str, Any]:
    """Queue each business's summary and the data team's, then flush the alert queue.

    Returns `queued` (business id or "data_team" -> alert id), `skipped` (already queued for this
    week, or nobody to send to: business id or "data_team" -> why) and `flush` (notify.flush counts).
    """
    _check_monday(week_start)
    queued: dict[Any, int] = {}
    skipped: dict[Any, str] = {}
    targets: list[tuple[Any, int | None, list[str]]] = [
        (business_id, business_id, recipients) for business_id, recipients in summary_recipients(eng).items()
    ]
    targets.append(("data_team", None, notify.data_team()))
    for label, business_id, recipients in targets:
        if not recipients:
            skipped[label] = "no recipients"
            continue
        summary = week_summary(eng, storage, business_id, week_start, now=now)
        if not force and _queued_already(eng, business_id, summary.subject):
            skipped[label] = "already queued for this week"
            continue
        alert_id = notify.queue(eng, KIND, summary.subject, summary.text(), recipients, business_id, now=now)
        if alert_id is not None:
            queued[label] = alert_id
    counts = notify.flush(eng, smtp, outbox_dir, sleep=sleep, now=now)
    return {"week_start": week_start.isoformat(), "queued": queued, "skipped": skipped, "flush": counts}


# --- The week a run asks for (the job: defs/summary.py) ---------------------------------------------


def resolve_week(text: str, now: dt.datetime) -> dt.date:
    """The configured Monday (YYYY-MM-DD), or the last completed week when empty; a week not over is refused."""
    if not text.strip():
        return last_complete_week(now)
    week_start = _check_monday(parse_date(text.strip()))
    if week_start > last_complete_week(now):
        raise PeriodError(f"the week of {week_start.isoformat()} has not ended yet")
    return week_start
