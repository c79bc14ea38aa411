"""Fleet-wide schedules. Their clock is the partitions' `Etc/GMT+12` (UTC-12): day D has ended in every
time zone of the fleet at 00:00 of D+1 there, which is 12:00 UTC of D+1.

| schedule | when (UTC-12) | when (UTC) | targets |
| --- | --- | --- | --- |
| daily_archive_schedule | daily 00:30 | 12:30 | the archive of the day that just ended everywhere |
| daily_exports_schedule | daily 02:00 | 14:00 | that day's daily exports |
| weekly_exports_schedule | Monday 03:00 | Monday 15:00 | the Monday-Sunday week that just ended |
| monthly_exports_schedule | 1st 04:00 | 1st 16:00 | the month that just ended |

With `POS_EXPORTS_SHARDS` = N > 1 each tick asks for N runs of the partition, one per shard
(`pos_exports.shards`): run config `shard: {index: i, count: N}`, tag `pos_exports/shard=i/N`, run key
`<partition>/shard=i/N`. Each shard is its own run, so one failing shard fails only its run.
"""

import dagster as dg

from pos_exports import config as settings
from pos_exports.defs.archive import archive_job, daily_archive
from pos_exports.defs.exports import PERIOD_ASSETS, period_export_jobs
from pos_exports.shards import SHARD_TAG, shard_label

_jobs = {job.name: job for job in period_export_jobs}
# the op (multi-asset) of each job whose config takes the shard
_OPS = {archive_job.name: daily_archive.op.name} | {
    job.name: asset.op.name for job, asset in zip(period_export_jobs, PERIOD_ASSETS, strict=True)
}


def shard_requests(request: dg.RunRequest, job_name: str, count: int) -> list[dg.RunRequest]:
    """One run request per shard of the partition `request` asks for (the request itself for one shard)."""
    if count == 1:
        return [request]
    return [
        dg.RunRequest(
            partition_key=request.partition_key,
            run_key=f"{request.run_key}/shard={shard_label(i, count)}",
            tags={**request.tags, SHARD_TAG: shard_label(i, count)},
            run_config={"ops": {_OPS[job_name]: {"config": {"shard": {"index": i, "count": count}}}}},
        )
        for i in range(count)
    ]


def _schedule(job, name: str, description: str, **when) -> dg.ScheduleDefinition:
    # Dagster's own partitioned schedule decides the cron and the partition of a tick; each shard gets a run.
    whole = dg.build_schedule_from_partitioned_job(job, name=name, **when)

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=whole.cron_schedule,
        execution_timezone=whole.execution_timezone,
        description=description,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def _sharded(context: dg.ScheduleEvaluationContext):
        data = whole.evaluate_tick(context)
        if not data.run_requests:
            return dg.SkipReason(data.skip_message)
        count = settings.settings().shards
        return [r for request in data.run_requests for r in shard_requests(request, job.name, count)]

    return _sharded


SCHEDULES = [
    _schedule(
        archive_job,
        "daily_archive_schedule",
        "Archive every active business's previous day once it has ended in every time zone.",
        hour_of_day=0,
        minute_of_hour=30,
    ),
    _schedule(
        _jobs["daily_exports_job"],
        "daily_exports_schedule",
        "Render the previous day's exports from the archive (90 minutes after the archive).",
        hour_of_day=2,
        minute_of_hour=0,
    ),
    _schedule(
        _jobs["weekly_exports_job"],
        "weekly_exports_schedule",
        "Render the week (Monday-Sunday) that just ended.",
        day_of_week=1,
        hour_of_day=3,
        minute_of_hour=0,
    ),
    _schedule(
        _jobs["monthly_exports_job"],
        "monthly_exports_schedule",
        "Render the calendar month that just ended.",
        day_of_month=1,
        hour_of_day=4,
        minute_of_hour=0,
    ),
]
