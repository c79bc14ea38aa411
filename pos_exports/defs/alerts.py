"""Failure alerts for every failed run of this code location, and the sensor that (re)sends queued alerts.

What failed per business comes from the run itself: the `failed_items` metadata that archive, export
and delivery steps attach to their failures (`pos_exports.failures`), never from the error text. Each
business gets its own plain-language message; the data team gets the fleet-wide one with the run's
technical detail. A run with no such record (a crash, a config error) is fleet-level: the data team,
plus the business the run is tagged for (`pos_exports/business`, delivery runs).

Two sensors see the failures: `failure_alert_sensor` those of runs launched by the daemon or the UI
(they carry this code location as their origin), `in_process_failure_alert_sensor` those of runs
executed in a process (the `pos-exports` CLI), which carry no origin and so are ignored by a default
run failure sensor. Each run is alerted exactly once (`alerted_runs` in the state database).
"""

import dagster as dg

from pos_exports.archive.read import load_businesses
from pos_exports.defs.deliveries import outbox_dir
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.delivery import notify
from pos_exports.delivery.email import SmtpSettings
from pos_exports.delivery.subscriptions import get as get_subscription
from pos_exports.failures import ON_OUR_SIDE, FailedItem, from_metadata
from pos_exports.redact import scrub
from pos_exports.reports.period import period_for
from pos_exports.state import engine

WHAT_TO_DO = (
    "What to do: open the run in the Dagster UI (Runs), read the failed step's error, fix the cause "
    "(source database reachable? archive complete? SMTP settings?) and re-execute the run from the UI "
    "(a CLI run: run the same command again). Deliveries never email a recipient twice, so a re-run is safe."
)


def run_period(run: dg.DagsterRun) -> str:
    """The period a run is about, from its tags ('' when none)."""
    tags = run.tags
    if "dagster/asset_partition_range_start" in tags:
        return f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
    return tags.get("pos_exports/period") or tags.get("dagster/partition") or ""


def team_message(run: dg.DagsterRun, items: list[FailedItem], error: str) -> tuple[str, str]:
    """Subject and body of the data team's fleet-wide alert: every item, the run and its technical error."""
    period = run_period(run)
    businesses = sorted({i.business_id for i in items})
    business = run.tags.get("pos_exports/business")
    subject = (
        f"[pos_exports] FAILED: {run.job_name}"
        + (f" {period}" if period else "")
        + (f" ({len(items)} failed item(s), {len(businesses)} business(es))" if items else "")
        + (f" (business {business})" if business and not items else "")
    )
    body = "\n".join(
        [
            f"The run {run.run_id} of {run.job_name} failed.",
            f"Period: {period or 'n/a'}",
            *([f"Business: {business}"] if business else []),
            "",
            *(
                ["Failed items:", *[f"- {i.team_line()}" for i in items], ""]
                if items
                else ["No per-business record: the run failed as a whole (fleet-level).", ""]
            ),
            "Error:",
            scrub(error.strip()[:4000]),
            "",
            WHAT_TO_DO,
        ]
    )
    return subject, body


def run_level_item(eng, storage, run: dg.DagsterRun) -> FailedItem | None:
    """For a run without per-business records: the item of the business it is tagged for, if any."""
    tag = run.tags.get("pos_exports/business")
    if not tag or not tag.isdigit():
        return None
    business_id = int(tag)
    name = next((b.name for b in load_businesses(storage.get()) if b.id == business_id), f"business {business_id}")
    key = run.tags.get("pos_exports/period", "")
    sub_tag = run.tags.get("pos_exports/subscription", "")
    sub = get_subscription(eng, int(sub_tag)) if sub_tag.isdigit() else None
    kind, label, datasets = "", key, "exports"
    if sub is not None and sub.business_id == business_id:
        kind, datasets = sub.frequency, ", ".join(sub.datasets)
        try:
            label = period_for(kind, key).label
        except ValueError:
            pass
    return FailedItem(
        business_id=business_id,
        business_name=name,
        stage="delivery",
        dataset=datasets,
        period_kind=kind,
        period_key=key,
        period_label=label or "the latest period",
        reason=ON_OUR_SIDE,
    )


def step_failure_items(context: dg.RunFailureSensorContext) -> tuple[list[FailedItem], str]:
    """The failed items recorded by the run's failed steps, and the error text for the data team."""
    items: list[FailedItem] = []
    error = context.failure_event.message or ""
    for step_failure in context.get_step_failure_events():
        data = step_failure.step_failure_data
        if data.user_failure_data is not None:
            items += from_metadata(data.user_failure_data.metadata)
        cause = data.error
        while cause is not None:  # after retries, the original error is the cause of "Exceeded max_retries"
            error += "\n" + cause.message
            cause = cause.cause
    return list(dict.fromkeys(items)), error


def alert_failed_run(context: dg.RunFailureSensorContext, storage: StorageResource, clock: ClockResource) -> None:
    """Queue the failed run's alerts once (per business and the data team's) and send what is pending."""
    eng = engine()
    now = clock.now()
    run = context.dagster_run
    items, error = step_failure_items(context)
    business_items = items or [i for i in [run_level_item(eng, storage, run)] if i is not None]
    alerts = notify.failure_alerts(eng, business_items, *team_message(run, items, error))
    if not notify.queue_alerts(eng, alerts, run_id=run.run_id, now=now):
        context.log.info(f"run {run.run_id} was alerted already")
    counts = notify.flush(eng, SmtpSettings.from_env(), outbox_dir(storage), now=now)
    context.log.info(f"alerts: {counts}")


@dg.run_failure_sensor(
    name="failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Emails each business its own failed items and the data team (POS_EXPORTS_DATA_TEAM_EMAIL) "
    "all of them when a run of this code location launched by the daemon or the UI fails.",
)
def failure_alert_sensor(context: dg.RunFailureSensorContext, storage: StorageResource, clock: ClockResource):
    alert_failed_run(context, storage, clock)


@dg.run_failure_sensor(
    name="in_process_failure_alert_sensor",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="The same alerts for failed runs executed in a process (the pos-exports CLI), which carry "
    "no code location origin: only runs without origin whose job belongs to this code location.",
)
def in_process_failure_alert_sensor(
    context: dg.RunFailureSensorContext, storage: StorageResource, clock: ClockResource
):
    run = context.dagster_run
    repository = context.repository_def
    if run.remote_job_origin is not None or repository is None or not repository.has_job(run.job_name):
        return  # another code location's run, or one failure_alert_sensor sees
    alert_failed_run(context, storage, clock)


@dg.sensor(
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 10 minutes: sends queued notifications whose earlier sending failed.",
)
def alert_outbox_sensor(context: dg.SensorEvaluationContext, storage: StorageResource, clock: ClockResource):
    counts = notify.flush(engine(), SmtpSettings.from_env(), outbox_dir(storage), now=clock.now())
    return dg.SkipReason(
        f"alerts sent {counts['sent']}, still pending {counts['pending']}, given up {counts['failed']}"
    )
