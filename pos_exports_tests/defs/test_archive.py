"""The archive assets in real Dagster runs: metadata, checks, isolation, clear failures."""

from __future__ import annotations

import sqlite3

import dagster as dg
import pytest

from pos_exports.archive.read import archived
from pos_exports.defs.archive import archive_partitions, daily_archive
from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.fixtures import DAY

EVENT_ASSETS = [dg.AssetKey("sales_archive"), dg.AssetKey("audit_log_archive")]


def _run(url, root, *, partition_key=DAY, selection=EVENT_ASSETS, run_config=None, tags=None, instance=None):
    return dg.materialize(
        [daily_archive],
        selection=selection,
        partition_key=partition_key,
        resources={
            "pos_database": PosDatabase(url=url),
            "storage": StorageResource(root=str(root)),
            "clock": ClockResource(),
        },
        run_config=run_config,
        tags=tags,
        instance=instance,
        raise_on_error=False,
    )


def _materializations(result, key):
    return [e.materialization for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)]


def test_run_archives_every_active_business_with_metadata_and_checks(fixture_db, tmp_path):
    with dg.instance_for_test() as instance:
        result = _run(fixture_db, tmp_path, instance=instance)
    assert result.success
    [sales] = _materializations(result, "sales_archive")
    meta = sales.metadata
    assert meta["rows_sales"].value == 3 + 2 + 2
    assert meta["rows_sale_items"].value == 4 + 2 + 2
    assert meta["rows_by_business_json"].value["1"] == {"sales": 3, "sale_items": 4, "payments": 2, "refunds": 1}
    assert meta["businesses"].value == 3  # business 4 is inactive
    assert meta["bytes"].value > 0
    checks = {(c.asset_key.to_user_string(), c.passed) for c in result.get_asset_check_evaluations()}
    assert checks == {("sales_archive", True), ("audit_log_archive", True)}
    storage = LocalStorage(tmp_path)
    assert archived(storage, "sales", 2, __import__("datetime").date(2025, 3, 9)) is not None


def test_one_bad_business_does_not_cost_the_others_their_archive(tmp_path):
    from pos_exports_tests.fixtures import load_sqlite

    url = load_sqlite(tmp_path / "pos.sqlite")
    conn = sqlite3.connect(tmp_path / "pos.sqlite")
    conn.execute("UPDATE sales SET total_cents = 'lots' WHERE id = 202")  # business 2's data is broken
    conn.commit()
    conn.close()
    result = _run(url, tmp_path / "store", selection=[dg.AssetKey("sales_archive")])
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "business 2" in failure.message and "total" in failure.message
    storage = LocalStorage(tmp_path / "store")
    day = __import__("datetime").date(2025, 3, 9)
    assert archived(storage, "sales", 1, day) is not None
    assert archived(storage, "sales", 3, day) is not None
    assert (
        archived(storage, "sales", 2, day) is None and storage.list("archive/sales/date=2025-03-09/business_id=2") == []
    )
    [check] = result.get_asset_check_evaluations()
    assert not check.passed


def test_unknown_business_id_is_a_clear_error(tmp_path):
    from pos_exports_tests.fixtures import load_sqlite

    url = load_sqlite(tmp_path / "pos.sqlite")
    result = _run(
        url, tmp_path / "store", run_config={"ops": {"daily_archive": {"config": {"business_ids": [1, 999]}}}}
    )
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "business_ids: no business with id 999" in message


def test_business_ids_limit_the_run(tmp_path):
    from pos_exports_tests.fixtures import load_sqlite

    url = load_sqlite(tmp_path / "pos.sqlite")
    result = _run(url, tmp_path / "store", run_config={"ops": {"daily_archive": {"config": {"business_ids": [2]}}}})
    assert result.success
    [sales] = _materializations(result, "sales_archive")
    assert list(sales.metadata["rows_by_business_json"].value) == ["2"]


def test_partition_key_that_is_not_a_date_is_refused(tmp_path):
    from pos_exports_tests.fixtures import load_sqlite

    url = load_sqlite(tmp_path / "pos.sqlite")
    with pytest.raises(Exception, match="not-a-date"):
        _run(url, tmp_path / "store", partition_key="not-a-date")


def test_unreachable_database_fails_the_run_with_a_clear_message(tmp_path):
    result = _run("postgresql://pos:pw@127.0.0.1:1/pos?connect_timeout=2", tmp_path / "store")
    assert not result.success
    # a lost connection is transient: the step is retried (2 retries) before the run fails
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retried) == 2
    error = result.get_step_failure_events()[0].step_failure_data.error
    message = error.message + (error.cause.message if error.cause else "")
    assert "cannot connect to the POS database" in message and "pw@" not in message


def test_snapshot_of_a_past_day_that_was_never_captured_fails_clearly(tmp_path):
    from pos_exports_tests.fixtures import load_sqlite

    url = load_sqlite(tmp_path / "pos.sqlite")
    result = _run(url, tmp_path / "store", selection=[dg.AssetKey("customers_archive")])
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "never captured" in message
    assert not list((tmp_path / "store").rglob("*.parquet"))


def test_a_date_range_is_one_run(tmp_path):
    from pos_exports_tests.fixtures import load_sqlite

    url = load_sqlite(tmp_path / "pos.sqlite")
    result = _run(
        url,
        tmp_path / "store",
        partition_key=None,
        tags={
            "dagster/asset_partition_range_start": "2025-03-08",
            "dagster/asset_partition_range_end": "2025-03-10",
        },
    )
    assert result.success
    sales = _materializations(result, "sales_archive")
    assert sorted(m.partition for m in sales) == ["2025-03-08", "2025-03-09", "2025-03-10"]
    # 03-08: R-105 and T-204; 03-09: the 7 of the single-day test; 03-10: R-103, T-203 and N-303.
    assert {m.partition: m.metadata["rows_sales"].value for m in sales} == {
        "2025-03-08": 2,
        "2025-03-09": 7,
        "2025-03-10": 3,
    }
    policy = daily_archive.backfill_policy
    assert policy.max_partitions_per_run == 31
    assert archive_partitions.timezone == "Etc/GMT+12"


def test_each_partition_of_a_range_run_records_its_own_rows_bytes_and_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_ARCHIVE_LAYOUT", "folders")  # it checks the files of each business-day folder
    """A 3-day run: each day's materialization event (read back from the instance) holds that day only."""

    from pos_exports_tests.fixtures import load_sqlite

    url = load_sqlite(tmp_path / "pos.sqlite")
    store = tmp_path / "store"
    days = ["2025-03-08", "2025-03-09", "2025-03-10"]
    range_tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    with dg.instance_for_test() as instance:
        result = _run(url, store, partition_key=None, tags=range_tags, instance=instance)
        assert result.success
        recorded = instance.fetch_materializations(dg.AssetKey("sales_archive"), limit=10).records
        meta = {r.partition_key: r.asset_materialization.metadata for r in recorded}
    assert sorted(meta) == days
    single_day_rows = {"2025-03-08": 2, "2025-03-09": 7, "2025-03-10": 3}  # sales rows of each day (fixtures)
    for day in days:
        files = sorted((store / "archive" / "sales" / f"date={day}").rglob("*.parquet"))
        assert meta[day]["rows_sales"].value == single_day_rows[day]
        assert meta[day]["bytes"].value == sum(f.stat().st_size for f in files)
        paths = meta[day]["paths"].value
        assert paths and all(f"/date={day}/" in p for p in paths)
        # the business-day folders (each holding its manifest and generation folders)
        assert sorted(paths) == sorted(
            {str(next(p for p in f.parents if p.name.startswith("business_id="))) for f in files}
        )
        by_business = meta[day]["rows_by_business_json"].value
        assert sum(per.get("sales", 0) for per in by_business.values()) == single_day_rows[day]
        assert meta[day]["rows"].value == sum(sum(per.values()) for per in by_business.values())
    assert len({meta[d]["bytes"].value for d in days}) == 3  # no day repeats the run's totals


def test_info_log_events_are_one_per_dataset_day_not_one_per_business(fixture_db, tmp_path):
    import logging

    with dg.instance_for_test() as instance:
        result = _run(fixture_db, tmp_path, instance=instance)
        assert result.success
        infos = [
            e.user_message
            for e in instance.all_logs(result.run_id)
            if not e.is_dagster_event and e.level == logging.INFO and e.step_key
        ]
    # 2 datasets x 1 day summaries + the opening line; 3 businesses would have given 6 per-business lines
    assert len(infos) == 1 + len(EVENT_ASSETS)
    assert any(m.startswith(f"sales {DAY}: 3 business(es)") for m in infos)
