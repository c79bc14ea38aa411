"""Fleet shards: one archive or export run per slice of the businesses, so the run queue runs them in parallel.

A business belongs to shard `business_id % count`. The rule needs no list of the fleet and is stable: a
new business never moves the others to another shard (contiguous ranges over the sorted ids would shift
as ids are added or retired), and every id lands in exactly one shard, so N shards together cover
exactly what one run covers. Plain arithmetic: the Launchpad's `shard` config is `defs.shards.ShardConfig`.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

SHARD_TAG = "pos_exports/shard"


class ShardError(ValueError):
    """A shard that selects nothing it should: the message names the field and what it accepts."""


def in_shard(business_id: int, index: int, count: int) -> bool:
    return business_id % count == index


def shard_label(index: int, count: int) -> str:
    """The value of the run tag `pos_exports/shard` and the run-key suffix, e.g. `0/2`."""
    return f"{index}/{count}"


class _HasId(Protocol):
    id: int


B = TypeVar("B", bound=_HasId)


def select_shard(businesses: list[B], index: int, count: int, business_ids: list[int]) -> list[B]:
    """The businesses of shard `index` of `count` among those already in scope (`business_ids` and a shard
    intersect). ShardError for an index out of range, or explicit business ids none of which is in the shard."""
    if index >= count:
        raise ShardError(f"shard: index {index} is not below count {count} (accepted: 0..{count - 1})")
    kept = [b for b in businesses if in_shard(b.id, index, count)]
    if business_ids and not kept:
        raise ShardError(
            f"business_ids: none of {', '.join(map(str, sorted(set(business_ids))))} is in shard "
            f"{shard_label(index, count)} (business_id % {count} == {index})"
        )
    return kept
