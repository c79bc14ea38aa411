"""Catch-up: missed archive days and missed deliveries are requested once, oldest first, a few per tick."""

import datetime as dt
import json
import shutil

import dagster as dg
import pytest
import sqlalchemy as sa

from pos_exports.archive.assets import archive_job, daily_archive
from pos_exports.automation import catchup, retention
from pos_exports.automation.catchup import catchup_sensor
from pos_exports.delivery import ledger, subscriptions
from pos_exports.delivery.state import deliveries
from pos_exports.delivery.state import subscriptions as subscriptions_table
from pos_exports.source.resource import PosDatabase, StorageResource
from pos_exports.storage.base import LocalStorage

UTC = dt.UTC
MISSED = ["2025-03-07", "2025-03-08", "2025-03-09"]
NOW = dt.datetime(2025, 3, 10, 16, tzinfo=UTC)  # 9 March is overdue since 15:00 UTC


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("POS_RETENTION_DAYS", "8")  # the POS holds 3..10 March on 10 March
    monkeypatch.delenv("POS_EXPORTS_CATCHUP_MAX_RUNS", raising=False)


@pytest.fixture
def missed_ticks(archive_copy):
    """The archive of 3..6 March: the daily archive ticks of 7, 8 and 9 March never ran."""
    url, root = archive_copy
    for dataset_dir in (root / "archive").iterdir():
        for day in [*MISSED, "2025-03-10"]:
            shutil.rmtree(dataset_dir / f"date={day}", ignore_errors=True)
    return url, root


def _evaluate(instance, root, now, cursor=None, monkeypatch=None):
    monkeypatch.setattr(catchup, "clock", lambda: now)
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"storage": StorageResource(root=str(root))}
    )
    result = catchup_sensor(context)
    return (result if isinstance(result, list) else []), context.cursor


def test_three_missed_archive_ticks_are_requested_once_oldest_first(missed_ticks, state, monkeypatch):
    url, root = missed_ticks
    with dg.instance_for_test() as instance:
        requests, cursor = _evaluate(instance, root, NOW, None, monkeypatch)
        assert [r.partition_key for r in requests] == MISSED
        assert [r.run_key for r in requests] == [f"catchup:archive:{d}" for d in MISSED]
        assert {r.job_name for r in requests} == {"daily_archive_job"}
        assert all(r.tags["pos_exports/catchup"] == "archive" for r in requests)
        selections = [sorted(k.to_user_string() for k in r.asset_selection) for r in requests]
        assert selections == [
            ["audit_log_archive", "sales_archive"],  # 7 March: every snapshot is past its 48 h
            ["audit_log_archive", "sales_archive"],  # 8 March: Tokyo's snapshots are lost, so none is taken
            ["audit_log_archive", "customers_archive", "inventory_archive", "sales_archive"],  # still capturable
        ]
        assert requests[0].run_config == {"ops": {"daily_archive": {"config": {"business_ids": [1, 2, 3]}}}}
        again, cursor2 = _evaluate(instance, root, NOW + dt.timedelta(minutes=15), cursor, monkeypatch)
        assert again == []
        assert json.loads(cursor2)["archive"] == {d: 1 for d in MISSED}

        # The request is a valid run: executing 7 March fills that day's event gaps.
        defs = dg.Definitions(
            assets=[daily_archive],
            jobs=[archive_job],
            resources={"pos_database": PosDatabase(url=url), "storage": StorageResource(root=str(root))},
        )
        first = requests[0]
        result = defs.resolve_job_def(first.job_name).execute_in_process(
            instance=instance,
            partition_key=first.partition_key,
            asset_selection=first.asset_selection,
            run_config=first.run_config,
            tags=first.tags,
        )
        assert result.success
        cov = retention.coverage(LocalStorage(root), NOW.date(), 8, now=NOW)
        assert not [g for g in cov.gaps if g.kind == "event" and g.day == dt.date(2025, 3, 7)]
        later, _ = _evaluate(instance, root, NOW + dt.timedelta(minutes=30), cursor2, monkeypatch)
        assert later == []


def _fake_run(instance, status, tags):
    @dg.op
    def noop():
        pass

    @dg.job(name="some_job")
    def some_job():
        noop()

    return instance.create_run_for_job(job_def=some_job, status=status, tags=tags)


def test_nothing_while_a_catch_up_run_is_in_flight_and_a_failed_day_is_retried_once(missed_ticks, state, monkeypatch):
    _, root = missed_ticks
    monkeypatch.setenv("POS_EXPORTS_CATCHUP_MAX_RUNS", "1")
    with dg.instance_for_test() as instance:
        requests, cursor = _evaluate(instance, root, NOW, None, monkeypatch)
        assert [r.run_key for r in requests] == ["catchup:archive:2025-03-07"]
        run = _fake_run(instance, dg.DagsterRunStatus.NOT_STARTED, requests[0].tags)
        assert _evaluate(instance, root, NOW, cursor, monkeypatch)[0] == []  # not started yet: wait
        instance.report_run_failed(run)  # the run failed and 7 March is still missing
        requests, cursor = _evaluate(instance, root, NOW, cursor, monkeypatch)
        assert [r.run_key for r in requests] == ["catchup:archive:2025-03-07:retry1"]
        instance.report_run_failed(_fake_run(instance, dg.DagsterRunStatus.STARTED, requests[0].tags))
        # given up on 7 March (the retention guard reports it): the next day comes
        requests, cursor = _evaluate(instance, root, NOW, cursor, monkeypatch)
        assert [r.run_key for r in requests] == ["catchup:archive:2025-03-08"]
        _fake_run(instance, dg.DagsterRunStatus.STARTED, {"pos_exports/catchup": "delivery"})
        assert _evaluate(instance, root, NOW, cursor, monkeypatch)[0] == []  # any catch-up run in flight


def test_a_day_another_run_is_archiving_is_left_to_it(missed_ticks, state, monkeypatch):
    _, root = missed_ticks
    with dg.instance_for_test() as instance:
        _fake_run(instance, dg.DagsterRunStatus.STARTED, {"dagster/partition": "2025-03-09"})  # the schedule's tick
        requests, _ = _evaluate(instance, root, NOW, None, monkeypatch)
        assert [r.partition_key for r in requests] == ["2025-03-07", "2025-03-08"]


def _subscription(eng, name, since, **fields):
    sub = subscriptions.add(
        eng,
        {
            "business_id": 1,
            "name": name,
            "datasets": ["sales", "customers"],
            "formats": ["csv"],
            "recipients": ["owner@kofi-shop.example"],
            **fields,
        },
    )
    with eng.begin() as conn:  # created (and last changed) back then, not at the test's wall-clock time
        conn.execute(
            sa.update(subscriptions_table)
            .where(subscriptions_table.c.id == sub.id)
            .values(created_at=since.replace(tzinfo=None), updated_at=since.replace(tzinfo=None))
        )
    return sub


def test_missed_deliveries_are_requested_once(archive_copy, state, monkeypatch):
    _, root = archive_copy  # 3..10 March archived
    monkeypatch.setenv("POS_RETENTION_DAYS", "10")
    monkeypatch.setenv("POS_EXPORTS_CATCHUP_MAX_RUNS", "2")
    now = dt.datetime(2025, 3, 12, 9, tzinfo=UTC)
    start = dt.datetime(2025, 3, 1, tzinfo=UTC)
    weekly = _subscription(state, "Weekly", start, frequency="weekly", day_of_week="monday", at="07:00")
    daily = _subscription(state, "Daily", dt.datetime(2025, 3, 9, 12, tzinfo=UTC), frequency="daily", at="07:00")
    delivered = _subscription(state, "Delivered", start, frequency="weekly", day_of_week="monday", at="06:00")
    ledger.open_rows(state, delivered.id, 1, "weekly", "2025-03-03", ["owner@kofi-shop.example"], None)
    with state.begin() as conn:
        conn.execute(sa.update(deliveries).values(status="emailed"))
    # changed after its only fire, which left no ledger row: it may have been paused then, so not caught up
    _subscription(state, "Changed", start, frequency="weekly", day_of_week="monday", at="05:00")
    with state.begin() as conn:
        conn.execute(
            sa.update(subscriptions_table)
            .where(subscriptions_table.c.name == "Changed")
            .values(updated_at=dt.datetime(2025, 3, 11))
        )
    with dg.instance_for_test() as instance:
        requests, cursor = _evaluate(instance, root, now, None, monkeypatch)
        # fires: weekly Mon 10 March 07:00 (week of 3 March), daily 10 March 07:00 (9 March),
        # daily 11 March 07:00 (10 March); 12 March's (11 March) waits for the archive.
        assert [r.run_key for r in requests] == [
            f"delivery:{weekly.id}:weekly:2025-03-03",
            f"delivery:{daily.id}:daily:2025-03-09",
        ]
        assert {r.job_name for r in requests} == {"delivery_job"}
        assert requests[0].run_config == {
            "ops": {
                "deliver_subscription": {
                    "config": {"subscription_id": weekly.id, "period_kind": "weekly", "period_key": "2025-03-03"}
                }
            }
        }
        assert requests[0].tags["pos_exports/catchup"] == "delivery"
        assert requests[0].tags["pos_exports/subscription"] == str(weekly.id)
        requests, cursor = _evaluate(instance, root, now + dt.timedelta(minutes=15), cursor, monkeypatch)
        assert [r.run_key for r in requests] == [f"delivery:{daily.id}:daily:2025-03-10"]
        requests, _ = _evaluate(instance, root, now + dt.timedelta(minutes=30), cursor, monkeypatch)
        assert requests == []
