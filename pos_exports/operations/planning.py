"""Delivery planning: what the subscriptions ask of the period exports (plain functions of the state database)."""

from __future__ import annotations

import sqlalchemy as sa

from pos_exports import state
from pos_exports.delivery import subscriptions
from pos_exports.delivery.subscriptions import filters_for


def wanted_files(kind: str, eng: sa.Engine | None = None) -> set[tuple[int, str, str]]:
    """(business_id, dataset, format) that an active subscription of this frequency reads from the period's
    stored exports. A filtered subscription renders into its own folder, so it asks for nothing here."""
    return {
        (sub.business_id, d, f)
        for sub in subscriptions.find(eng or state.engine(), active=True)
        if sub.frequency == kind and not any(filters_for(sub, d) for d in sub.datasets)  # as deliver._files
        for d in sub.datasets
        for f in sub.formats
    }
