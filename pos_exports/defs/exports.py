"""Period exports as Dagster assets: daily, weekly (Monday-Sunday) and monthly, every business per run.

Each period kind is one multi-asset with an asset per dataset (`sales_weekly_export`, ...), mapped
onto the daily archive with `TimeWindowPartitionMapping`; all partitions share the archive's
`Etc/GMT+12` calendar, so a period appears once its last day has ended for every business.
A business-dataset that cannot be produced is a recorded gap (manifest, metadata, the failed check
`every_business_exported`, the run's `failed_items`); it never withholds the other exports.
"""

import enum

import dagster as dg
from pydantic import Field

from pos_exports.archive.read import load_businesses, shared_days
from pos_exports.archive.tables import DATASETS
from pos_exports.core.catalog import FormatName
from pos_exports.core.clock import utc_now
from pos_exports.defs.archive import archive_partitions, asset_key
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.defs.retries import RETRY_POLICY, failure, is_transient
from pos_exports.defs.shards import ShardConfig, apply_shard
from pos_exports.exports.produce import export_available, plain_reason
from pos_exports.failures import FailedItem, to_metadata
from pos_exports.operations.planning import wanted_files
from pos_exports.render import FORMATS
from pos_exports.reports.period import Period, period_for
from pos_exports.source.database import Business
from pos_exports.state import archive_start

EXPORTS_GROUP = "exports"
COMPLETE = "every_business_exported"
_START = archive_start(utc_now().date()).isoformat()
PARTITIONS = {
    "daily": archive_partitions,
    "weekly": dg.WeeklyPartitionsDefinition(start_date=_START, day_offset=1, timezone="Etc/GMT+12", end_offset=0),
    "monthly": dg.MonthlyPartitionsDefinition(start_date=_START, timezone="Etc/GMT+12", end_offset=0),
}


def export_key(dataset: str, kind: str) -> dg.AssetKey:
    return dg.AssetKey(f"{dataset}_{kind}_export")


class Render(enum.Enum):
    subscribed = "subscribed"
    all = "all"


class ExportConfig(dg.Config):
    business_ids: list[int] = Field(default_factory=list, description="Only these businesses (default: all active).")
    formats: list[FormatName] = Field(default_factory=lambda: list(FormatName), description="The file formats.")
    render: Render = Field(
        default=Render.subscribed,
        description="subscribed: only the (business, dataset, format) an active unfiltered subscription of this "
        "frequency asks for (the rest renders on demand); all: every file (backfills that want everything).",
    )
    shard: ShardConfig | None = Field(
        default=None, description="Only this shard's businesses (business_id % count == index), within business_ids."
    )


def businesses_in_scope(known: list[Business], wanted: list[int]) -> list[Business]:
    if not known:
        raise dg.Failure(
            allow_retries=False,
            description="the archive holds no business list yet: run the daily archive first",
        )
    if not wanted:
        return [b for b in known if b.is_active]
    by_id = {b.id: b for b in known}
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise dg.Failure(
            allow_retries=False,
            description=f"business_ids: no business with id {', '.join(map(str, unknown))} "
            f"(known ids: {', '.join(str(b.id) for b in known)})",
        )
    return [by_id[i] for i in sorted(set(wanted))]


def _failed_item(business: Business, dataset: str, period: Period, exc: Exception) -> FailedItem:
    return FailedItem.for_period(
        business.id,
        business.name,
        "export",
        dataset,
        period,
        plain_reason(dataset, period, exc),
        transient=is_transient(exc),
        detail=f"{type(exc).__name__}: {exc}",
    )


def _build(kind: str) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=f"{kind}_exports",
        specs=[
            dg.AssetSpec(
                export_key(name, kind),
                deps=[dg.AssetDep(asset_key(name), partition_mapping=dg.TimeWindowPartitionMapping())],
                description=f"{name} export of each {kind} period (XLSX, CSV, PDF) rendered from the archive, "
                f"in exports/{{business_id}}/{kind}/{{period key}}/ with manifest.json."
                + (" Uses the snapshot at the end of the period." if ds.kind == "snapshot" else ""),
                group_name=EXPORTS_GROUP,
                kinds=set(FORMATS),
                skippable=True,
            )
            for name, ds in DATASETS.items()
        ],
        check_specs=[
            dg.AssetCheckSpec(
                COMPLETE,
                asset=export_key(name, kind),
                description="Every business in scope has this export for the period; a failure lists each gap "
                "with its reason (the other businesses' exports are produced all the same).",
            )
            for name in DATASETS
        ],
        partitions_def=PARTITIONS[kind],
        can_subset=True,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        retry_policy=RETRY_POLICY,
    )
    def _exports(
        context: dg.AssetExecutionContext, config: ExportConfig, storage: StorageResource, clock: ClockResource
    ):
        store = storage.get()
        period = period_for(kind, context.partition_key)
        datasets = [n for n in DATASETS if export_key(n, kind) in context.selected_asset_keys]
        causes: list[BaseException] = []
        items: list[FailedItem] = []
        done: list[tuple[Business, str, list]] = []
        scope = apply_shard(
            businesses_in_scope(load_businesses(store), config.business_ids), config.shard, config.business_ids
        )
        wanted = None if config.render == Render.all else wanted_files(kind)
        with shared_days():  # a table-day of the Delta archive is read once for every business of the run
            for business in scope:
                asked = [
                    (d, f)
                    for d in datasets
                    for f in config.formats
                    if wanted is None or (business.id, d, f) in wanted  # nobody reads the rest: rendered on demand
                ]
                if not asked:
                    continue
                # isolate per business and dataset: what can be produced is produced, the rest is a recorded gap
                folder, entries, failed = export_available(store, business, period, asked, clock.now())
                for name, exc in failed.items():
                    causes.append(exc)
                    items.append(_failed_item(business, name, period, exc))
                    context.log.error(items[-1].team_line())
                done.append((business, folder, entries))
                context.log.info(f"business {business.id}: {len(entries)} files in {store.uri(folder)}")
        skipped = 0
        for name in datasets:
            gaps = [i for i in items if i.dataset == name]
            files = [(b, f, e) for b, f, entries in done for e in entries if e.dataset == name]
            produced = {b.id for b, _, _ in files}
            unasked = sum(wanted is not None and (b.id, name, f) not in wanted for b in scope for f in config.formats)
            skipped += unasked
            if dg.AssetCheckKey(export_key(name, kind), COMPLETE) in context.selected_asset_check_keys:
                yield dg.AssetCheckResult(
                    asset_key=export_key(name, kind),
                    check_name=COMPLETE,
                    passed=not gaps,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "exported_businesses": len(produced),
                        "skipped_unrequested": unasked,  # shown even when nobody asked for any of its files
                        "missing_businesses": len(gaps),
                        "missing": dg.MetadataValue.md(
                            "\n".join(f"- business {i.business_id} ({i.business_name}): {i.reason}" for i in gaps)
                            or "none"
                        ),
                        **to_metadata(gaps),
                    },
                )
            if not produced:
                continue  # no business has this export: nothing to mark materialized
            yield dg.MaterializeResult(
                asset_key=export_key(name, kind),
                metadata={
                    "render": config.render.value,
                    "skipped_unrequested": unasked,
                    "businesses": len(produced),
                    "missing_businesses": len(gaps),
                    "files": len(files),
                    "bytes": sum(e.bytes for _, _, e in files),
                    "rows": sum(sum(e.rows.values()) for _, _, e in files if e.format == "csv"),
                    "folders": dg.MetadataValue.md(
                        "\n".join(
                            f"- business {b.id}: [{store.uri(folder)}]({store.uri(folder)})"
                            for b, folder, _ in done
                            if b.id in produced
                        )
                        or "none"
                    ),
                    "file_list": dg.MetadataValue.md(
                        "| file | business | bytes | rows |\n|---|---|---|---|\n"
                        + "\n".join(f"| {e.name} | {b.id} | {e.bytes} | {sum(e.rows.values())} |" for b, _, e in files)
                    ),
                    **to_metadata(gaps),
                },
            )
        context.log.info(f"{skipped} file(s) not rendered because no subscription asks for them")
        if items:  # the rest is exported and materialized; the run fails so that the gaps are alerted
            raise failure(
                f"{len(items)} business export(s) could not be produced; the others were exported:\n"
                + "\n".join(i.team_line() for i in items),
                causes,
                metadata=to_metadata(items),
            )

    return _exports


daily_exports, weekly_exports, monthly_exports = (_build(k) for k in ("daily", "weekly", "monthly"))
PERIOD_ASSETS = [daily_exports, weekly_exports, monthly_exports]

period_export_jobs = [
    dg.define_asset_job(
        f"{kind}_exports_job",
        selection=dg.AssetSelection.assets(*[export_key(n, kind) for n in DATASETS]),
        partitions_def=PARTITIONS[kind],
        description=f"Render every business's {kind} exports from the archive.",
    )
    for kind in PARTITIONS
]
