"""Cleanup of old exports: a dry run deletes nothing; a real run deletes only old exports, never the archive."""

import datetime as dt
import json

import dagster as dg
import pytest

from pos_exports.archive.read import load_businesses
from pos_exports.defs.cleanup import cleanup_job, cleanup_schedule
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.exports.produce import export_period
from pos_exports.operations.cleanup import cleanup_exports
from pos_exports.reports.period import period_for
from pos_exports.storage.base import LocalStorage

TODAY = dt.date(2025, 4, 10)  # with 30 days: periods that ended before 11 March go
OLD = {
    "exports/1/daily/2025-03-03",  # rendered, manifest last_day 3 March
    "exports/1/weekly/2025-03-03",  # rendered, last_day 9 March
    "exports/1/subscriptions/7/weekly/2025-03-03",  # a subscription's own render
    "exports/1/daily/2025-01-15",  # no manifest: judged by its path
    "exports/2/on_demand/range-2025-03-01_2025-03-05-abcd1234",  # no manifest: range key in the path
}
YOUNG = {"exports/1/daily/2025-03-20", "exports/1/monthly/2025-03", "exports/1/daily/2025-03-11"}


def _files(root) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def exports_root(archive_copy):
    _, root = archive_copy
    storage = LocalStorage(root)
    accra = next(b for b in load_businesses(storage) if b.id == 1)
    export_period(storage, accra, period_for("daily", "2025-03-03"), ["sales"], ["csv"])
    export_period(storage, accra, period_for("weekly", "2025-03-03"), ["sales", "customers"], ["csv"])
    export_period(
        storage,
        accra,
        period_for("weekly", "2025-03-03"),
        ["sales"],
        ["csv"],
        folder="exports/1/subscriptions/7/weekly/2025-03-03",
    )
    for folder, last_day in [("exports/1/daily/2025-03-20", "2025-03-20"), ("exports/1/monthly/2025-03", "2025-03-31")]:
        storage.write_bytes(f"{folder}/sales.csv", b"a,b\n1,2\n")
        storage.write_bytes(f"{folder}/manifest.json", json.dumps({"period": {"last_day": last_day}}).encode())
    storage.write_bytes("exports/1/daily/2025-03-11/sales.csv", b"exactly 30 days: kept\n")
    storage.write_bytes("exports/1/daily/2025-01-15/sales.csv", b"no manifest\n")
    storage.write_bytes("exports/2/on_demand/range-2025-03-01_2025-03-05-abcd1234/sales.csv", b"x\n")
    storage.write_bytes("exports/1/daily/not-a-day/sales.csv", b"cannot be judged\n")
    storage.write_bytes("exports/README.txt", b"stray\n")
    storage.write_bytes("outbox/old.eml", b"an email\n")
    return root


def test_dry_run_lists_and_deletes_nothing(exports_root):
    before = _files(exports_root)
    report = cleanup_exports(LocalStorage(exports_root), TODAY, 30, dry_run=True)
    assert _files(exports_root) == before
    assert set(report.folders) == OLD
    assert report.count == len(report.keys) == sum(1 for k in before if any(k.startswith(f + "/") for f in OLD))
    assert report.bytes == sum((exports_root / k).stat().st_size for k in report.keys)
    assert report.kept == len(YOUNG)
    assert report.skipped == [
        "exports/1/daily/not-a-day: no manifest and no period in the path",
        "exports/README.txt: not in a known export folder",
    ]
    for folder in OLD - {"exports/1/daily/2025-01-15", "exports/2/on_demand/range-2025-03-01_2025-03-05-abcd1234"}:
        assert report.keys.index(f"{folder}/manifest.json") > max(
            report.keys.index(k) for k in report.keys if k.startswith(folder + "/") and not k.endswith("manifest.json")
        )  # the manifest goes last


def test_real_run_deletes_only_old_exports(exports_root, monkeypatch):
    before = _files(exports_root)
    expected = cleanup_exports(LocalStorage(exports_root), TODAY, 30, dry_run=True)
    with dg.instance_for_test() as instance:
        result = cleanup_job.execute_in_process(
            instance=instance,
            run_config={"ops": {"cleanup_exports_op": {"config": {"max_age_days": 30}}}},
            resources={
                "storage": StorageResource(root=str(exports_root)),
                "clock": ClockResource.at(dt.datetime(2025, 4, 10, 3, 30, tzinfo=dt.UTC)),
            },
        )
    assert result.success
    after = _files(exports_root)
    assert after == before - set(expected.keys)
    assert not any(k.startswith(f + "/") for k in after for f in OLD)
    assert {k for k in before if k.startswith(("archive/", "outbox/"))} <= after  # archive and outbox untouched
    assert any(k.startswith("archive/sales/") for k in after)
    for folder in YOUNG:
        assert any(k.startswith(folder + "/") for k in after), folder
    for folder in OLD:
        assert not (exports_root / folder).exists(), folder  # emptied directories are removed too
    assert (exports_root / "exports/1/daily").is_dir()
    [materialized] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    meta = {k: v.value for k, v in materialized.event_specific_data.metadata.items()}
    assert meta["count"] == expected.count == len(before) - len(after)
    assert meta["bytes"] == expected.bytes > 0
    assert sorted(meta["folders"]) == sorted(OLD) and meta["dry_run"] is False
    # nothing left to do
    assert cleanup_exports(LocalStorage(exports_root), TODAY, 30, dry_run=False).count == 0


def test_job_dry_run_and_max_age_from_the_environment(exports_root, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_EXPORT_MAX_AGE_DAYS", "60")  # only 15 January is that old
    before = _files(exports_root)
    result = cleanup_job.execute_in_process(
        run_config={"ops": {"cleanup_exports_op": {"config": {"dry_run": True}}}},
        resources={
            "storage": StorageResource(root=str(exports_root)),
            "clock": ClockResource.at(dt.datetime(2025, 4, 10, tzinfo=dt.UTC)),
        },
    )
    assert result.success and _files(exports_root) == before
    [output] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    meta = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert meta["max_age_days"] == 60 and meta["folders"] == ["exports/1/daily/2025-01-15"] and meta["count"] == 1


def test_never_deletes_outside_exports(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.write_bytes("archive/sales/date=2025-01-01/business_id=1/sales.parquet", b"keep")
    storage.write_bytes("exports/1/daily/2025-01-01/sales.csv", b"old")
    report = cleanup_exports(storage, TODAY, 0, dry_run=False)
    assert report.keys == ["exports/1/daily/2025-01-01/sales.csv"]
    assert storage.exists("archive/sales/date=2025-01-01/business_id=1/sales.parquet")


def test_schedule_runs_daily_at_0330_utc():
    assert cleanup_schedule.cron_schedule == "30 3 * * *" and cleanup_schedule.execution_timezone == "UTC"
    assert cleanup_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert cleanup_schedule.job_name == "cleanup_job"
