"""Failure alerts reach a real SMTP server; an alert that cannot be sent stays queued and is retried."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from pos_exports.automation.delivery import delivery_job
from pos_exports.automation.notifications import failure_alert_sensor
from pos_exports.delivery import notify
from pos_exports.delivery.email import SmtpSettings
from pos_exports.delivery.state import alerts, engine
from pos_exports.delivery.subscriptions import save_settings
from pos_exports.source.resource import StorageResource
from pos_exports_tests.smtp_server import free_port


def _failed_run(instance, root):
    result = delivery_job.execute_in_process(
        run_config={
            "ops": {
                "deliver_subscription": {
                    "config": {"subscription_id": 42, "period_kind": "daily", "period_key": "2025-03-09"}
                }
            }
        },
        resources={"storage": StorageResource(root=str(root))},
        instance=instance,
        raise_on_error=False,
        tags={"pos_exports/business": "1"},
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    [event] = [
        e
        for e in instance.all_logs(result.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
    ]
    return run, event.dagster_event


def test_failed_run_alerts_the_data_team_and_the_business(tmp_path, smtp_server, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url())
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", "data-team@pos.example")
    save_settings(engine(), {"business_id": 1, "notify_failure": True, "failure_recipients": ["owner@kofi.example"]})
    with dg.instance_for_test() as instance:
        run, event = _failed_run(instance, tmp_path / "store")
        context = dg.build_run_status_sensor_context(
            sensor_name="failure_alert_sensor",
            dagster_event=event,
            dagster_instance=instance,
            dagster_run=run,
            resources={"storage": StorageResource(root=str(tmp_path / "store"))},
        ).for_run_failure()
        failure_alert_sensor(context)
    [received] = smtp_server.handler.received
    assert sorted(received.rcpt_tos) == ["data-team@pos.example", "owner@kofi.example"]
    message = received.message
    assert "FAILED: delivery_job" in message["Subject"] and "business 1" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert "no subscription 42" in text and "What to do" in text


def test_an_alert_that_cannot_be_sent_is_kept_and_retried(tmp_path, smtp_server):
    eng = engine(f"sqlite:///{tmp_path / 'state.db'}")
    notify.queue(eng, "failure", "[pos_exports] FAILED: daily_archive_job", "details", ["data-team@pos.example"])
    down = SmtpSettings.from_url(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    assert notify.flush(eng, down, tmp_path / "outbox", sleep=lambda s: None) == {"sent": 0, "pending": 1, "failed": 0}
    with eng.connect() as conn:
        row = conn.execute(sa.select(alerts)).one()
    assert row.status == "pending" and row.attempts == 1 and row.last_error
    up = SmtpSettings.from_url(smtp_server.url())
    assert notify.flush(eng, up, tmp_path / "outbox") == {"sent": 1, "pending": 0, "failed": 0}
    assert len(smtp_server.handler.received) == 1
    assert notify.flush(eng, up, tmp_path / "outbox") == {"sent": 0, "pending": 0, "failed": 0}


def test_fleet_run_failure_also_alerts_the_business_it_names(tmp_path, smtp_server, monkeypatch):
    import sqlite3

    from pos_exports.archive.assets import daily_archive
    from pos_exports.source.resource import PosDatabase
    from pos_exports_tests.fixtures import load_sqlite

    monkeypatch.setenv("POS_EXPORTS_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url())
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", "data-team@pos.example")
    save_settings(engine(), {"business_id": 2, "notify_failure": True, "failure_recipients": ["it@tokyo.example"]})
    url = load_sqlite(tmp_path / "pos.sqlite")
    with sqlite3.connect(tmp_path / "pos.sqlite") as conn:
        conn.execute("UPDATE sales SET total_cents = 'lots' WHERE id = 202")  # business 2's data is broken
    resources = {"pos_database": PosDatabase(url=url), "storage": StorageResource(root=str(tmp_path / "store"))}
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [daily_archive],
            partition_key="2025-03-09",
            selection=[dg.AssetKey("sales_archive")],
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        [event] = [
            e
            for e in instance.all_logs(result.run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
        ]
        context = dg.build_run_status_sensor_context(
            sensor_name="failure_alert_sensor",
            dagster_event=event.dagster_event,
            dagster_instance=instance,
            dagster_run=run,
            resources={"storage": StorageResource(root=str(tmp_path / "store"))},
        ).for_run_failure()
        failure_alert_sensor(context)
    [received] = smtp_server.handler.received
    assert sorted(received.rcpt_tos) == ["data-team@pos.example", "it@tokyo.example"]
    assert "2025-03-09" in received.message["Subject"]
    assert "business 2" in received.message.get_body(("plain",)).get_content()
