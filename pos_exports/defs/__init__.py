"""The Dagster wiring: every asset, job, schedule, sensor, check and resource, and the `Definitions`."""

import dagster as dg

from pos_exports import config
from pos_exports.defs.alerts import (
    alert_outbox_sensor,
    failure_alert_sensor,
    in_process_failure_alert_sensor,
)
from pos_exports.defs.archive import archive_job, daily_archive
from pos_exports.defs.catchup import catchup_sensor
from pos_exports.defs.cleanup import cleanup_job, cleanup_schedule
from pos_exports.defs.deliveries import (
    delivery_batch_job,
    delivery_job,
    due_subscriptions_sensor,
    failed_delivery_retry_sensor,
)
from pos_exports.defs.exports import PERIOD_ASSETS, period_export_jobs
from pos_exports.defs.on_demand import on_demand_export_job
from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource
from pos_exports.defs.retention import retention_guard, retention_guard_job, retention_guard_sensor
from pos_exports.defs.schedules import SCHEDULES
from pos_exports.defs.stats import delivery_statistics, statistics_job, statistics_schedule
from pos_exports.defs.summary import weekly_summary_job, weekly_summary_schedule

DATABASE_URL_ENV = "POS_DATABASE_URL"


def build_defs(clock: ClockResource | None = None) -> dg.Definitions:
    """The code location; `clock` (default: the UTC clock) is what every sensor, op and check reads as now."""
    config.settings()  # every setting, before the code location loads (SettingsError: one line per bad variable)
    return dg.Definitions(
        assets=[daily_archive, *PERIOD_ASSETS, delivery_statistics],
        asset_checks=[retention_guard],
        jobs=[
            archive_job,
            *period_export_jobs,
            on_demand_export_job,
            delivery_job,
            delivery_batch_job,
            retention_guard_job,
            cleanup_job,
            statistics_job,
            weekly_summary_job,
        ],
        schedules=[*SCHEDULES, cleanup_schedule, statistics_schedule, weekly_summary_schedule],
        sensors=[
            due_subscriptions_sensor,
            failed_delivery_retry_sensor,
            failure_alert_sensor,
            in_process_failure_alert_sensor,
            alert_outbox_sensor,
            retention_guard_sensor,
            catchup_sensor,
        ],
        resources={
            # A set POS_DATABASE_URL is passed by name: the UI and run storage show the variable, never its value.
            "pos_database": PosDatabase(
                url=dg.EnvVar(DATABASE_URL_ENV) if config.settings().database_url else config.database_url()
            ),
            "storage": StorageResource(root=config.storage_root()),
            "clock": clock or ClockResource(),
        },
    )


defs = build_defs()
