"""The filters each export accepts (docs/reports.md), their types, and their validation.

Values may arrive as text (Launchpad config, command line, subscriptions) and are converted to their
type: `{"min_outstanding_balance": "100"}` -> `{"min_outstanding_balance": Decimal("100.00")}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from pos_exports.core.words import truth
from pos_exports.reports.logic import CREDIT_STATUSES, STOCK_STATUSES, money


@dataclass(frozen=True)
class Filter:
    name: str
    type: type  # str | int | Decimal | bool
    choices: tuple[str, ...] | None = None  # the allowed values of a text filter, when fixed
    help: str = ""

    def describe(self) -> str:
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        return {
            str: "text",
            int: "a whole number (id)",
            Decimal: "an amount such as 100 or 250.50",
            bool: "true or false",
        }[self.type]


def _filters(*items: Filter) -> dict[str, Filter]:
    return {f.name: f for f in items}


FILTERS: dict[str, dict[str, Filter]] = {
    "sales": {},
    "customers": _filters(
        Filter("customer_type", str, ("retail", "wholesale"), "only customers of this type"),
        Filter("credit_status", str, CREDIT_STATUSES, "only customers with this credit status"),
        Filter("min_outstanding_balance", Decimal, None, "only customers owing at least this amount"),
        Filter("is_active", bool, None, "only active (true) or inactive (false) customers"),
    ),
    "inventory": _filters(
        Filter("storefront_id", int, None, "only this storefront"),
        Filter("category", str, None, "only products of this category (name, case-insensitive)"),
        Filter("stock_status", str, STOCK_STATUSES, "only items with this stock status"),
        Filter("min_quantity", int, None, "only items with at least this quantity"),
        Filter("exclude_zero_value", bool, None, "leave out items whose stock value at cost is 0"),
        Filter("include_movement_history", bool, None, "add the stock movements of the period"),
    ),
    "audit_log": _filters(
        Filter("event_type", str, None, "only events of this type (e.g. sale_completed)"),
        Filter("user_id", int, None, "only events of this user"),
        Filter("sale_id", int, None, "only events about this sale"),
        Filter("customer_id", int, None, "only events about this customer"),
    ),
}


def _convert(dataset: str, spec: Filter, value: object) -> object:
    bad = ValueError(f"filter {spec.name} of {dataset}: {value!r} is not valid (expected {spec.describe()})")
    if spec.type is bool:
        if isinstance(value, bool):
            return value
        if (flag := truth(str(value))) is None:
            raise bad
        return flag
    if spec.type is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise bad from None
    if spec.type is Decimal:
        if isinstance(value, bool):
            raise bad
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise bad from None
        if not amount.is_finite():
            raise bad
        return money(amount)
    text = str(value).strip()
    if spec.choices is not None:
        text = text.lower()
        if text not in spec.choices:
            raise bad
    elif not text:
        raise bad
    return text


def validate_filters(dataset: str, filters: dict | None) -> dict[str, object]:
    """The filters converted to their types; ValueError naming the bad filter and what is allowed.

    A filter given as None or "" is not applied (and left out of the result).
    """
    if dataset not in FILTERS:
        raise ValueError(f"unknown dataset {dataset!r} (allowed: {', '.join(FILTERS)})")
    allowed = FILTERS[dataset]
    out: dict[str, object] = {}
    for name, value in (filters or {}).items():
        if name not in allowed:
            names = ", ".join(allowed) if allowed else "none: the sales export takes no filters"
            raise ValueError(f"{name!r} is not a filter of the {dataset} export (allowed: {names})")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        out[name] = _convert(dataset, allowed[name], value)
    return out
