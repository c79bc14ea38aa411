"""Trigger: one subscription's chosen period delivered now by the delivery job, on the Dagster instance (as the
Launchpad would, with a sensor run's tags); the ledger makes a second trigger of an emailed period send nothing."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from pos_exports.delivery.subscriptions import Subscription
from pos_exports.reports.period import period_for


def launch(eng: sa.Engine, sub: Subscription, period: str, instance: Any = None) -> dict[str, Any]:
    """Run the delivery of `sub` for `period` (ValueError: not a period key of its frequency); the run's outcome."""
    import dagster as dg

    from pos_exports.definitions import defs
    from pos_exports.defs.deliveries import run_request

    chosen = period_for(sub.frequency, period)
    request = run_request(sub.id, chosen.kind, chosen.key, sub.business_id)
    job = defs.resolve_job_def("delivery_job")
    with dg.DagsterInstance.get() if instance is None else _borrowed(instance) as inst:
        result = job.execute_in_process(
            instance=inst, run_config=request.run_config, tags=request.tags, raise_on_error=False
        )
    outcome = result.output_for_node("deliver_subscription") if result.success else "failed"
    said = {"already_sent": "already emailed to every recipient: nothing sent twice"}
    return {
        "run_id": result.run_id,
        "period_key": chosen.key,
        "outcome": outcome,
        "message": said.get(outcome, outcome),
    }


class _borrowed:  # noqa: N801 - a context manager that leaves the caller's instance open
    def __init__(self, instance: Any) -> None:
        self.instance = instance

    def __enter__(self) -> Any:
        return self.instance

    def __exit__(self, *exc: object) -> None:
        return None
