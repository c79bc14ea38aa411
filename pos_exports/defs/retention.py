"""Dagster wiring of the retention guard (operations.retention): the asset check `retention_guard` on
`sales_archive`, the job `retention_guard_job` running it, and `retention_guard_sensor` (every 6 hours) that emails
the data team once per UTC day and status when the guard warns or errs, and runs the check so the UI shows the
latest gaps."""

import json

import dagster as dg

from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.operations.retention import (
    Coverage,
    alert_text,
    coverage,
    retention_days,
)
from pos_exports.state import engine


def check_result(cov: Coverage) -> dg.AssetCheckResult:
    oldest = cov.oldest
    severity = dg.AssetCheckSeverity.ERROR if cov.status == "error" else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=cov.passed,
        severity=severity,
        description=cov.summary(),
        metadata={
            "status": cov.status,
            "gaps": len(cov.gaps),
            "overdue_gaps": sum(g.overdue for g in cov.gaps),
            "oldest_gap": oldest.day.isoformat() if oldest else "none",
            "oldest_gap_business": oldest.business_id if oldest else 0,
            "oldest_gap_dataset": oldest.dataset if oldest else "none",
            "days_left": oldest.days_left if oldest else cov.retention_days,
            "retention_days": cov.retention_days,
            "window": f"{cov.window_start}..{cov.today}",
            "gaps_table": dg.MetadataValue.md(cov.table_md()),
            "how_to_fix": cov.how_to_fix(),
            **({"notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in cov.notes))} if cov.notes else {}),
        },
    )


@dg.asset_check(
    asset=dg.AssetKey("sales_archive"),
    name="retention_guard",
    description="Every day the POS still holds (POS_RETENTION_DAYS, default 90) is archived for every active "
    "business; warns 14 days and fails 3 days before the POS purges a day the archive lacks.",
)
def retention_guard(storage: StorageResource, clock: ClockResource) -> dg.AssetCheckResult:
    now = clock.now()
    return check_result(coverage(storage.get(), now.date(), retention_days(), now=now))


retention_guard_job = dg.define_asset_job(
    "retention_guard_job",
    selection=dg.AssetSelection.checks(retention_guard),
    description="Run the retention guard: archive days the POS will purge soon but the archive lacks.",
)


@dg.sensor(
    name="retention_guard_sensor",
    job=retention_guard_job,
    minimum_interval_seconds=6 * 3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 6 hours: emails the data team (once per day and status) when archive days the POS "
    "will purge soon are missing, and runs the retention_guard check.",
)
def retention_guard_sensor(context: dg.SensorEvaluationContext, storage: StorageResource, clock: ClockResource):
    from pos_exports.defs.deliveries import outbox_dir
    from pos_exports.delivery import notify
    from pos_exports.delivery.email import SmtpSettings

    cursor = json.loads(context.cursor) if context.cursor else {}
    alerted: list[str] = list(cursor.get("alerted", []))
    now = clock.now()
    cov = coverage(storage.get(), now.date(), retention_days(), now=now)
    key = f"{cov.today}:{cov.status}"
    context.log.info(cov.summary())
    if cov.status in ("warn", "error") and key not in alerted:
        eng = engine()
        subject, body = alert_text(cov)
        if notify.queue(eng, "retention", subject, body, notify.data_team(), now=now) is None:
            context.log.warning(f"retention guard {cov.status}, but {notify.DATA_TEAM_ENV} names nobody to tell")
        counts = notify.flush(eng, SmtpSettings.from_env(), outbox_dir(storage), now=now)
        context.log.info(f"alerts: {counts}")
        alerted = [*alerted, key][-20:]
    context.update_cursor(json.dumps({"alerted": alerted, "status": cov.status, "checked_at": now.isoformat()}))
    # Run the check once per day and status, so the asset's Checks tab shows the gaps too.
    return dg.RunRequest(run_key=f"retention_guard:{key}", tags={"pos_exports/kind": "retention_guard"})
