"""What can be exported, and how often: the one list of each (the archive, reports, exports, subscriptions,
the CLI and the Launchpad all read these)."""

from __future__ import annotations

import enum


# Enums for typed configs (the Launchpad lists their members and rejects any other value before a run starts);
# str-valued, so a member is the plain name everywhere else.
class DatasetName(enum.StrEnum):
    sales = "sales"
    customers = "customers"
    inventory = "inventory"
    audit_log = "audit_log"


class FormatName(enum.StrEnum):
    xlsx = "xlsx"
    csv = "csv"
    pdf = "pdf"


class PeriodKind(enum.StrEnum):
    """A period's kind, which is also a subscription's frequency."""

    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"


DATASETS = tuple(d.value for d in DatasetName)
FORMATS = tuple(f.value for f in FormatName)
FREQUENCIES = tuple(k.value for k in PeriodKind)
# What a subscription's subject and message may name, as `{business_name}` (in this order in help texts).
PLACEHOLDERS = (
    "business_name",
    "period_label",
    "period_key",
    "frequency",
    "datasets",
    "timezone",
    "subscription_name",
)
# The values the reports compute and the filters accept (docs/reports.md, "Filters").
CUSTOMER_TYPES = ("retail", "wholesale")
CREDIT_STATUSES = ("good", "near_limit", "over_limit", "blocked")
STOCK_STATUSES = ("in_stock", "low_stock", "out_of_stock")
