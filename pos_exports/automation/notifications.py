"""Failure alerts for any failed run of this code location, and the sensor that (re)sends queued alerts."""

import re

import dagster as dg

from pos_exports.automation.delivery import outbox_dir
from pos_exports.delivery import notify
from pos_exports.delivery.email import SmtpSettings
from pos_exports.delivery.state import engine
from pos_exports.source.resource import StorageResource

WHAT_TO_DO = (
    "What to do: open the run in the Dagster UI (Runs), read the failed step's error, fix the cause "
    "(source database reachable? archive complete? SMTP settings?) and re-execute the run from the UI. "
    "Deliveries never email a recipient twice, so a re-run is safe."
)


def failure_alert(run: dg.DagsterRun, error: str) -> tuple[str, str, int | None]:
    """Subject, body and business (when the run is about one) of the alert for a failed run."""
    tags = run.tags
    business = tags.get("pos_exports/business")
    period = (
        tags.get("pos_exports/period")
        or tags.get("dagster/partition")
        or (
            f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
            if "dagster/asset_partition_range_start" in tags
            else ""
        )
    )
    subject = (
        f"[pos_exports] FAILED: {run.job_name}"
        + (f" {period}" if period else "")
        + (f" (business {business})" if business else "")
    )
    body = "\n".join(
        [
            f"The run {run.run_id} of {run.job_name} failed.",
            f"Period: {period or 'n/a'}",
            *([f"Business: {business}"] if business else []),
            "",
            "Error:",
            error.strip()[:4000],
            "",
            WHAT_TO_DO,
        ]
    )
    return subject, body, int(business) if business else None


@dg.run_failure_sensor(
    name="failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Emails the data team (POS_EXPORTS_DATA_TEAM_EMAIL) and the business's failure recipients "
    "when an archive, export or delivery run fails.",
)
def failure_alert_sensor(context: dg.RunFailureSensorContext, storage: StorageResource):
    eng = engine()
    error = context.failure_event.message or ""
    for step_failure in context.get_step_failure_events():
        cause = step_failure.step_failure_data.error
        while cause is not None:  # after retries, the original error is the cause of "Exceeded max_retries"
            error += "\n" + cause.message
            cause = cause.cause
    subject, body, business_id = failure_alert(context.dagster_run, error)
    # A fleet-wide run (archive, exports) names each failed business in its error: tell each of them too.
    named = {int(b) for b in re.findall(r"\bbusiness (\d+)\b", error)}
    recipients = notify.failure_recipients(eng, business_id, *sorted(named - {business_id}))
    notify.queue(eng, "failure", subject, body, recipients, business_id)
    counts = notify.flush(eng, SmtpSettings.from_env(), outbox_dir(storage))
    context.log.info(f"alerts: {counts}")


@dg.sensor(
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 10 minutes: sends queued notifications whose earlier sending failed.",
)
def alert_outbox_sensor(context: dg.SensorEvaluationContext, storage: StorageResource):
    counts = notify.flush(engine(), SmtpSettings.from_env(), outbox_dir(storage))
    return dg.SkipReason(
        f"alerts sent {counts['sent']}, still pending {counts['pending']}, given up {counts['failed']}"
    )
