"""On-demand exports: the data team picks a business, datasets, a period or date range, formats and
filters in the Launchpad (or `pos-exports export` on the command line)."""

import datetime as dt

import dagster as dg
from pydantic import Field

from pos_exports.archive.read import load_businesses
from pos_exports.archive.tables import DATASETS
from pos_exports.core.catalog import FREQUENCIES, DatasetName, FormatName, PeriodKind
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.defs.retries import RETRY_POLICY
from pos_exports.exports.produce import export_period
from pos_exports.render import FORMATS
from pos_exports.reports import FILTERS, validate_filters
from pos_exports.reports.period import Period, date_range, period_for


class OnDemandConfig(dg.Config):
    business_id: int = Field(description="The business to export.")
    datasets: list[DatasetName] = Field(
        default_factory=lambda: list(DatasetName),
        description="The datasets to export (what each contains: docs/reports.md).",
    )
    period_kind: PeriodKind | None = Field(default=None, description="daily | weekly | monthly (with period_key)")
    period_key: str = Field(default="", description="2025-03-09 (daily), 2025-03-03 (a Monday), 2025-03 (monthly)")
    start_date: str = Field(default="", description="or a date range: first day YYYY-MM-DD (with end_date)")
    end_date: str = Field(default="", description="last day YYYY-MM-DD, inclusive")
    formats: list[FormatName] = Field(default_factory=lambda: list(FormatName), description="The file formats.")
    filters: dict[str, str] = Field(
        default_factory=dict,
        description="Filters (docs/reports.md), e.g. {customer_type: wholesale, min_outstanding_balance: '100'}; "
        "each applies to the dataset that knows it",
    )


class ExportRequestError(ValueError):
    """Invalid on-demand config; the message names the field and the allowed values."""


def resolve_request(cfg: OnDemandConfig) -> tuple[Period, dict[str, dict]]:
    """Validate the config; return the period and the filters per dataset."""
    _choices("datasets", "a dataset", cfg.datasets, DATASETS)
    _choices("formats", "a format", cfg.formats, FORMATS)
    return _period(cfg), _filters(cfg)


def _choices(field: str, what: str, chosen: list[str], allowed) -> None:
    for name in chosen:
        if name not in allowed:
            raise ExportRequestError(f"{field}: {name!r} is not {what} (allowed: {', '.join(allowed)})")
    if not chosen:
        raise ExportRequestError(f"{field}: choose at least one of {', '.join(allowed)}")


def _period(cfg: OnDemandConfig) -> Period:
    if cfg.period_kind or cfg.period_key:
        if cfg.start_date or cfg.end_date:
            raise ExportRequestError("give either period_kind/period_key or start_date/end_date, not both")
        if cfg.period_kind is None:
            raise ExportRequestError(f"period_kind: required with period_key (allowed: {', '.join(FREQUENCIES)})")
        try:
            return period_for(cfg.period_kind, cfg.period_key)
        except ValueError as exc:
            raise ExportRequestError(f"period_key: {exc}") from None
    if not (cfg.start_date and cfg.end_date):
        raise ExportRequestError("give a period (period_kind and period_key) or a date range (start_date, end_date)")
    try:
        first, last = dt.date.fromisoformat(cfg.start_date), dt.date.fromisoformat(cfg.end_date)
    except ValueError:
        raise ExportRequestError("start_date/end_date: expected YYYY-MM-DD dates") from None
    if last < first:
        raise ExportRequestError("end_date: must not be before start_date")
    return date_range(first, last)


def _filters(cfg: OnDemandConfig) -> dict[str, dict]:
    filters: dict[str, dict] = {}
    for key, value in cfg.filters.items():
        owners = [d for d in cfg.datasets if key in FILTERS[d]]
        if not owners:
            allowed = sorted({f for d in cfg.datasets for f in FILTERS[d]})
            raise ExportRequestError(
                f"filters.{key}: not a filter of {', '.join(cfg.datasets)} (allowed: {', '.join(allowed) or 'none'})"
            )
        for dataset in owners:
            try:
                filters.setdefault(dataset, {}).update(validate_filters(dataset, {key: value}))
            except ValueError as exc:
                raise ExportRequestError(f"filters.{key}: {exc}") from None
    return filters


@dg.op(
    retry_policy=RETRY_POLICY,
    description="Render the requested exports from the archive into exports/{business}/on_demand/...",
)
def on_demand_export(
    context: dg.OpExecutionContext, config: OnDemandConfig, storage: StorageResource, clock: ClockResource
) -> dg.Output:
    try:
        period, filters = resolve_request(config)
    except ExportRequestError as exc:
        raise dg.Failure(allow_retries=False, description=str(exc)) from None
    store = storage.get()
    by_id = {b.id: b for b in load_businesses(store)}
    if config.business_id not in by_id:
        raise dg.Failure(
            allow_retries=False,
            description=f"business_id: no business {config.business_id} in the archive "
            f"(known: {', '.join(map(str, by_id)) or 'none: run the daily archive first'})",
        )
    folder = f"exports/{config.business_id}/on_demand/{period.kind}-{period.key}-{context.run_id[:8]}"
    try:
        folder, entries = export_period(
            store,
            by_id[config.business_id],
            period,
            config.datasets,
            config.formats,
            filters=filters,
            folder=folder,
            now=clock.now(),
        )
    except LookupError as exc:
        raise dg.Failure(allow_retries=False, description=str(exc)) from None
    context.add_output_metadata(
        {
            "folder": dg.MetadataValue.path(store.uri(folder)),
            "files": dg.MetadataValue.md(
                "\n".join(f"- {store.uri(folder + '/' + e.name)} ({e.bytes} bytes)" for e in entries)
            ),
            "bytes": sum(e.bytes for e in entries),
        }
    )
    return dg.Output(folder)


@dg.job(description="Export one business for a chosen period or date range, datasets, formats and filters.")
def on_demand_export_job():
    on_demand_export()
