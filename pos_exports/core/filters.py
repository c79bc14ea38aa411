"""The filters each dataset's export accepts (docs/reports.md, "Filters"): one pydantic model per dataset, the only
definition of their names, types and allowed values. The reports, on-demand exports and subscriptions all
validate through `FILTER_MODELS`.

Values may arrive as text (Launchpad config, command line, YAML) and become their type:
`{"min_outstanding_balance": "100"}` -> `{"min_outstanding_balance": Decimal("100.00")}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pos_exports.core.catalog import CREDIT_STATUSES, CUSTOMER_TYPES, DATASETS, STOCK_STATUSES
from pos_exports.core.fields import Amount, Choice, Flag, Line, Whole, problems

MAX_TEXT = 100  # a text filter: one line of at most this many characters


class _Filters(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SalesFilters(_Filters):
    """The sales export takes no filter."""


class CustomersFilters(_Filters):
    customer_type: Choice(CUSTOMER_TYPES) | None = Field(None, description="only customers of this type")
    credit_status: Choice(CREDIT_STATUSES) | None = Field(None, description="only customers with this credit status")
    min_outstanding_balance: Amount | None = Field(None, description="only customers owing at least this amount")
    is_active: Flag | None = Field(None, description="only active (true) or inactive (false) customers")


class InventoryFilters(_Filters):
    storefront_id: Whole(low=1) | None = Field(None, description="only this storefront")
    category: Line(MAX_TEXT) | None = Field(None, description="only products of this category (name, case-insensitive)")
    stock_status: Choice(STOCK_STATUSES) | None = Field(None, description="only items with this stock status")
    min_quantity: Whole() | None = Field(None, description="only items with at least this quantity")
    exclude_zero_value: Flag | None = Field(None, description="leave out items whose stock value at cost is 0")
    include_movement_history: Flag | None = Field(None, description="add the stock movements of the period")


class AuditLogFilters(_Filters):
    event_type: Line(MAX_TEXT) | None = Field(None, description="only events of this type (e.g. sale_completed)")
    user_id: Whole(low=1) | None = Field(None, description="only events of this user")
    sale_id: Whole(low=1) | None = Field(None, description="only events about this sale")
    customer_id: Whole(low=1) | None = Field(None, description="only events about this customer")


FILTER_MODELS: dict[str, type[_Filters]] = {
    "sales": SalesFilters,
    "customers": CustomersFilters,
    "inventory": InventoryFilters,
    "audit_log": AuditLogFilters,
}
assert tuple(FILTER_MODELS) == DATASETS
# Each filter's dataset (the names do not collide across datasets, so a flat mapping of filters is unambiguous).
FILTER_DATASET = {name: ds for ds, model in FILTER_MODELS.items() for name in model.model_fields}


class FilterError(ValueError):
    """A filter that is not one of its dataset's, or a value it does not accept; `str()` is one line."""

    def __init__(self, name: str, message: str, *, unknown: bool = False) -> None:
        self.name, self.message, self.unknown = name, message, unknown
        super().__init__(f"{name}: {message}" if not unknown else message)


def parse_filters(dataset: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The filters of one dataset with their typed values (only those given), or a FilterError naming the filter:
    an unknown one (`unknown=True`), or a value its field refuses (`message`: what it accepts)."""
    model = FILTER_MODELS[dataset]
    for name in values:
        if name not in model.model_fields:
            raise FilterError(str(name), f"{name!r} is not a filter of the {dataset} export", unknown=True)
    try:
        parsed = model.model_validate(dict(values))
    except ValidationError as exc:
        name, _, message = problems(exc)[0]
        raise FilterError(name, message) from None
    return parsed.model_dump(exclude_unset=True)
