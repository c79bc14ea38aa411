"""The Dagster code location: `pos_exports.definitions:defs`."""

import os

import dagster as dg

from pos_exports import config
from pos_exports.archive.assets import archive_job, daily_archive
from pos_exports.automation.catchup import catchup_sensor
from pos_exports.automation.cleanup import cleanup_job, cleanup_schedule
from pos_exports.automation.delivery import (
    delivery_batch_job,
    delivery_job,
    due_subscriptions_sensor,
    failed_delivery_retry_sensor,
)
from pos_exports.automation.notifications import (
    alert_outbox_sensor,
    failure_alert_sensor,
    in_process_failure_alert_sensor,
)
from pos_exports.automation.retention import retention_guard, retention_guard_job, retention_guard_sensor
from pos_exports.automation.schedules import SCHEDULES
from pos_exports.automation.stats import delivery_statistics, statistics_job, statistics_schedule
from pos_exports.automation.summary import weekly_summary_job, weekly_summary_schedule
from pos_exports.exports.assets import PERIOD_ASSETS, period_export_jobs
from pos_exports.exports.on_demand import on_demand_export_job
from pos_exports.source.resource import PosDatabase, StorageResource

DATABASE_URL_ENV = "POS_DATABASE_URL"


def build_defs() -> dg.Definitions:
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
                url=dg.EnvVar(DATABASE_URL_ENV) if os.environ.get(DATABASE_URL_ENV) else config.database_url()
            ),
            "storage": StorageResource(root=config.storage_root()),
        },
    )


defs = build_defs()
