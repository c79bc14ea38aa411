"""One failed business-dataset-period, carried by the run as structured data.

Archive, period exports and delivery attach the list of what failed to the `dg.Failure` they raise and
to their asset check results (metadata key `failed_items`). The failure sensor reads it back from the
step failure events (never from the error text) so that each business hears only of its own items and
the data team of all of them. Imports nothing else of the project (but the redaction of secrets), so every
stage can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from pos_exports.redact import scrub

if TYPE_CHECKING:  # Dagster is imported only by what uses it (rendering and archive reads do not)
    import dagster as dg

METADATA_KEY = "failed_items"

# Reasons in plain language, shared by the stages (the technical cause goes to `detail`).
TEMPORARY = "a temporary technical problem on our side; it is retried automatically"
ON_OUR_SIDE = "a technical problem on our side"


class FailedItem(BaseModel):
    """What one business did not get: a dataset of one period at one stage, and why."""

    model_config = ConfigDict(frozen=True)

    business_id: int
    business_name: str
    stage: Literal["archive", "export", "delivery"]
    dataset: str  # sales | customers | inventory | audit_log; a delivery: its datasets, comma-separated
    period_kind: str  # daily | weekly | monthly
    period_key: str  # 2025-03-09 | 2025-03-03 | 2025-03
    period_label: str  # 9 Mar 2025 | 3–9 Mar 2025 | March 2025
    reason: str  # plain language, shown to the business
    must_act: bool = False  # True only when the business itself can fix it (e.g. a refused address)
    transient: bool = False
    detail: str = ""  # the technical cause, for the data team only

    @classmethod
    def for_period(
        cls, business_id: int, business_name: str, stage: str, dataset: str, period: Any, reason: str, **more: Any
    ) -> FailedItem:
        """The item of one period (`period`: anything with `kind`, `key` and `label`, e.g. `reports.period.Period`)."""
        return cls(
            business_id=business_id,
            business_name=business_name,
            stage=stage,
            dataset=dataset,
            period_kind=period.kind,
            period_key=period.key,
            period_label=period.label,
            reason=reason,
            **more,
        )

    @field_validator("reason", "detail")
    @classmethod
    def _no_secret(cls, text: str) -> str:  # causes come from drivers, which may quote a URL with its password
        return scrub(text)

    def business_line(self) -> str:
        """The item as its business reads it: what did not arrive, why, and whether to act."""
        what = self.dataset.replace("_", " ").capitalize()
        outcome = {
            "archive": f"{what} data of {self.period_label}: not archived, so the exports that need it are late or "
            "incomplete",
            "export": f"{what} export for {self.period_label}: not produced",
            "delivery": f"{what} export for {self.period_label}: not delivered",
        }[self.stage]
        return f"{outcome}. Why: {self.reason}." + (" Please act on this." if self.must_act else "")

    def team_line(self) -> str:
        """The item as the data team reads it: ids, stage and the technical cause."""
        flags = ", ".join(f for f, on in (("transient", self.transient), ("business must act", self.must_act)) if on)
        return (
            f"business {self.business_id} ({self.business_name}) {self.stage} {self.dataset} "
            f"{self.period_kind} {self.period_key}: {self.detail or self.reason}" + (f" [{flags}]" if flags else "")
        )


def to_metadata(items: Iterable[FailedItem]) -> dict[str, dg.MetadataValue]:
    """The items as Dagster metadata (`failed_items`: a JSON list)."""
    import dagster as dg

    return {METADATA_KEY: dg.MetadataValue.json([item.model_dump() for item in items])}


def from_metadata(metadata: Mapping[str, Any] | None) -> list[FailedItem]:
    """The items recorded in a failure's or check's metadata (none when it has no `failed_items`)."""
    value = (metadata or {}).get(METADATA_KEY)
    if value is None:
        return []
    import dagster as dg

    data = value.value if isinstance(value, dg.MetadataValue) else value
    return [FailedItem.model_validate(item) for item in data]
