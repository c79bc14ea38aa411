"""Dagster wiring of the weekly summaries (operations.summary): `weekly_summary_job` and its Monday schedule."""

import dagster as dg
from pydantic import Field

from pos_exports.defs.deliveries import outbox_dir as storage_outbox
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.delivery.email import SmtpSettings
from pos_exports.operations.summary import (
    resolve_week,
    send_weekly_summaries,
)
from pos_exports.periods import PeriodError
from pos_exports.state import engine


class WeeklySummaryConfig(dg.Config):
    week_start: str = Field(
        default="", description="The week's Monday, YYYY-MM-DD; empty: the last completed Monday-Sunday week (UTC)."
    )
    force: bool = Field(default=False, description="Send again even if this week's summaries were already queued.")


@dg.op(description="Email each business with a subscription its weekly summary, and the data team the fleet's.")
def send_weekly_summary(
    context: dg.OpExecutionContext, config: WeeklySummaryConfig, storage: StorageResource, clock: ClockResource
):
    now = clock.now()
    try:
        week_start = resolve_week(config.week_start, now)
    except PeriodError as exc:
        raise dg.Failure(description=f"week_start: {exc}") from None
    result = send_weekly_summaries(
        engine(),
        storage.get(),
        week_start,
        SmtpSettings.from_env(),
        storage_outbox(storage),
        now=now,
        force=config.force,
    )
    context.log.info(f"weekly summaries of {week_start}: {result}")
    if result["flush"]["pending"] or result["flush"]["failed"]:
        context.log.warning("some notifications were not sent; alert_outbox_sensor retries the pending ones")
    context.add_output_metadata(
        {
            "week_start": week_start.isoformat(),
            "queued": len(result["queued"]),
            "sent": result["flush"]["sent"],
            "pending": result["flush"]["pending"],
            "skipped": dg.MetadataValue.json({str(k): v for k, v in result["skipped"].items()}),
        }
    )
    return result["week_start"]


@dg.job(
    description="Weekly summaries: each business with a subscription, and the data team (fleet-wide).",
    tags={"pos_exports/kind": "summary"},
)
def weekly_summary_job():
    send_weekly_summary()


weekly_summary_schedule = dg.ScheduleDefinition(
    name="weekly_summary_schedule",
    job=weekly_summary_job,
    cron_schedule="0 14 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Monday 14:00 UTC (after Sunday's archive at 12:30 UTC): the summaries of the week that just ended.",
)
