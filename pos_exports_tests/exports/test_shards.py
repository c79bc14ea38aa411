"""Sharded period exports: the shard runs of a week together produce exactly the files of one run."""

from __future__ import annotations

import hashlib
import shutil

import dagster as dg

from pos_exports.defs.exports import weekly_exports
from pos_exports.defs.resources import ClockResource, StorageResource


def _run(root, shard=None):
    cfg = {"formats": ["csv"], "render": "all", **({"shard": shard} if shard else {})}  # every file, no subscriptions
    config = {"ops": {"weekly_exports": {"config": cfg}}}
    return dg.materialize(
        [weekly_exports],
        partition_key="2025-03-03",
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource()},
        run_config=config,
        raise_on_error=False,
    )


def _files(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "exports").rglob("*.csv")
    }


def test_two_export_shards_produce_the_files_of_one_run(archived_root, tmp_path):
    sharded = tmp_path / "sharded"
    shutil.copytree(archived_root, sharded)
    assert _run(archived_root).success
    first = _run(sharded, {"index": 0, "count": 2})
    assert first.success
    assert {p.split("/")[1] for p in _files(sharded)} == {"2"}  # shard 0 of 2: business 2 only
    assert _run(sharded, {"index": 1, "count": 2}).success
    whole = _files(archived_root)
    assert {p.split("/")[1] for p in whole} == {"1", "2", "3"}
    assert _files(sharded) == whole
