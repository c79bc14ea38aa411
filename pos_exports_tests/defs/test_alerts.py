"""Failure alerts at a real SMTP server: per business from the runs' structured failed items, the data
team fleet-wide, every failed run (also the CLI's) exactly once; an alert that cannot be sent is retried."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import sqlalchemy as sa

from pos_exports.core.clock import utc_now
from pos_exports.defs.alerts import alert_outbox_sensor, failure_alert_sensor
from pos_exports.defs.archive import daily_archive
from pos_exports.defs.deliveries import delivery_job
from pos_exports.defs.exports import weekly_exports
from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource
from pos_exports.delivery import notify, subscriptions
from pos_exports.delivery.email import SmtpSettings
from pos_exports.failures import from_metadata
from pos_exports.state import alerted_runs, alerts, engine
from pos_exports_tests.fixtures import load_sqlite
from pos_exports_tests.operations.conftest import reindex_all
from pos_exports_tests.smtp_server import free_port

TEAM = "data-team@pos.example"
OWNERS = {1: "owner@accra.example", 2: "it@tokyo.example", 3: "ops@ny.example"}
NAMES = {1: "Accra Shop", 2: "東京ショップ", 3: "NY Shop"}
REFUSED = {1: "books@accra.example", 2: "keiri@tokyo.example", 3: "ledger@ny.example"}


def _setup(monkeypatch, tmp_path, smtp_server):
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url())
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", TEAM)
    eng = engine()
    for business_id, owner in OWNERS.items():
        subscriptions.save_settings(eng, {"business_id": business_id, "failure_recipients": [owner]}, now=utc_now())
    return eng


def _failure_context(instance, run_id, root, clock=None):
    run = instance.get_run_by_id(run_id)
    [event] = [
        e
        for e in instance.all_logs(run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
    ]
    return dg.build_run_status_sensor_context(
        sensor_name="failure_alert_sensor",
        dagster_event=event.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"storage": StorageResource(root=str(root)), "clock": clock or ClockResource()},
    ).for_run_failure()


def _messages(smtp_server):
    return [
        (
            sorted(r.rcpt_tos),
            r.message["To"],
            r.message["Subject"],
            r.message.get_body(("plain",)).get_content().replace("\r\n", "\n"),
        )
        for r in smtp_server.handler.received
    ]


def test_three_business_failures_alert_each_business_only_of_its_own(archived_root, tmp_path, smtp_server, monkeypatch):
    eng = _setup(monkeypatch, tmp_path, smtp_server)
    url = f"sqlite:///{tmp_path / 'pos.sqlite'}"  # the POS database archived_root was made from
    storage = {"storage": StorageResource(root=str(archived_root)), "clock": ClockResource()}
    smtp_server.handler.rcpt_replies = {a: ["550 5.1.1 no such user"] for a in REFUSED.values()}
    run_ids = []
    with dg.instance_for_test() as instance:
        # archive: the customers snapshot of 8 March was never captured, and it is now far too late to take it
        archive = dg.materialize(
            [daily_archive],
            partition_key="2025-03-08",
            selection=[dg.AssetKey("customers_archive")],
            resources={"pos_database": PosDatabase(url=url), **storage},
            instance=instance,
            raise_on_error=False,
        )
        # export: the sales archive of Wednesday 5 March is missing for every business
        for b in OWNERS:
            (archived_root / f"archive/sales/date=2025-03-05/business_id={b}/_reconciliation.json").unlink()
        reindex_all(archived_root)
        export = dg.materialize(
            [weekly_exports],
            partition_key="2025-03-03",
            selection=[dg.AssetKey("sales_weekly_export")],
            run_config={"ops": {"weekly_exports": {"config": {"render": "all"}}}},
            resources=storage,
            instance=instance,
            raise_on_error=False,
        )
        run_ids += [archive.run_id, export.run_id]
        # delivery: each business's bookkeeping address is refused by its mail server
        for b in OWNERS:
            sub = subscriptions.add(
                eng,
                {
                    "business_id": b,
                    "name": "Daily sales",
                    "datasets": ["sales"],
                    "formats": ["csv"],
                    "frequency": "daily",
                    "at": "07:00",
                    "recipients": [REFUSED[b]],
                },
                now=utc_now(),
            )
            cfg = {"subscription_id": sub.id, "period_kind": "daily", "period_key": "2025-03-09"}
            result = delivery_job.execute_in_process(
                run_config={"ops": {"deliver_subscription": {"config": cfg}}},
                resources=storage,
                instance=instance,
                raise_on_error=False,
                tags={"pos_exports/business": str(b)},
            )
            run_ids.append(result.run_id)
        for result in (archive, export):
            assert not result.success
        [archive_failure] = archive.get_step_failure_events()
        assert [
            (i.business_id, i.stage, i.dataset, i.period_key)
            for i in from_metadata(archive_failure.step_failure_data.user_failure_data.metadata)
        ] == [
            (1, "archive", "customers", "2025-03-08"),
            (2, "archive", "customers", "2025-03-08"),
            (3, "archive", "customers", "2025-03-08"),
        ]
        for run_id in run_ids:
            failure_alert_sensor(_failure_context(instance, run_id, archived_root))

    messages = _messages(smtp_server)
    for b, owner in OWNERS.items():
        own = [m for m in messages if owner in m[0]]
        assert len(own) == 3  # the archive, the export and its delivery
        for rcpt, to, subject, body in own:
            assert rcpt == [owner] and to == owner
            assert NAMES[b] in subject and NAMES[b] in body
            others = [x for o in OWNERS if o != b for x in (NAMES[o], OWNERS[o], REFUSED[o], f"business {o}")]
            assert not [x for x in others if x in subject + body], (subject, body)
            assert TEAM not in body and "Dagster" not in body and "run" not in body.lower().split()
    team = [m for m in messages if m[0] == [TEAM]]
    assert len(team) == 5 and len(messages) == 5 + 9
    [archive_team] = [m for m in team if "2025-03-08" in m[2]]
    assert (
        archive_team[2] == "[pos_exports] FAILED: __ephemeral_asset_job__ 2025-03-08 (3 failed item(s), 3 business(es))"
    )
    for b in OWNERS:
        assert f"business {b} ({NAMES[b]}) archive customers daily 2025-03-08: SnapshotNotCaptured" in archive_team[3]

    [(_, _, subject, body)] = [m for m in messages if m[0] == [OWNERS[2]] and "Customers data" in m[3]]
    assert subject == "東京ショップ: some exports for 8 Mar 2025 did not arrive"
    assert body == (
        "Hello 東京ショップ,\n\nSome of your exports for 8 Mar 2025 did not arrive:\n\n"
        "- Customers data of 8 Mar 2025: not archived, so the exports that need it are late or incomplete. "
        "Why: it was not captured in time, and the point-of-sale system keeps no history of it.\n\n"
        "You do not need to do anything: the data team has been told and is on it. "
        "Everything else was prepared as usual.\n\nPOS Exports\n"
    )
    [(_, _, subject, body)] = [m for m in messages if m[0] == [OWNERS[3]] and "not delivered" in m[3]]
    assert subject == "Action needed: NY Shop: some exports for 9 Mar 2025 did not arrive"
    assert body == (
        "Hello NY Shop,\n\nSome of your exports for 9 Mar 2025 did not arrive:\n\n"
        "- Sales export for 9 Mar 2025: not delivered. Why: the mail server for ledger@ny.example refused this "
        "address (550 5.1.1 no such user); please check it is right. Please act on this.\n\n"
        "Please act on the items marked so above; the data team has been told and takes care of the rest.\n\n"
        "POS Exports\n"
    )


def test_a_run_without_failed_items_alerts_the_data_team_and_the_tagged_business(tmp_path, smtp_server, monkeypatch):
    _setup(monkeypatch, tmp_path, smtp_server)
    root = tmp_path / "store"
    with dg.instance_for_test() as instance:
        result = delivery_job.execute_in_process(  # a config error: fleet-level, no per-business record
            run_config={
                "ops": {
                    "deliver_subscription": {
                        "config": {"subscription_id": 42, "period_kind": "daily", "period_key": "2025-03-09"}
                    }
                }
            },
            resources={"storage": StorageResource(root=str(root)), "clock": ClockResource()},
            instance=instance,
            raise_on_error=False,
            tags={"pos_exports/business": "1", "pos_exports/period": "2025-03-09"},
        )
        failure_alert_sensor(_failure_context(instance, result.run_id, root))
    [business, team] = _messages(smtp_server)
    assert business[:2] == ([OWNERS[1]], OWNERS[1])
    assert "no subscription 42" not in business[3] and "business 1 did not arrive" not in business[3]
    assert "a technical problem on our side" in business[3] and "You do not need to do anything" in business[3]
    assert team[:2] == ([TEAM], TEAM)
    assert team[2] == "[pos_exports] FAILED: delivery_job 2025-03-09 (business 1)"
    assert "subscription_id: no subscription 42" in team[3] and "fleet-level" in team[3]


def _naive_utc(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(tzinfo=None) if at.tzinfo else at


def test_the_alert_sensors_stamp_with_the_clock_resource_not_the_wall_clock(tmp_path, smtp_server, monkeypatch):
    eng = _setup(monkeypatch, tmp_path, smtp_server)
    root = tmp_path / "store"
    failed_at = dt.datetime(2025, 3, 10, 6, 0, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        result = delivery_job.execute_in_process(  # a config error: a fleet-level failure
            run_config={
                "ops": {
                    "deliver_subscription": {
                        "config": {"subscription_id": 42, "period_kind": "daily", "period_key": "2025-03-09"}
                    }
                }
            },
            resources={"storage": StorageResource(root=str(root)), "clock": ClockResource()},
            instance=instance,
            raise_on_error=False,
            tags={"pos_exports/business": "1", "pos_exports/period": "2025-03-09"},
        )
        failure_alert_sensor(_failure_context(instance, result.run_id, root, ClockResource.at(failed_at)))
    with eng.connect() as conn:
        rows = conn.execute(sa.select(alerts)).all()
        [alerted_at] = conn.execute(sa.select(alerted_runs.c.alerted_at)).scalars()
    assert len(rows) == 2 and _naive_utc(alerted_at) == _naive_utc(failed_at)
    assert {(_naive_utc(r.created_at), _naive_utc(r.sent_at)) for r in rows} == {(_naive_utc(failed_at),) * 2}

    retried_at = dt.datetime(2025, 3, 10, 6, 10, tzinfo=dt.UTC)  # a pending alert, sent by the outbox sensor
    notify.queue(eng, "failure", "[pos_exports] FAILED: daily_archive_job", "details", [TEAM], now=failed_at)
    context = dg.build_sensor_context(
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource.at(retried_at)}
    )
    alert_outbox_sensor(context)
    with eng.connect() as conn:
        last = conn.execute(sa.select(alerts).order_by(alerts.c.id.desc())).first()
    assert last.status == "sent" and _naive_utc(last.sent_at) == _naive_utc(retried_at)
    assert _naive_utc(last.created_at) == _naive_utc(failed_at)


def test_an_alert_that_cannot_be_sent_is_kept_and_retried(tmp_path, smtp_server):
    eng = engine(f"sqlite:///{tmp_path / 'state.db'}")
    notify.queue(
        eng, "failure", "[pos_exports] FAILED: daily_archive_job", "details", ["data-team@pos.example"], now=utc_now()
    )
    down = SmtpSettings.from_url(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    assert notify.flush(eng, down, tmp_path / "outbox", sleep=lambda s: None, now=utc_now()) == {
        "sent": 0,
        "pending": 1,
        "failed": 0,
    }
    with eng.connect() as conn:
        row = conn.execute(sa.select(alerts)).one()
    assert row.status == "pending" and row.attempts == 1 and row.last_error
    up = SmtpSettings.from_url(smtp_server.url())
    assert notify.flush(eng, up, tmp_path / "outbox", now=utc_now()) == {"sent": 1, "pending": 0, "failed": 0}
    assert len(smtp_server.handler.received) == 1
    assert notify.flush(eng, up, tmp_path / "outbox", now=utc_now()) == {"sent": 0, "pending": 0, "failed": 0}


def _location_origin():
    """The origin of this code location as the daemon and the UI know it (loaded by `workspace.yaml`)."""
    from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    return ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(module_name="pos_exports.definitions"), "pos_exports.definitions"
    )


def _launched_run_failed(instance, tags):
    """A delivery run as the daemon launches it (it carries the code location's origin), failed."""
    from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin

    from pos_exports.definitions import defs

    repository = RemoteRepositoryOrigin(_location_origin(), defs.get_repository_def().name)
    run = instance.create_run_for_job(
        job_def=delivery_job,
        remote_job_origin=RemoteJobOrigin(repository, "delivery_job"),
        status=dg.DagsterRunStatus.STARTED,
        run_config={
            "ops": {
                "deliver_subscription": {
                    "config": {"subscription_id": 7, "period_kind": "daily", "period_key": "2025-03-09"}
                }
            }
        },
        tags=tags,
    )
    instance.report_run_failed(run)


def _evaluate_as_the_daemon(sensor, instance, root, cursor):
    """Evaluate a sensor as the daemon does: in the code location `workspace.yaml` loads, with its cursor."""
    from dagster._core.definitions.sensor_definition import SensorEvaluationContext

    from pos_exports.definitions import defs

    origin = _location_origin()
    with SensorEvaluationContext(
        instance_ref=None,
        instance=instance,
        cursor=cursor,
        repository_name=defs.get_repository_def().name,
        repository_def=defs.get_repository_def(),
        sensor_name=sensor.name,
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource()},
        code_location_origin=origin,
    ) as context:
        return sensor.evaluate_tick(context).cursor


def test_every_failed_run_cli_or_launched_is_alerted_exactly_once(tmp_path, smtp_server, monkeypatch):
    import os
    import subprocess
    import sys

    from pos_exports.defs.alerts import in_process_failure_alert_sensor

    eng = _setup(monkeypatch, tmp_path, smtp_server)
    home, root = tmp_path / "dagster_home", tmp_path / "store"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    sub = subscriptions.add(
        eng,
        {
            "business_id": 1,
            "name": "Daily sales",
            "datasets": ["sales"],
            "formats": ["csv"],
            "frequency": "daily",
            "at": "07:00",
            "recipients": [REFUSED[1]],
        },
        now=utc_now(),
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "POS_DATABASE_URL": load_sqlite(tmp_path / "pos.sqlite"),
        "POS_EXPORTS_STORAGE": str(root),
    }
    sensors = [failure_alert_sensor, in_process_failure_alert_sensor]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        cursors = {s.name: _evaluate_as_the_daemon(s, instance, root, None) for s in sensors}  # first tick
        for command in (  # the delivery first: the archive run would write the business list it lacks
            ["subscriptions", "trigger", str(sub.id), "--period", "2025-03-09"],
            ["archive", "--date", "2025-03-08", "--dataset", "customers"],  # snapshots never captured
        ):
            cli = subprocess.run(
                [sys.executable, "-m", "pos_exports.cli", *command], env=env, capture_output=True, text=True
            )
            assert cli.returncode == 1, cli.stderr
        _launched_run_failed(instance, {"pos_exports/business": "3", "pos_exports/period": "2025-03-09"})
        assert len(instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))) == 3
        for _ in range(2):  # a tick evaluated again (its cursor lost in a crash) alerts nothing twice
            for s in sensors:
                _evaluate_as_the_daemon(s, instance, root, cursors[s.name])
    messages = _messages(smtp_server)
    team = [m for m in messages if m[0] == [TEAM]]
    assert sorted(m[2] for m in team) == [
        "[pos_exports] FAILED: daily_archive_job 2025-03-08..2025-03-08 (3 failed item(s), 3 business(es))",
        "[pos_exports] FAILED: delivery_job 2025-03-09 (business 1)",
        "[pos_exports] FAILED: delivery_job 2025-03-09 (business 3)",  # launched by the daemon: the other sensor
    ]
    owners = sorted(m[0][0] for m in messages if m[0] != [TEAM])
    assert owners == sorted([OWNERS[1], OWNERS[1], OWNERS[2], OWNERS[3], OWNERS[3]])
    [delivery_alert] = [m for m in messages if m[0] == [OWNERS[1]] and "9 Mar 2025" in m[2]]
    assert "Sales export for 9 Mar 2025: not delivered. Why: a technical problem on our side." in delivery_alert[3]
