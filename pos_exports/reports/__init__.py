"""Reports: what each export says, built from the archive as format-neutral `model.Report`s.

`BUILDERS[dataset](storage, business, period, filters)` builds one business's report of a period;
`FILTERS` lists each dataset's filters and `validate_filters` checks and converts them.
"""

from __future__ import annotations

from collections.abc import Callable

from pos_exports.reports import audit, customers, inventory, sales
from pos_exports.reports.filters import FILTERS, Filter, validate_filters
from pos_exports.reports.model import Report

BUILDERS: dict[str, Callable[..., Report]] = {
    "sales": sales.build,
    "customers": customers.build,
    "inventory": inventory.build,
    "audit_log": audit.build,
}

__all__ = ["BUILDERS", "FILTERS", "Filter", "Report", "validate_filters"]
