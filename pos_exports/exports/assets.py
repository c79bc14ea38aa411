"""Period exports as Dagster assets: daily, weekly (Monday-Sunday) and monthly, every business per run.

Each period kind is one multi-asset with an asset per dataset (`sales_weekly_export`, ...), mapped
onto the daily archive with `TimeWindowPartitionMapping`; all partitions share the archive's
`Etc/GMT+12` calendar, so a period appears once its last day has ended for every business.
"""

import dagster as dg
from pydantic import Field

from pos_exports import config as settings
from pos_exports.archive.assets import archive_partitions, asset_key
from pos_exports.archive.read import load_businesses
from pos_exports.archive.tables import DATASETS
from pos_exports.automation.retries import RETRY_POLICY, failure
from pos_exports.exports.produce import export_period
from pos_exports.redact import scrub
from pos_exports.render import FORMATS
from pos_exports.reports.period import period_for
from pos_exports.source.database import Business
from pos_exports.source.resource import StorageResource

EXPORTS_GROUP = "exports"
_START = settings.archive_start_date()
PARTITIONS = {
    "daily": archive_partitions,
    "weekly": dg.WeeklyPartitionsDefinition(start_date=_START, day_offset=1, timezone="Etc/GMT+12", end_offset=0),
    "monthly": dg.MonthlyPartitionsDefinition(start_date=_START, timezone="Etc/GMT+12", end_offset=0),
}


def export_key(dataset: str, kind: str) -> dg.AssetKey:
    return dg.AssetKey(f"{dataset}_{kind}_export")


class ExportConfig(dg.Config):
    business_ids: list[int] = Field(default_factory=list, description="Only these businesses (default: all active).")
    formats: list[str] = Field(default_factory=lambda: list(FORMATS), description="Any of xlsx, csv, pdf.")


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
                kinds={"xlsx", "csv", "pdf"},
                skippable=True,
            )
            for name, ds in DATASETS.items()
        ],
        partitions_def=PARTITIONS[kind],
        can_subset=True,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        retry_policy=RETRY_POLICY,
    )
    def _exports(context: dg.AssetExecutionContext, config: ExportConfig, storage: StorageResource):
        bad = [f for f in config.formats if f not in FORMATS]
        if bad:
            raise dg.Failure(
                allow_retries=False,
                description=f"formats: {', '.join(bad)} not supported (allowed: {', '.join(FORMATS)})",
            )
        store = storage.get()
        period = period_for(kind, context.partition_key)
        datasets = [n for n in DATASETS if export_key(n, kind) in context.selected_asset_keys]
        failures: list[str] = []
        causes: list[BaseException] = []
        done: list[tuple[Business, str, list]] = []
        for business in businesses_in_scope(load_businesses(store), config.business_ids):
            try:
                folder, entries = export_period(store, business, period, datasets, config.formats)
            except Exception as exc:  # isolate: one business never blocks the others' exports
                causes.append(exc)
                failures.append(f"business {business.id} ({business.name}) {period.kind} {period.key}: {scrub(exc)}")
                context.log.error(failures[-1])
                continue
            done.append((business, folder, entries))
            context.log.info(f"business {business.id}: {len(entries)} files in {store.uri(folder)}")
        if failures:  # the other businesses' files are written; the period is not marked done
            raise failure(
                f"{len(failures)} business(es) failed; the others were exported:\n" + "\n".join(failures), causes
            )
        for name in datasets:
            files = [(b, f, e) for b, f, entries in done for e in entries if e.dataset == name]
            yield dg.MaterializeResult(
                asset_key=export_key(name, kind),
                metadata={
                    "businesses": len(done),
                    "files": len(files),
                    "bytes": sum(e.bytes for _, _, e in files),
                    "rows": sum(sum(e.rows.values()) for _, _, e in files if e.format == "csv"),
                    "folders": dg.MetadataValue.md(
                        "\n".join(
                            f"- business {b.id}: [{store.uri(folder)}]({store.uri(folder)})" for b, folder, _ in done
                        )
                        or "none"
                    ),
                    "file_list": dg.MetadataValue.md(
                        "| file | business | bytes | rows |\n|---|---|---|---|\n"
                        + "\n".join(f"| {e.name} | {b.id} | {e.bytes} | {sum(e.rows.values())} |" for b, _, e in files)
                    ),
                },
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
