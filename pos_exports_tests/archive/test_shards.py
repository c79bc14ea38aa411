"""Sharded fleet runs (POS_EXPORTS_SHARDS): N archive runs over business-id shards equal one run, row for row."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from pos_exports.archive import delta, extract
from pos_exports.archive.index import business_ids_on
from pos_exports.archive.read import archived, read_table
from pos_exports.archive.tables import DATASETS
from pos_exports.defs.archive import daily_archive
from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource
from pos_exports.defs.schedules import SCHEDULES
from pos_exports.shards import SHARD_TAG
from pos_exports.state import engine
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.fixtures import DAY, load_sqlite

D = dt.date.fromisoformat(DAY)
ACTIVE = [1, 2, 3]  # the fixture's active businesses; business 4 is inactive


# an instant after D has ended for every business and while its snapshots can still be captured
NOW = dt.datetime(2025, 3, 10, 6, tzinfo=dt.UTC)


def _run(url, root, instance, run_config=None, tags=None):
    return dg.materialize(
        [daily_archive],
        partition_key=DAY,
        resources={
            "pos_database": PosDatabase(url=url),
            "storage": StorageResource(root=str(root)),
            "clock": ClockResource.at(NOW),
        },
        run_config=run_config,
        tags=tags,
        instance=instance,
        raise_on_error=False,
    )


def _materializations(result, key: str) -> list[dg.AssetMaterialization]:
    return [e.materialization for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)]


def _schedule_requests(monkeypatch, count: int) -> list[dg.RunRequest]:
    monkeypatch.setenv("POS_EXPORTS_SHARDS", str(count))
    [schedule] = [s for s in SCHEDULES if s.name == "daily_archive_schedule"]
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2025, 3, 10, 12, 30, tzinfo=dt.UTC))
    return list(schedule.evaluate_tick(context).run_requests)


def _state(root) -> str:
    """The state database (and so the archive index) of the archive at `root`: one each, to compare them."""
    return f"sqlite:///{root}.state.db"


def _whole_archive(root) -> dict:
    """Every archived table of every dataset and business on D, as read back through archive/read.py, and
    the businesses the archive index lists per dataset."""
    store = LocalStorage(root)
    out = {}
    for name, ds in DATASETS.items():
        out[name, "businesses"] = business_ids_on(engine(_state(root)), name, D)
        for business in ACTIVE:
            assert archived(store, name, business, D) is not None, (name, business)
            for table in ds.tables:
                out[name, business, table.name] = read_table(store, name, table.name, business, [D]).to_pylist()
    return out


def test_a_two_shard_archive_run_equals_a_one_shard_run_row_for_row(tmp_path, monkeypatch):
    url = load_sqlite(tmp_path / "pos.sqlite")
    requests = _schedule_requests(monkeypatch, 2)
    with dg.instance_for_test() as instance:
        monkeypatch.setenv("POS_EXPORTS_STATE_URL", _state(tmp_path / "one"))
        one = _run(url, tmp_path / "one", instance)
        monkeypatch.setenv("POS_EXPORTS_STATE_URL", _state(tmp_path / "two"))
        shards = [_run(url, tmp_path / "two", instance, r.run_config, r.tags) for r in requests]
    assert one.success and all(r.success for r in shards)
    whole, sharded = _whole_archive(tmp_path / "one"), _whole_archive(tmp_path / "two")
    assert sharded == whole
    assert whole["sales", "businesses"] == set(ACTIVE)
    assert sum(len(v) for k, v in whole.items() if len(k) == 3) > 0  # the fixture's rows, not two empty archives
    # each shard archived only its own businesses (business_id % 2), never the other shard's
    per_shard = [
        {int(b) for m in _materializations(r, "sales_archive") for b in m.metadata["rows_by_business_json"].value}
        for r in shards
    ]
    assert per_shard == [{2}, {1, 3}]


def test_schedule_tick_asks_for_one_run_per_shard_with_distinct_tags_and_run_keys(monkeypatch):
    [single] = _schedule_requests(monkeypatch, 1)
    assert single.partition_key == DAY and SHARD_TAG not in single.tags and single.run_key == DAY
    requests = _schedule_requests(monkeypatch, 3)
    assert [r.tags[SHARD_TAG] for r in requests] == ["0/3", "1/3", "2/3"]
    assert len({r.run_key for r in requests}) == 3 and all(r.partition_key == DAY for r in requests)
    assert [r.run_config["ops"]["daily_archive"]["config"]["shard"] for r in requests] == [
        {"index": i, "count": 3} for i in range(3)
    ]


def test_export_schedules_shard_too(monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_SHARDS", "2")
    [schedule] = [s for s in SCHEDULES if s.name == "weekly_exports_schedule"]
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2025, 3, 10, 15, tzinfo=dt.UTC))
    requests = list(schedule.evaluate_tick(context).run_requests)
    assert [r.partition_key for r in requests] == ["2025-03-03", "2025-03-03"]
    assert [r.run_config["ops"]["weekly_exports"]["config"]["shard"]["index"] for r in requests] == [0, 1]


def test_a_failing_shard_fails_only_its_run(tmp_path, monkeypatch):
    url = load_sqlite(tmp_path / "pos.sqlite")
    requests = _schedule_requests(monkeypatch, 2)
    real = extract.archive_business_day

    def broken_for_shard_1(reader, store, ds, business, *args, **kwargs):
        if business.id % 2 == 1:
            raise RuntimeError("disk full")
        return real(reader, store, ds, business, *args, **kwargs)

    monkeypatch.setattr("pos_exports.defs.archive.archive_business_day", broken_for_shard_1)
    real_stage = delta.stage_business_day  # the same fault in the Delta layout (POS_EXPORTS_ARCHIVE_LAYOUT=delta)

    def broken_stage(reader, store, ds, business, *args, **kwargs):
        if business.id % 2 == 1:
            raise RuntimeError("disk full")
        return real_stage(reader, store, ds, business, *args, **kwargs)

    monkeypatch.setattr(delta, "stage_business_day", broken_stage)
    with dg.instance_for_test() as instance:
        ok, failed = (_run(url, tmp_path / "store", instance, r.run_config, r.tags) for r in requests)
        assert ok.success and not failed.success
        shard_0 = instance.fetch_materializations(dg.AssetKey("sales_archive"), limit=10).records
        assert [r.event_log_entry.run_id for r in shard_0] == [ok.run_id]
        assert instance.get_run_by_id(ok.run_id).tags[SHARD_TAG] == "0/2"
    assert business_ids_on(engine(), "sales", D) == {2}


@pytest.mark.parametrize(
    ("shard", "ids", "message"),
    [
        ({"index": 2, "count": 2}, [], "shard: index 2 is not below count 2"),
        ({"index": 0, "count": 2}, [1, 3], "business_ids: none of 1, 3 is in shard 0/2"),
    ],
)
def test_a_bad_shard_selection_fails_clearly_before_writing(tmp_path, shard, ids, message):
    url = load_sqlite(tmp_path / "pos.sqlite")
    config = {"ops": {"daily_archive": {"config": {"shard": shard, "business_ids": ids}}}}
    with dg.instance_for_test() as instance:
        result = _run(url, tmp_path / "store", instance, config)
    assert not result.success
    assert message in result.get_step_failure_events()[0].step_failure_data.error.message
    assert not list((tmp_path / "store").rglob("*.parquet"))


def test_business_ids_and_a_shard_intersect(tmp_path):
    url = load_sqlite(tmp_path / "pos.sqlite")
    config = {"ops": {"daily_archive": {"config": {"shard": {"index": 1, "count": 2}, "business_ids": [1, 2]}}}}
    with dg.instance_for_test() as instance:
        assert _run(url, tmp_path / "store", instance, config).success
    assert business_ids_on(engine(), "sales", D) == {1}


def test_a_bad_shard_count_is_refused_naming_the_variable(monkeypatch):
    from pos_exports.config import SettingsError, settings

    monkeypatch.setenv("POS_EXPORTS_SHARDS", "0")
    with pytest.raises(SettingsError, match=r"POS_EXPORTS_SHARDS: .*at least 1"):
        settings()
