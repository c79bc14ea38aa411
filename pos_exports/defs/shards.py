"""The Launchpad's `shard` config of the archive and export jobs; the shard rule is `pos_exports.shards`."""

from __future__ import annotations

from typing import TypeVar

import dagster as dg
from pydantic import Field

from pos_exports.shards import ShardError, select_shard


class ShardConfig(dg.Config):
    index: int = Field(ge=0, description="This run's shard, 0 .. count-1.")
    count: int = Field(ge=1, description="How many shards the fleet is split into (POS_EXPORTS_SHARDS).")


B = TypeVar("B")


def apply_shard(businesses: list[B], shard: ShardConfig | None, business_ids: list[int]) -> list[B]:
    """The businesses of `shard` among those in scope; a shard that selects nothing it should fails the run
    without retries (the same config would fail the same way)."""
    if shard is None:
        return businesses
    try:
        return select_shard(businesses, shard.index, shard.count, business_ids)
    except ShardError as exc:
        raise dg.Failure(allow_retries=False, description=str(exc)) from None
