"""Fleet-wide schedules. Their clock is the partitions' `Etc/GMT+12` (UTC-12): day D has ended in every
time zone of the fleet at 00:00 of D+1 there, which is 12:00 UTC of D+1.

| schedule | when (UTC-12) | when (UTC) | targets |
| --- | --- | --- | --- |
| daily_archive_schedule | daily 00:30 | 12:30 | the archive of the day that just ended everywhere |
| daily_exports_schedule | daily 02:00 | 14:00 | that day's daily exports |
| weekly_exports_schedule | Monday 03:00 | Monday 15:00 | the Monday-Sunday week that just ended |
| monthly_exports_schedule | 1st 04:00 | 1st 16:00 | the month that just ended |
"""

import dagster as dg

from pos_exports.archive.assets import archive_job
from pos_exports.exports.assets import period_export_jobs

_jobs = {job.name: job for job in period_export_jobs}


def _schedule(job, name: str, description: str, **when) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job, name=name, description=description, default_status=dg.DefaultScheduleStatus.RUNNING, **when
    )


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
