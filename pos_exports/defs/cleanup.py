"""Dagster wiring of the export cleanup (operations.cleanup): `cleanup_job` (op `cleanup_exports_op`, config
`dry_run`, `max_age_days`) and `cleanup_schedule` (daily 03:30 UTC)."""

import dagster as dg
from pydantic import Field

from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.operations.cleanup import (
    DEFAULT_MAX_AGE_DAYS,
    MAX_AGE_ENV,
    cleanup_exports,
    default_max_age_days,
)


class CleanupConfig(dg.Config):
    dry_run: bool = Field(default=False, description="Only list what would be deleted.")
    max_age_days: int | None = Field(
        default=None,
        description="Delete exports whose period ended more than this many days ago "
        f"(default: {MAX_AGE_ENV}, else {DEFAULT_MAX_AGE_DAYS}).",
    )


@dg.op(description="Delete export folders whose period ended more than max_age_days ago (never the archive).")
def cleanup_exports_op(
    context: dg.OpExecutionContext, config: CleanupConfig, storage: StorageResource, clock: ClockResource
) -> int:
    today = clock.now().date()
    max_age_days = default_max_age_days() if config.max_age_days is None else config.max_age_days
    report = cleanup_exports(storage.get(), today, max_age_days, config.dry_run)
    # Temporary files that killed runs left anywhere (archive included: they are no archive data); a live
    # run's are never touched (see storage.base).
    swept = [] if config.dry_run else storage.get().sweep_temp("")
    if swept:
        context.log.info(f"swept {len(swept)} temporary file(s) of killed runs: {', '.join(swept[:20])}")
    verb = "would delete" if config.dry_run else "deleted"
    context.log.info(
        f"{verb} {report.count} file(s), {report.bytes} bytes in {len(report.folders)} folder(s) "
        f"older than {max_age_days} days; {report.kept} kept, {len(report.skipped)} skipped"
    )
    for item in report.skipped:
        context.log.warning(f"skipped {item}")
    context.add_output_metadata(
        {
            "dry_run": config.dry_run,
            "max_age_days": max_age_days,
            "count": report.count,
            "bytes": report.bytes,
            "folder_count": len(report.folders),
            "folders": dg.MetadataValue.json(report.folders[:1000]),
            "kept_folders": report.kept,
            "skipped": dg.MetadataValue.md("\n".join(f"- {s}" for s in report.skipped[:200]) or "none"),
            "temp_files_swept": len(swept),
        }
    )
    return report.count


@dg.job(
    description="Delete exports whose period ended more than POS_EXPORTS_EXPORT_MAX_AGE_DAYS (30) days ago; "
    "the archive is never touched.",
    tags={"pos_exports/kind": "cleanup"},
)
def cleanup_job():
    cleanup_exports_op()


cleanup_schedule = dg.ScheduleDefinition(
    name="cleanup_schedule",
    job=cleanup_job,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily at 03:30 UTC: delete old exports (cleanup_job with its defaults).",
)
