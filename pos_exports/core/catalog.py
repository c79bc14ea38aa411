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
