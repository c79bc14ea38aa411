"""The operations objects load together with the code location (as definitions.py will register them)."""

import dagster as dg

from pos_exports.defs.catchup import catchup_sensor
from pos_exports.defs.cleanup import cleanup_job, cleanup_schedule
from pos_exports.defs.retention import retention_guard, retention_guard_job, retention_guard_sensor


def test_code_location_with_the_operations_objects_loads():
    from pos_exports.definitions import defs

    names = {job.name for job in defs.jobs or []}
    if "cleanup_job" in names:  # already registered in definitions.py
        combined = defs
    else:
        combined = dg.Definitions.merge(
            defs,
            dg.Definitions(
                asset_checks=[retention_guard],
                jobs=[retention_guard_job, cleanup_job],
                schedules=[cleanup_schedule],
                sensors=[retention_guard_sensor, catchup_sensor],
            ),
        )
    dg.Definitions.validate_loadable(combined)
    repo = combined.get_repository_def()
    assert {"retention_guard_job", "cleanup_job", "daily_archive_job", "delivery_job"} <= set(repo.job_names)
    assert {"retention_guard_sensor", "catchup_sensor"} <= {s.name for s in repo.sensor_defs}
    assert "cleanup_schedule" in {s.name for s in repo.schedule_defs}
    assert combined.resolve_job_def("retention_guard_job").partitions_def is None
    check_keys = {k for checks in repo.asset_checks_defs_by_key.values() for k in checks.check_keys}
    assert dg.AssetCheckKey(dg.AssetKey("sales_archive"), "retention_guard") in check_keys
