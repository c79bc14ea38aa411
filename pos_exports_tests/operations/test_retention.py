"""The retention guard: the plain function, the asset check in a real run, and the alerting sensor."""

import datetime as dt
import json

import dagster as dg
import pytest
import sqlalchemy as sa

from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.defs.retention import retention_guard, retention_guard_job, retention_guard_sensor
from pos_exports.operations.retention import coverage
from pos_exports.state import alerts
from pos_exports_tests.operations.conftest import days_between

UTC = dt.UTC
TODAY = dt.date(2025, 6, 1)
NOW = dt.datetime(2025, 6, 1, 18, tzinfo=UTC)  # Tokyo's 1 June has ended, Accra's has not
WINDOW = days_between(dt.date(2025, 3, 4), TODAY)  # the 90 days the POS still holds (TODAY - 89 ..)
WARN_DAY = TODAY - dt.timedelta(days=80)  # purged in 10 days
ERROR_DAY = TODAY - dt.timedelta(days=88)  # purged in 2 days


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.delenv("POS_RETENTION_DAYS", raising=False)
    monkeypatch.delenv("POS_EXPORTS_SMTP_URL", raising=False)


def test_no_gap_passes(marker_archive):
    cov = coverage(marker_archive(WINDOW), TODAY, now=NOW)
    assert cov.status == "ok" and cov.passed and cov.gaps == []
    assert cov.window_start == dt.date(2025, 3, 4) and cov.businesses == [1, 2]  # the inactive one is ignored


def test_gap_ten_days_before_purge_warns(marker_archive):
    storage = marker_archive(WINDOW, missing={("sales", WARN_DAY, 2)})
    cov = coverage(storage, TODAY, now=NOW)
    [gap] = cov.gaps
    assert (gap.business_id, gap.dataset, gap.day, gap.days_left, gap.level) == (2, "sales", WARN_DAY, 10, "warn")
    assert cov.status == "warn" and not cov.passed
    assert "2025-03-13" in cov.how_to_fix() and "audit_log_archive" in cov.how_to_fix()


def test_gap_two_days_before_purge_is_an_error(marker_archive):
    storage = marker_archive(WINDOW, missing={("audit_log", ERROR_DAY, 1), ("sales", WARN_DAY, 2)})
    cov = coverage(storage, TODAY, now=NOW)
    assert cov.status == "error"
    assert (cov.oldest.day, cov.oldest.days_left, cov.oldest.dataset) == (ERROR_DAY, 2, "audit_log")
    assert [g.level for g in cov.gaps] == ["error", "warn"]


def test_days_left_counts_to_the_purge(marker_archive):
    first, young = WINDOW[0], TODAY - dt.timedelta(days=20)
    storage = marker_archive(WINDOW, missing={("sales", first, 1), ("sales", young, 1)})
    gaps = {g.day: g for g in coverage(storage, TODAY, now=NOW).gaps}
    assert gaps[first].days_left == 1 and gaps[first].level == "error"  # the last day it can be backfilled
    assert gaps[young].days_left == 70 and gaps[young].level == "info"
    # a day older than the window is purged already: not reported
    assert min(gaps) == first


def test_only_old_info_gaps_pass_with_status_info(marker_archive):
    storage = marker_archive(WINDOW, missing={("sales", TODAY - dt.timedelta(days=30), 1)})
    cov = coverage(storage, TODAY, now=NOW)
    assert cov.status == "info" and cov.passed


def test_snapshots_lost_or_still_capturable(marker_archive):
    lost, capturable = TODAY - dt.timedelta(days=5), TODAY - dt.timedelta(days=1)  # 27 May, 31 May
    storage = marker_archive(WINDOW, missing={("customers", lost, 1), ("inventory", capturable, 2)})
    gaps = {g.dataset: g for g in coverage(storage, TODAY, now=NOW).gaps}
    assert gaps["customers"].level == "lost" and not gaps["customers"].recoverable
    # Tokyo's 31 May ended 31 May 15:00 UTC: capturable until 2 June 15:00, overdue since 1 June 15:00
    assert gaps["inventory"].level == "error" and gaps["inventory"].recoverable
    only_lost = marker_archive(WINDOW, missing={("customers", lost, 1)})
    assert coverage(only_lost, TODAY, now=NOW).status == "info"  # a lost snapshot never fails the guard


def test_a_day_the_schedule_has_not_archived_yet_is_pending(marker_archive):
    storage = marker_archive(WINDOW[:-1])  # Tokyo's 1 June (ended 15:00 UTC) not archived yet
    cov = coverage(storage, TODAY, now=NOW)
    assert {(g.business_id, g.day, g.level) for g in cov.gaps} == {(2, TODAY, "pending")}
    assert cov.status == "info" and cov.passed


def test_window_starts_at_the_first_partition(marker_archive):
    storage = marker_archive(days_between(dt.date(2025, 5, 1), TODAY))
    assert coverage(storage, TODAY, now=NOW, start=dt.date(2025, 5, 1)).status == "ok"
    assert coverage(storage, TODAY, now=NOW, start=dt.date(2025, 1, 1)).status == "error"


def test_no_business_list_warns(tmp_path):
    from pos_exports.storage.base import LocalStorage

    cov = coverage(LocalStorage(tmp_path / "empty"), TODAY, now=NOW)
    assert cov.status == "warn" and cov.notes


def _run_check(root) -> dg.AssetCheckEvaluation:
    defs = dg.Definitions(
        asset_checks=[retention_guard],
        jobs=[retention_guard_job],
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource.at(NOW)},
    )
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("retention_guard_job").execute_in_process(instance=instance)
    assert result.success  # a failed check is not a failed run
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.asset_check_key == dg.AssetCheckKey(dg.AssetKey("sales_archive"), "retention_guard")
    return evaluation


@pytest.mark.parametrize(
    ("missing", "passed", "severity", "days_left"),
    [
        (set(), True, None, 90),
        ({("sales", WARN_DAY, 2)}, False, dg.AssetCheckSeverity.WARN, 10),
        ({("sales", ERROR_DAY, 1)}, False, dg.AssetCheckSeverity.ERROR, 2),
    ],
)
def test_asset_check_in_a_real_run(marker_archive, missing, passed, severity, days_left):
    storage = marker_archive(WINDOW, missing=missing)
    evaluation = _run_check(storage.root)
    assert evaluation.passed is passed
    if severity is not None:
        assert evaluation.severity == severity
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["gaps"] == len(missing) and meta["days_left"] == days_left
    if missing:
        [(dataset, day, business)] = missing
        assert meta["oldest_gap"] == day.isoformat()
        assert f"| {business} " in meta["gaps_table"] and dataset in meta["gaps_table"]
        assert "sales_archive" in meta["how_to_fix"] and "audit_log_archive" in meta["how_to_fix"]


def _sensor(root, cursor=None, now=NOW):
    context = dg.build_sensor_context(
        cursor=cursor, resources={"storage": StorageResource(root=str(root)), "clock": ClockResource.at(now)}
    )
    result = retention_guard_sensor(context)
    return result, context.cursor


def test_sensor_emails_the_data_team_once_per_day_and_status(marker_archive, state, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", "data-team@pos.example")
    storage = marker_archive(WINDOW, missing={("sales", WARN_DAY, 2)})
    result, cursor = _sensor(storage.root)
    assert isinstance(result, dg.RunRequest) and result.run_key == f"retention_guard:{TODAY}:warn"
    [eml] = list((storage.path("outbox")).glob("*.eml"))  # no SMTP server: the outbox
    assert b"retention guard WARN" in eml.read_bytes()
    _sensor(storage.root, cursor)  # six hours later, same day and status: no second email
    with state.connect() as conn:
        rows = conn.execute(sa.select(alerts)).all()
    assert [(r.kind, r.status, list(r.recipients)) for r in rows] == [("retention", "sent", ["data-team@pos.example"])]
    assert "2025-03-13" in rows[0].body and "How to fix" in rows[0].body
    # the next day (now 3 days closer to the purge... still warn): one new email
    _, cursor = _sensor(storage.root, cursor, NOW + dt.timedelta(days=1))
    with state.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alerts)).scalar() == 2
    assert json.loads(cursor)["status"] == "warn"


def test_sensor_stays_quiet_when_ok(marker_archive, state, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", "data-team@pos.example")
    storage = marker_archive(WINDOW)
    _sensor(storage.root)
    with state.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alerts)).scalar() == 0
