"""What can be exported, and how often: the one list of each (the archive, reports, exports, subscriptions,
the CLI and the Launchpad all read these)."""

from __future__ import annotations

DATASETS = ("sales", "customers", "inventory", "audit_log")
FORMATS = ("xlsx", "csv", "pdf")
FREQUENCIES = ("daily", "weekly", "monthly")
