"""The filters each export accepts, as the reports apply them: the models of `core.filters` (the one definition),
and `validate_filters`, which the report builders and on-demand exports call.

Values may arrive as text (Launchpad config, command line, subscriptions) and are converted to their
type: `{"min_outstanding_balance": "100"}` -> `{"min_outstanding_balance": Decimal("100.00")}`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pos_exports.core.filters import FILTER_MODELS, FilterError, parse_filters


@dataclass(frozen=True)
class Filter:
    name: str
    help: str = ""


# dataset -> filter name -> Filter, in the models' order (docs/reports.md lists them so).
FILTERS: dict[str, dict[str, Filter]] = {
    dataset: {name: Filter(name, field.description or "") for name, field in model.model_fields.items()}
    for dataset, model in FILTER_MODELS.items()
}


def validate_filters(dataset: str, filters: dict | None) -> dict[str, object]:
    """The filters converted to their types; ValueError naming the bad filter and what is allowed.

    A filter given as None or "" is not applied (and left out of the result).
    """
    if dataset not in FILTERS:
        raise ValueError(f"unknown dataset {dataset!r} (allowed: {', '.join(FILTERS)})")
    for name in filters or {}:
        if name not in FILTERS[dataset]:
            names = ", ".join(FILTERS[dataset]) or "none: the sales export takes no filters"
            raise ValueError(f"{name!r} is not a filter of the {dataset} export (allowed: {names})")
    given = {k: v for k, v in (filters or {}).items() if not (v is None or (isinstance(v, str) and not v.strip()))}
    try:
        return parse_filters(dataset, given)
    except FilterError as exc:
        raise ValueError(f"filter {exc.name} of {dataset}: {exc.message}") from None
