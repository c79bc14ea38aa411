"""The shard rule on plain data (no Dagster): N shards together select each business exactly once."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pos_exports.shards import ShardError, select_shard


@dataclass
class Biz:
    id: int


def test_the_shards_of_a_fleet_cover_it_exactly_once():
    fleet = [Biz(i) for i in (1, 2, 3, 7, 10, 11, 12)]
    shards = [select_shard(fleet, i, 3, []) for i in range(3)]
    assert [[b.id for b in s] for s in shards] == [[3, 12], [1, 7, 10], [2, 11]]  # id % 3, by hand
    assert sorted(b.id for s in shards for b in s) == [b.id for b in fleet]


@pytest.mark.parametrize(
    ("index", "count", "ids", "message"),
    [
        (2, 2, [], "shard: index 2 is not below count 2 (accepted: 0..1)"),
        (0, 2, [3, 1], "business_ids: none of 1, 3 is in shard 0/2 (business_id % 2 == 0)"),
    ],
)
def test_a_shard_that_selects_nothing_it_should_is_one_clear_line(index, count, ids, message):
    scope = [Biz(i) for i in ids]
    with pytest.raises(ShardError) as err:
        select_shard(scope, index, count, ids)
    assert str(err.value) == message
