"""What can be exported, and how often: the one list of each (the archive, reports, exports, subscriptions,
the CLI and the Launchpad all read these)."""

from __future__ import annotations

DATASETS = ("sales", "customers", "inventory", "audit_log")
FORMATS = ("xlsx", "csv", "pdf")
FREQUENCIES = ("daily", "weekly", "monthly")
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
