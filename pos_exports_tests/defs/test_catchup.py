"""Catch-up: missed archive days and missed deliveries are requested once, oldest first, a few per tick."""

import datetime as dt
import json
import shutil

import dagster as dg
import pytest
import sqlalchemy as sa

from pos_exports.core.clock import utc_now
from pos_exports.defs.archive import archive_job, daily_archive
from pos_exports.defs.catchup import catchup_sensor
from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource
from pos_exports.delivery import ledger, subscriptions
from pos_exports.operations import catchup, retention
from pos_exports.state import deliveries
from pos_exports.state import subscriptions as subscriptions_table
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.operations.conftest import reindex_all

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
    reindex_all(root)
    return url, root


def _evaluate(instance, root, now, cursor=None, monkeypatch=None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource.at(now)},
    )
    result = catchup_sensor(context)
    return (result if isinstance(result, list) else []), context.cursor


@pytest.fixture
def missed_events(archive_copy):
    """The archive of 3..10 March without the event datasets of 7, 8 and 9 March (their snapshots were captured)."""
    url, root = archive_copy
    for dataset in ("sales", "audit_log"):
        for day in [*MISSED, "2025-03-10"]:
            shutil.rmtree(root / "archive" / dataset / f"date={day}", ignore_errors=True)
    reindex_all(root)
    return url, root


def test_three_missed_archive_ticks_are_requested_once_what_is_lost_first_first(missed_ticks, state, monkeypatch):
    url, root = missed_ticks
    with dg.instance_for_test() as instance:
        requests, cursor = _evaluate(instance, root, NOW, None, monkeypatch)
        # 8 March's snapshots of Accra and New York close first (11 March 00:00 and 05:00 UTC); Tokyo's are
        # lost, so they get a run of their own. Then 9 March (snapshots), then 7 March's events (purged
        # 15 March); 8 March's events wait for the next tick (3 runs per tick).
        assert [r.run_key for r in requests] == [
            "catchup:archive:2025-03-08:snapshot",
            "catchup:archive:2025-03-09",
            "catchup:archive:2025-03-07",
        ]
        assert [r.partition_key for r in requests] == ["2025-03-08", "2025-03-09", "2025-03-07"]
        assert {r.job_name for r in requests} == {"daily_archive_job"}
        assert all(r.tags["pos_exports/catchup"] == "archive" for r in requests)
        selections = [sorted(k.to_user_string() for k in r.asset_selection) for r in requests]
        assert selections == [
            ["customers_archive", "inventory_archive"],  # Accra and New York can still be captured
            ["audit_log_archive", "customers_archive", "inventory_archive", "sales_archive"],  # still capturable
            ["audit_log_archive", "sales_archive"],  # 7 March: every snapshot is past its 48 h
        ]
        assert requests[0].run_config == {"ops": {"daily_archive": {"config": {"business_ids": [1, 3]}}}}
        assert requests[0].tags["dagster/priority"] == "10"  # dequeued before runs that can wait
        assert requests[2].run_config == {"ops": {"daily_archive": {"config": {"business_ids": [1, 2, 3]}}}}
        again, cursor2 = _evaluate(instance, root, NOW + dt.timedelta(minutes=15), cursor, monkeypatch)
        assert [r.run_key for r in again] == ["catchup:archive:2025-03-08"]
        assert selections_of(again) == [["audit_log_archive", "sales_archive"]]
        assert json.loads(cursor2)["archive"] == {
            "2025-03-07": 1,
            "2025-03-08": 1,
            "2025-03-08:snapshot": 1,
            "2025-03-09": 1,
        }
        requests = [r for r in requests if r.partition_key == "2025-03-07"]

        # The request is a valid run: executing 7 March fills that day's event gaps.
        defs = dg.Definitions(
            assets=[daily_archive],
            jobs=[archive_job],
            resources={
                "pos_database": PosDatabase(url=url),
                "storage": StorageResource(root=str(root)),
                "clock": ClockResource(),
            },
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


def selections_of(requests):
    return [sorted(k.to_user_string() for k in r.asset_selection) for r in requests]


def _fake_run(instance, status, tags):
    @dg.op
    def noop():
        pass

    @dg.job(name="some_job")
    def some_job():
        noop()

    return instance.create_run_for_job(job_def=some_job, status=status, tags=tags)


def test_nothing_while_a_catch_up_run_is_in_flight_and_a_failed_day_is_retried_once(missed_events, state, monkeypatch):
    _, root = missed_events
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


def test_a_day_another_run_is_archiving_is_left_to_it(missed_events, state, monkeypatch):
    _, root = missed_events
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
        now=utc_now(),
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
    ledger.open_rows(state, delivered.id, 1, "weekly", "2025-03-03", ["owner@kofi-shop.example"], None, now=utc_now())
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


def test_missed_deliveries_read_the_ledger_once_whatever_the_history(archive_copy, state, monkeypatch):
    _, root = archive_copy  # 3..10 March archived
    now = dt.datetime(2025, 3, 12, 9, tzinfo=UTC)
    subs = [
        _subscription(state, f"Daily {i}", dt.datetime(2024, 1, 1, tzinfo=UTC), frequency="daily", at="07:00")
        for i in range(5)
    ]
    for sub in subs:  # a long history: 60 emailed days before the horizon, plus 9 March emailed
        for day in [dt.date(2025, 1, 1) + dt.timedelta(days=d) for d in range(60)] + [dt.date(2025, 3, 9)]:
            ledger.open_rows(state, sub.id, 1, "daily", day.isoformat(), sub.recipients, None, now=utc_now())
    with state.begin() as conn:
        conn.execute(sa.update(deliveries).values(status="emailed"))
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "FROM deliveries" in statement:
            statements.append(statement)

    horizon = dt.datetime(2025, 3, 3, tzinfo=UTC)
    sa.event.listen(state, "before_cursor_execute", record)
    try:
        missed = catchup.missed_deliveries(LocalStorage(root), state, horizon, now)
    finally:
        sa.event.remove(state, "before_cursor_execute", record)
    # fires 3..11 March for 2..10 March: 2 March is not archived, 9 March was emailed
    expected = [f"2025-03-{d:02d}" for d in range(3, 11) if d != 9]
    assert [(m.subscription_id, m.key) for m in missed] == [(s.id, k) for k in expected for s in subs]
    assert len(statements) == 1  # one query for exactly the fires in question, not one history per subscription


def _started(instance, tags, started_at):
    """A run record that STARTED at `started_at` (its process may since have died)."""
    from dagster._core.events import DagsterEvent, DagsterEventType

    run = _fake_run(instance, dg.DagsterRunStatus.NOT_STARTED, tags)
    event = DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=run.job_name)
    instance.report_dagster_event(event, run.run_id, timestamp=started_at.timestamp())
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    return run


def _finish(instance, run):
    from dagster._core.events import DagsterEvent, DagsterEventType

    event = DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name)
    instance.report_dagster_event(event, run.run_id)


RUN_MONITORING = {"run_monitoring": {"enabled": True, "max_runtime_seconds": 7200}}


def test_a_dead_run_past_its_time_limit_blocks_nothing(missed_events, state, monkeypatch):
    _, root = missed_events
    monkeypatch.setenv("POS_EXPORTS_CATCHUP_MAX_RUNS", "1")
    catchup_tags = {"pos_exports/catchup": "archive", "pos_exports/catchup_day": "2025-03-07"}
    with dg.instance_for_test(overrides=RUN_MONITORING) as instance:
        # started 30 minutes ago with a 1 h limit: alive, catch-up waits
        run = _started(instance, {**catchup_tags, "dagster/max_runtime": "3600"}, NOW - dt.timedelta(minutes=30))
        assert _evaluate(instance, root, NOW, None, monkeypatch)[0] == []
        # an hour later it is still STARTED: its process died (killed), so it holds nothing up any more
        later = NOW + dt.timedelta(minutes=31)
        requests, _ = _evaluate(instance, root, later, None, monkeypatch)
        assert [r.run_key for r in requests] == ["catchup:archive:2025-03-07"]
        instance.report_run_failed(run)
        # no tag: the instance's run_monitoring.max_runtime_seconds (2 h) is the limit
        _started(instance, catchup_tags, NOW - dt.timedelta(hours=1))
        assert _evaluate(instance, root, NOW, None, monkeypatch)[0] == []
        requests, _ = _evaluate(instance, root, NOW + dt.timedelta(hours=1, minutes=1), None, monkeypatch)
        assert [r.run_key for r in requests] == ["catchup:archive:2025-03-07"]


def test_a_dead_schedule_run_does_not_keep_its_day_busy(missed_events, state, monkeypatch):
    _, root = missed_events
    with dg.instance_for_test(overrides=RUN_MONITORING) as instance:
        _started(instance, {"dagster/partition": "2025-03-07"}, NOW - dt.timedelta(hours=3))  # died 3 h ago
        _started(instance, {"dagster/partition": "2025-03-08"}, NOW - dt.timedelta(minutes=10))  # still on it
        requests, _ = _evaluate(instance, root, NOW, None, monkeypatch)
        assert [r.partition_key for r in requests] == ["2025-03-07", "2025-03-09"]


def test_the_local_instance_enables_run_monitoring(tmp_path):
    from pos_exports.config import project_home

    shutil.copy(project_home() / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:  # validated against Dagster's schema
        assert instance.run_monitoring_enabled
        # the default run launcher cannot see a dead process: a run is failed past its time limit
        assert instance.run_monitoring_max_runtime_seconds == 6 * 3600
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1


# Bare markers (MARKER_BUSINESSES: Accra UTC+0, Tokyo UTC+9) for 19 Feb .. 19 March; on 20 March 16:00 UTC
# with a 30-day POS retention, 28 Feb has 10 days left and 19 March's snapshots close in 32 h (Accra).
LATE = dt.datetime(2025, 3, 20, 16, tzinfo=UTC)


@pytest.fixture
def month_of_markers(marker_archive, monkeypatch):
    from pos_exports_tests.operations.conftest import days_between

    monkeypatch.setenv("POS_RETENTION_DAYS", "30")

    def make(missing):
        return marker_archive(days_between(dt.date(2025, 2, 19), dt.date(2025, 3, 19)), missing).root

    return make


def test_an_expiring_snapshot_is_requested_before_an_old_event_day(month_of_markers, state, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_CATCHUP_MAX_RUNS", "1")
    root = month_of_markers({("sales", dt.date(2025, 2, 28), 1), ("customers", dt.date(2025, 3, 19), 1)})
    with dg.instance_for_test() as instance:
        requests, cursor = _evaluate(instance, root, LATE, None, monkeypatch)
        assert [r.run_key for r in requests] == ["catchup:archive:2025-03-19"]
        assert selections_of(requests) == [["customers_archive"]]
        # while it runs, the old event day waits; the next tick after it, the event day comes
        run = _fake_run(instance, dg.DagsterRunStatus.STARTED, requests[0].tags)
        assert _evaluate(instance, root, LATE + dt.timedelta(minutes=15), cursor, monkeypatch)[0] == []
        _finish(instance, run)
        requests, _ = _evaluate(instance, root, LATE + dt.timedelta(minutes=30), cursor, monkeypatch)
        assert [r.run_key for r in requests] == ["catchup:archive:2025-02-28"]


def test_an_expiring_snapshot_is_requested_even_while_catch_up_runs_are_in_flight(month_of_markers, state, monkeypatch):
    root = month_of_markers({("sales", dt.date(2025, 2, 28), 1), ("inventory", dt.date(2025, 3, 19), 2)})
    with dg.instance_for_test() as instance:
        _fake_run(instance, dg.DagsterRunStatus.STARTED, {"pos_exports/catchup": "archive"})  # a long catch-up
        requests, _ = _evaluate(instance, root, LATE, None, monkeypatch)
        assert [r.run_key for r in requests] == ["catchup:archive:2025-03-19"]  # Tokyo's closes in 23 h
        assert requests[0].run_config["ops"]["daily_archive"]["config"]["business_ids"] == [2]


def test_a_backfill_of_the_events_does_not_keep_a_snapshot_from_being_captured(month_of_markers, state, monkeypatch):
    day = dt.date(2025, 3, 19)
    root = month_of_markers({(d, day, 1) for d in ("sales", "audit_log", "customers", "inventory")})
    with dg.instance_for_test() as instance:
        backfill = {
            "dagster/asset_partition_range_start": "2025-03-01",
            "dagster/asset_partition_range_end": "2025-03-19",
        }
        _fake_run(instance, dg.DagsterRunStatus.STARTED, backfill)  # asset_selection None: every dataset
        assert _evaluate(instance, root, LATE, None, monkeypatch)[0] == []

    with dg.instance_for_test() as instance:

        @dg.asset(name="sales_archive")
        def sales(): ...

        @dg.asset(name="audit_log_archive")
        def audit(): ...

        job = dg.define_asset_job("events_backfill", selection=[sales, audit]).resolve(
            asset_graph=dg.Definitions(assets=[sales, audit]).resolve_asset_graph()
        )
        instance.create_run_for_job(
            job_def=job,
            status=dg.DagsterRunStatus.STARTED,
            tags=backfill,
            asset_selection=frozenset({dg.AssetKey("sales_archive"), dg.AssetKey("audit_log_archive")}),
        )
        requests, _ = _evaluate(instance, root, LATE, None, monkeypatch)
        assert [r.run_key for r in requests] == ["catchup:archive:2025-03-19:snapshot"]
        assert selections_of(requests) == [["customers_archive", "inventory_archive"]]


def test_a_lost_snapshot_is_reported_once_and_never_requested(month_of_markers, state, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", "data@pos.example")
    lost_day = dt.date(2025, 3, 17)  # Accra's window closed on 19 March 00:00 UTC
    root = month_of_markers({("customers", lost_day, 1)})
    from pos_exports.state import alerts

    with dg.instance_for_test() as instance:
        cursor = None
        for tick in range(3):
            requests, cursor = _evaluate(instance, root, LATE + dt.timedelta(minutes=15 * tick), cursor, monkeypatch)
            assert requests == []
        _evaluate(instance, root, LATE + dt.timedelta(hours=6), None, monkeypatch)  # a reset cursor, too
    with state.connect() as conn:
        rows = conn.execute(sa.select(alerts)).all()
    assert len(rows) == 1
    [alert] = rows
    assert alert.recipients == ["data@pos.example"]
    assert "1 snapshot(s) lost" in alert.subject
    assert "customers of 2025-03-17 for business 1 Accra Shop" in alert.body
    assert "nothing will retry them" in alert.body


def _fail_at(instance, run, when):
    from dagster._core.events import DagsterEvent, DagsterEventType

    event = DagsterEvent(event_type_value=DagsterEventType.RUN_FAILURE.value, job_name=run.job_name)
    instance.report_dagster_event(event, run.run_id, timestamp=when.timestamp())
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_failed_snapshot_capture_is_retried_with_backoff_while_it_can_be_captured(
    month_of_markers, state, monkeypatch
):
    root = month_of_markers({("customers", dt.date(2025, 3, 19), 1)})  # Accra's window closes 21 March 00:00
    with dg.instance_for_test() as instance:
        requests, cursor = _evaluate(instance, root, LATE, None, monkeypatch)
        assert [r.run_key for r in requests] == ["catchup:archive:2025-03-19"]
        _fail_at(instance, _fake_run(instance, dg.DagsterRunStatus.STARTED, requests[0].tags), LATE)
        at = LATE
        keys = []
        for minutes in range(15, 8 * 60, 15):  # every tick for 8 hours
            at = LATE + dt.timedelta(minutes=minutes)
            requests, cursor = _evaluate(instance, root, at, cursor, monkeypatch)
            for r in requests:
                keys.append((r.run_key, minutes))
                _fail_at(instance, _fake_run(instance, dg.DagsterRunStatus.STARTED, r.tags), at)
        # 30 min after the first failure, then 1 h, 2 h, 4 h after each further one
        assert keys == [
            ("catchup:archive:2025-03-19:retry1", 30),
            ("catchup:archive:2025-03-19:retry2", 90),
            ("catchup:archive:2025-03-19:retry3", 210),
            ("catchup:archive:2025-03-19:retry4", 450),
        ]
        # once the window has closed it is lost: never requested again
        closed = dt.datetime(2025, 3, 21, 0, 15, tzinfo=UTC)
        assert _evaluate(instance, root, closed, cursor, monkeypatch)[0] == []
