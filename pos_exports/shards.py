"""Fleet shards: one archive or export run per slice of the businesses, so the run queue runs them in parallel.

A business belongs to shard `business_id % count`. The rule needs no list of the fleet and is stable: a
new business never moves the others to another shard (contiguous ranges over the sorted ids would shift
as ids are added or retired), and every id lands in exactly one shard, so N shards together cover
exactly what one run covers.
"""

from __future__ import annotations

from typing import TypeVar

import dagster as dg
from pydantic import Field

SHARD_TAG = "pos_exports/shard"


class ShardConfig(dg.Config):
    index: int = Field(ge=0, description="This run's shard, 0 .. count-1.")
    count: int = Field(ge=1, description="How many shards the fleet is split into (POS_EXPORTS_SHARDS).")


def in_shard(business_id: int, index: int, count: int) -> bool:
    return business_id % count == index


def shard_label(index: int, count: int) -> str:
    """The value of the run tag `pos_exports/shard` and the run-key suffix, e.g. `0/2`."""
    return f"{index}/{count}"


B = TypeVar("B")


def apply_shard(businesses: list[B], shard: ShardConfig | None, business_ids: list[int]) -> list[B]:
    """The businesses of `shard` among those already in scope (`business_ids` and a shard intersect).

    An invalid shard, or explicit business ids none of which is in the shard, is a clear error."""
    if shard is None:
        return businesses
    if shard.index >= shard.count:
        raise dg.Failure(
            allow_retries=False,
            description=f"shard: index {shard.index} is not below count {shard.count} (accepted: 0..{shard.count - 1})",
        )
    kept = [b for b in businesses if in_shard(b.id, shard.index, shard.count)]
    if business_ids and not kept:
        raise dg.Failure(
            allow_retries=False,
            description=f"business_ids: none of {', '.join(map(str, sorted(set(business_ids))))} is in shard "
            f"{shard_label(shard.index, shard.count)} (business_id % {shard.count} == {shard.index})",
        )
    return kept
