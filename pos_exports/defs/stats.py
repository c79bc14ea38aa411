"""Dagster wiring of the statistics (operations.stats): the `delivery_statistics` asset, its job and daily schedule."""

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from pos_exports.core.catalog import DATASETS, FORMATS
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.operations.stats import (
    EXPORT_KINDS,
    _fmt_rate,
    delivery_stats,
    markdown_table,
)
from pos_exports.state import engine


def statistics_metadata(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Flat numeric metadata (plotted by the UI over time) and a markdown table of `delivery_stats`.

    Keys: attempted, emailed, failed, failed_transient, skipped, unknown, pending, retried, recipients, deliveries,
    files, bytes,
    success_rate, median_seconds, p95_seconds (the last three only when defined), then per format and
    dataset `{figure}_{name}` (emailed_xlsx, failed_pdf, bytes_sales, ...; every known one, 0 when
    absent, so the series stay continuous), then `exports_{kind}`, `export_files`, `export_bytes`.
    """
    meta: dict[str, Any] = {}
    for name in (
        "attempted",
        "emailed",
        "failed",
        "failed_transient",
        "skipped",
        "unknown",
        "pending",
        "retried",
        "recipients",
        "deliveries",
    ):
        meta[name] = dg.MetadataValue.int(int(stats[name]))
    meta["files"] = dg.MetadataValue.int(int(stats["files"]))
    meta["bytes"] = dg.MetadataValue.int(int(stats["bytes"]))
    for name in ("success_rate", "median_seconds", "p95_seconds"):
        if stats[name] is not None:
            meta[name] = dg.MetadataValue.float(float(stats[name]))
    for group, known in (("by_format", FORMATS), ("by_dataset", DATASETS)):
        for name in known:
            figures = stats[group].get(name, {})
            for figure in ("attempted", "emailed", "failed", "retried", "files", "bytes"):
                meta[f"{figure}_{name}"] = dg.MetadataValue.int(int(figures.get(figure, 0)))
    exports = stats.get("exports")
    if exports is not None:
        for kind in EXPORT_KINDS:
            meta[f"exports_{kind}"] = dg.MetadataValue.int(exports["by_kind"].get(kind, {}).get("periods", 0))
        meta["export_files"] = dg.MetadataValue.int(exports["files"])
        meta["export_bytes"] = dg.MetadataValue.int(exports["bytes"])
    meta["table"] = dg.MetadataValue.md(markdown_table(stats))
    return meta


class StatisticsConfig(dg.Config):
    window_days: int = Field(
        default=7, description="Ledger rows created (and export periods ended) in the last N days; 0: everything."
    )


@dg.asset(
    group_name="operations",
    description="Delivery statistics (success rate, counts, sizes, durations; per dataset and format) and the "
    "exports produced, over the last `window_days`; numeric metadata the UI plots over time.",
)
def delivery_statistics(
    context: dg.AssetExecutionContext, config: StatisticsConfig, storage: StorageResource, clock: ClockResource
) -> dg.MaterializeResult:
    if config.window_days < 0:
        raise dg.Failure(description=f"window_days: {config.window_days} must be 0 (everything) or more")
    now = clock.now()
    since = now - dt.timedelta(days=config.window_days) if config.window_days else None
    stats = delivery_stats(engine(), since=since, until=None, storage=storage.get())
    context.log.info(
        f"deliveries since {since or 'the start'}: {stats['emailed']} emailed, {stats['failed']} failed, "
        f"success rate {_fmt_rate(stats['success_rate'])}"
    )
    metadata = statistics_metadata(stats)
    metadata["window_days"] = dg.MetadataValue.int(config.window_days)
    return dg.MaterializeResult(metadata=metadata)


statistics_job = dg.define_asset_job(
    "statistics_job",
    selection=[delivery_statistics],
    description="Recompute the delivery statistics (hourly by `statistics_schedule`).",
)


statistics_schedule = dg.ScheduleDefinition(
    name="statistics_schedule",
    job=statistics_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: recompute the delivery statistics.",
)
