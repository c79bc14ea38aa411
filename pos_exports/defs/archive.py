"""The daily archive as Dagster assets: one partition per business-local day, all businesses per run."""

import datetime as dt
import tempfile
from pathlib import Path

import dagster as dg
from pydantic import Field

from pos_exports import config as settings
from pos_exports.archive import delta
from pos_exports.archive.extract import BusinessDayResult, SnapshotNotCaptured, archive_business_day, partition_prefix
from pos_exports.archive.read import save_businesses
from pos_exports.archive.tables import DATASETS, Dataset
from pos_exports.core.clock import Clock, utc_now
from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource
from pos_exports.defs.retries import RETRY_POLICY, failure, is_transient
from pos_exports.defs.shards import ShardConfig, apply_shard
from pos_exports.failures import ON_OUR_SIDE, TEMPORARY, FailedItem, to_metadata
from pos_exports.periods import PeriodError, parse_date
from pos_exports.redact import scrub
from pos_exports.reports.period import daily
from pos_exports.source.database import Business, PosReader, PosSourceError, SourceDataError, list_businesses
from pos_exports.state import archive_start
from pos_exports.storage import Storage
from pos_exports.storage.base import sweep_folder, temp_prefix

STAGE = "pos-stage"  # local folders of the Delta layout's staged files: pos-stage.{host}-{pid}-{random}

# Keys are business-local dates. A key appears once its day has ended in the westernmost zone
# (UTC-12), i.e. once it has ended for every business of the fleet.
archive_partitions = dg.DailyPartitionsDefinition(
    start_date=archive_start(utc_now().date()).isoformat(), timezone="Etc/GMT+12", end_offset=0
)

ARCHIVE_GROUP = "archive"
RECONCILED = "reconciled_with_source"


def asset_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(f"{dataset}_archive")


DATASET_BY_KEY = {asset_key(name): ds for name, ds in DATASETS.items()}


class ArchiveConfig(dg.Config):
    business_ids: list[int] = Field(
        default_factory=list, description="Archive only these businesses (default: every active business)."
    )
    allow_shrink: bool = Field(
        default=False,
        description="Re-archive a day even if the source now lacks rows (primary keys) the archive holds "
        "(e.g. after a fix); the old generation is kept as a previous one.",
    )
    shard: ShardConfig | None = Field(
        default=None,
        description="Only the businesses of this shard (business_id % count == index), intersected with "
        "business_ids; the schedule runs one shard per run when POS_EXPORTS_SHARDS > 1.",
    )


def select_businesses(businesses: list[Business], wanted: list[int]) -> list[Business]:
    """The businesses a run covers, or a clear error naming ids that do not exist."""
    if not wanted:
        return [b for b in businesses if b.is_active]
    by_id = {b.id: b for b in businesses}
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        known = ", ".join(str(b.id) for b in businesses[:50])
        raise dg.Failure(
            allow_retries=False,
            description=f"business_ids: no business with id {', '.join(map(str, unknown))} in the POS database "
            f"(known ids: {known})",
        )
    return [by_id[i] for i in sorted(set(wanted))]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            asset_key(name),
            description=f"Lossless Parquet archive ({ds.kind}). {ds.description} "
            f"Delta tables (POS_EXPORTS_ARCHIVE_LAYOUT=delta, the default): archive/tables/"
            f"{{{','.join(t.name for t in ds.tables)}}}/ partitioned by business_date, and the records "
            "archive/tables/_reconciliation/ (written last). Folders (=folders): archive/"
            f"{name}/date=YYYY-MM-DD/business_id=N/gen=G/{{table}}.parquet and the manifest "
            "business_id=N/_reconciliation.json (written last).",
            group_name=ARCHIVE_GROUP,
            kinds={"parquet"},
            skippable=True,
            tags={"dataset_kind": ds.kind},
        )
        for name, ds in DATASETS.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            RECONCILED,
            asset=asset_key(name),
            description="Per business: archived row counts and money sums equal the source's at extraction time.",
        )
        for name in DATASETS
    ],
    partitions_def=archive_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=31),
    retry_policy=RETRY_POLICY,
    can_subset=True,
    name="daily_archive",
)
def daily_archive(
    context: dg.AssetExecutionContext,
    config: ArchiveConfig,
    pos_database: PosDatabase,
    storage: StorageResource,
    clock: ClockResource,
):
    """Extract every selected dataset for every day of the run and every business in scope."""
    try:
        days = [parse_date(k) for k in context.partition_keys]
    except PeriodError as exc:
        raise dg.Failure(allow_retries=False, description=str(exc)) from None
    store = storage.get()
    layout = settings.settings().archive_layout
    selected = [DATASET_BY_KEY[k] for k in DATASET_BY_KEY if k in context.selected_asset_keys]
    failures: list[str] = []
    causes: list[BaseException] = []
    results: dict[str, list[BusinessDayResult]] = {ds.name: [] for ds in selected}
    failed_datasets: dict[str, list[str]] = {ds.name: [] for ds in selected}
    failed_items: dict[str, list[FailedItem]] = {ds.name: [] for ds in selected}

    def fail(ds: Dataset, day: dt.date, business: Business, exc: Exception) -> None:
        causes.append(exc)
        message = f"{ds.name} {day} business {business.id} ({business.name}): {scrub(exc)}"
        context.log.error(message)
        failures.append(message)
        failed_datasets[ds.name].append(message)
        failed_items[ds.name].append(_failed_item(ds.name, day, business, exc))

    try:
        with pos_database.open() as reader:
            known = list_businesses(reader)
            save_businesses(store, known)
            businesses = apply_shard(select_businesses(known, config.business_ids), config.shard, config.business_ids)
            context.log.info(
                f"archiving {', '.join(ds.name for ds in selected)} for {len(days)} day(s) "
                f"{days[0]}..{days[-1]} and {len(businesses)} business(es) from {reader.description}"
            )
            for day in days:
                for ds in selected:
                    start = len(results[ds.name])
                    dataset_day = _archive_day(layout, reader, store, ds, businesses, day, config, clock.now)
                    for business, outcome in dataset_day:
                        if isinstance(outcome, Exception):
                            fail(ds, day, business, outcome)
                        else:
                            results[ds.name].append(outcome)
                    # one event per dataset-day: the per-business figures are in metadata `rows_by_business`
                    done = results[ds.name][start:]
                    context.log.info(
                        f"{ds.name} {day}: {len(done)} business(es), {sum(r.rows for r in done)} rows, "
                        f"{sum(r.bytes for r in done)} bytes, "
                        f"{sum(r.kept_existing for r in done)} kept the earlier capture"
                    )
    except PosSourceError as exc:
        raise failure(str(exc), [exc]) from None

    for ds in selected:
        key = asset_key(ds.name)
        done, failed = results[ds.name], failed_datasets[ds.name]
        if dg.AssetCheckKey(key, RECONCILED) in context.selected_asset_check_keys:
            # References to another business's rows reconcile (their ids are kept) but are shown without a name.
            foreign = [f"{r.day} business {r.business_id}: {line}" for r in done for line in r.non_members]
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=RECONCILED,
                passed=not failed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{len(foreign)} reference(s) to rows not of the business, archived without their name"
                if foreign
                else None,
                metadata={
                    "reconciled_business_days": len(done),
                    "failed_business_days": len(failed),
                    "failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in failed) or "none"),
                    "non_member_references": len(foreign),
                    "non_members": dg.MetadataValue.md("\n".join(f"- {f}" for f in foreign[:200]) or "none"),
                    **to_metadata(failed_items[ds.name]),
                },
            )
        if not failed:
            for partition_key, day in zip(context.partition_keys, days, strict=True):  # each day its own figures
                day_done = [r for r in done if r.day == day]
                metadata = _metadata(ds, day_done, store, layout)
                context.add_asset_metadata(metadata, asset_key=key, partition_key=partition_key)
            yield dg.MaterializeResult(asset_key=key)
    if failures:
        raise failure(
            f"{len(failures)} business-day(s) failed; the others were archived:\n" + "\n".join(failures),
            causes,
            metadata={
                "failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in failures)),
                **to_metadata(i for ds in selected for i in failed_items[ds.name]),
            },
        )


def archive_dataset_day(
    reader: PosReader,
    store: Storage,
    ds: Dataset,
    businesses: list[Business],
    day: dt.date,
    config: ArchiveConfig,
    clock: Clock,
) -> list[tuple[Business, BusinessDayResult | Exception]]:
    """The Delta layout: every business of one dataset-day extracted and reconciled on its own (a failure
    costs only that business), then all of them committed together (one transaction per table)."""
    by_id = {b.id: b for b in businesses}
    out: list[tuple[Business, BusinessDayResult | Exception]] = []
    staged: list[delta.Staged] = []
    sweep_folder(Path(tempfile.gettempdir()), f"{STAGE}.*")  # what killed runs left
    with tempfile.TemporaryDirectory(prefix=temp_prefix(STAGE)) as folder:
        for business in businesses:
            try:
                staged.append(
                    delta.stage_business_day(
                        reader,
                        store,
                        ds,
                        business,
                        day,
                        now=clock(),
                        folder=Path(folder),
                        allow_shrink=config.allow_shrink,
                    )
                )
            except Exception as exc:  # isolate: one business never costs the others their archive
                out.append((business, exc))
        for s, outcome in delta.commit_dataset_day(store, ds, day, staged, clock()):
            out.append((by_id[s.result.business_id], outcome))
    return sorted(out, key=lambda pair: pair[0].id)


def _archive_day(
    layout: str, reader, store, ds: Dataset, businesses: list[Business], day: dt.date, config, clock: Clock
):
    """(business, result or the exception it failed with) for each business of a dataset-day: one failure
    never costs the others their archive."""
    if layout == "delta":
        yield from archive_dataset_day(reader, store, ds, businesses, day, config, clock)
        return
    for business in businesses:
        now = clock()  # the instant the capture rule judges by (archive.capture)
        try:
            yield (
                business,
                archive_business_day(reader, store, ds, business, day, now=now, allow_shrink=config.allow_shrink),
            )
        except Exception as exc:  # isolate: one business never costs the others their archive
            yield business, exc


def _failed_item(dataset: str, day: dt.date, business: Business, exc: Exception) -> FailedItem:
    """The record of one business-day that could not be archived, with a reason its business can read."""
    if isinstance(exc, SnapshotNotCaptured):
        reason = "it was not captured in time, and the point-of-sale system keeps no history of it"
    elif isinstance(exc, SourceDataError):
        reason = "some of the records of that day could not be read as they are; the data team will look at them"
    else:
        reason = TEMPORARY if is_transient(exc) else ON_OUR_SIDE
    return FailedItem.for_period(
        business.id,
        business.name,
        "archive",
        dataset,
        daily(day),
        reason,
        transient=is_transient(exc),
        detail=f"{type(exc).__name__}: {exc}",
    )


def _metadata(ds: Dataset, done: list[BusinessDayResult], store: Storage, layout: str) -> dict:
    """The materialization metadata of one dataset-day (`done`: that day's business results)."""
    dataset, root = ds.name, store.root
    by_table: dict[str, int] = {}
    by_business: dict[str, dict[str, int]] = {}
    for r in done:
        per = by_business.setdefault(str(r.business_id), {})
        for t in r.tables:
            by_table[t.table] = by_table.get(t.table, 0) + t.rows
            per[t.table] = per.get(t.table, 0) + t.rows
    if layout == "delta":  # the Delta tables the dataset-day was committed to
        paths = [delta.table_uri(store, t.name) for t in ds.tables] if done else []
    else:
        paths = sorted({f"{root}/{partition_prefix(dataset, r.day, r.business_id)}" for r in done})
    rows_md = (
        "| business | "
        + " | ".join(by_table)
        + " |\n|---|"
        + "---|" * len(by_table)
        + "\n"
        + "\n".join(
            f"| {b} | " + " | ".join(str(per.get(t, 0)) for t in by_table) + " |" for b, per in by_business.items()
        )
    )
    return {
        "rows": sum(r.rows for r in done),
        "bytes": sum(r.bytes for r in done),
        "businesses": len(by_business),
        **{f"rows_{t}": n for t, n in by_table.items()},
        "rows_by_business": dg.MetadataValue.md(rows_md),
        "rows_by_business_json": dg.MetadataValue.json(by_business),
        "kept_earlier_snapshots": sum(r.kept_existing for r in done),
        "storage": dg.MetadataValue.path(f"{root}/archive/{dataset}"),
        "paths": dg.MetadataValue.json(paths[:200]),
    }


archive_job = dg.define_asset_job(
    "daily_archive_job",
    # The archive and its reconciliation checks; not the fleet-wide retention guard (its own job runs it).
    selection=dg.AssetSelection.groups(ARCHIVE_GROUP).without_checks()
    | dg.AssetSelection.checks(*[dg.AssetCheckKey(asset_key(name), RECONCILED) for name in DATASETS]),
    partitions_def=archive_partitions,
    description="Archive every dataset of every active business for one business-local day.",
)
