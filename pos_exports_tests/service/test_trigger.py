"""The API's trigger launches a real delivery run through Dagster's GraphQL launch, as the Launchpad does: on an
`instance_for_test`, the project's code location served by its own gRPC process, the run launched by the
instance's run launcher (a subprocess), emailing the real SMTP test server; nothing is sent twice."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from pos_exports import state
from pos_exports.core.clock import utc_now
from pos_exports.delivery import ledger, subscriptions
from pos_exports.operations import tokens
from pos_exports.service.app import create_app
from pos_exports.service.trigger import ALREADY_SENT
from pos_exports.state import engine
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.service.conftest import serving

WEEK = "2025-03-03"
# Dagster's default coordinator queues runs for the daemon; this one hands them to the run launcher at once
LAUNCH_AT_ONCE = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}}
OWNER, ACCOUNTS = "owner@accra.example", "accounts@accra.example"


def _finished(instance: dg.DagsterInstance, run_id: str, patience: float = 900) -> dg.DagsterRun:
    """The run once Dagster says it ended (a wait, not a timed assertion: patience only bounds a hung run)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish: {instance.get_run_by_id(run_id)}")


@contextlib.contextmanager
def dagster_webserver(instance: dg.DagsterInstance) -> Iterator[str]:
    """Dagster's own webserver app (its GraphQL endpoint) on the project's code location, on a real uvicorn."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster_webserver.app import create_app_from_workspace_process_context

    target = ModuleTarget(
        module_name="pos_exports.definitions", attribute=None, working_directory=None, location_name=None
    )
    with WorkspaceProcessContext(instance, target) as workspace:
        with serving(create_app_from_workspace_process_context(workspace)) as base:
            yield base


@pytest.mark.parametrize("through", ["instance", "webserver"])
def test_trigger_launches_a_real_delivery_run_that_emails_each_recipient_once(
    archived_root, smtp_server, monkeypatch, through
):
    """`instance`: the service's own instance and code server; `webserver`: POS_EXPORTS_DAGSTER_URL, the
    mutation over HTTP to Dagster's webserver, as in production."""
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query="from=exports@pos.example"))
    monkeypatch.setenv("POS_EXPORTS_STORAGE", str(archived_root))  # the run's own process reads the same storage
    eng = engine()  # POS_EXPORTS_STATE_URL: the test's state database, shared with the run's process
    sub = subscriptions.add(
        eng,
        {
            "business_id": 1,
            "name": "Weekly",
            "datasets": ["sales"],
            "formats": ["csv"],
            "frequency": "weekly",
            "day_of_week": "monday",
            "at": "07:00",
            "recipients": [OWNER],
        },
        now=utc_now(),
    )
    token, secret = tokens.create(eng, 1, now=utc_now())
    with contextlib.ExitStack() as stack:
        instance = stack.enter_context(dg.instance_for_test(overrides=LAUNCH_AT_ONCE))
        if through == "webserver":
            monkeypatch.setenv("POS_EXPORTS_DAGSTER_URL", stack.enter_context(dagster_webserver(instance)))
        own = instance if through == "instance" else None  # over HTTP, the service needs no instance of its own
        base = stack.enter_context(serving(create_app(str(eng.url), LocalStorage(archived_root), own)))
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=300)
        trigger = f"/businesses/1/subscriptions/{sub.id}/trigger"

        first = client.post(trigger, params={"period": WEEK})
        assert first.status_code == 202, first.text
        body = first.json()
        assert body["outcome"] == "launched" and body["to_send"] == [OWNER] and body["already_emailed"] == []
        run = _finished(instance, body["run_id"])
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.job_name == "delivery_job"
        assert run.tags["pos_exports/subscription"] == str(sub.id) and run.tags["pos_exports/period"] == WEEK
        assert run.tags["pos_exports/requested_by"] == f"api token {token.id} (business 1)"
        assert [r.rcpt_tos for r in smtp_server.handler.received] == [[OWNER]]
        # the history shows that run's rows
        rows = client.get("/businesses/1/deliveries", params={"run_id": run.run_id}).json()["items"]
        assert [(r["recipient"], r["status"], r["run_id"]) for r in rows] == [(OWNER, "emailed", run.run_id)]

        # a second trigger of the emailed period launches nothing, and says so
        again = client.post(trigger, params={"period": WEEK})
        assert again.status_code == 200
        assert again.json()["outcome"] == "already_sent" and again.json()["run_id"] is None
        assert again.json()["message"] == ALREADY_SENT and again.json()["already_emailed"] == [OWNER]
        assert instance.get_runs_count() == 1

        # a recipient added later: the next trigger emails only that one
        client.patch(f"/businesses/1/subscriptions/{sub.id}", json={"recipients": [OWNER, ACCOUNTS]})
        third = client.post(trigger, params={"period": WEEK})
        assert third.status_code == 202
        assert third.json()["to_send"] == [ACCOUNTS] and third.json()["already_emailed"] == [OWNER]
        assert "not owner@accra.example, already emailed" in third.json()["message"]
        assert _finished(instance, third.json()["run_id"]).status == dg.DagsterRunStatus.SUCCESS
        assert sorted(r.rcpt_tos[0] for r in smtp_server.handler.received) == [ACCOUNTS, OWNER]
    emailed = [r for r in ledger.history(eng, 1, sub.id) if r["status"] == "emailed"]
    assert sorted(r["recipient"] for r in emailed) == [ACCOUNTS, OWNER]


def test_a_trigger_that_cannot_or_need_not_send_launches_nothing(archived_root):
    eng = engine()
    sub = subscriptions.add(
        eng,
        {
            "business_id": 1,
            "name": "Weekly",
            "datasets": ["sales"],
            "formats": ["csv"],
            "frequency": "weekly",
            "day_of_week": "monday",
            "at": "07:00",
            "recipients": [OWNER],
        },
        now=utc_now(),
    )
    _, mine = tokens.create(eng, 1, now=utc_now())
    _, theirs = tokens.create(eng, 2, now=utc_now())
    with (
        dg.instance_for_test(overrides=LAUNCH_AT_ONCE) as instance,
        serving(create_app(str(eng.url), LocalStorage(archived_root), instance)) as base,
    ):
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {mine}"}) as client:
            wrong = client.post(f"/businesses/1/subscriptions/{sub.id}/trigger", params={"period": "2025-03-04"})
            assert wrong.status_code == 422 and wrong.json()["field"] == "period"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {theirs}"}) as client:
            for path in (
                f"/businesses/2/subscriptions/{sub.id}/trigger",
                f"/businesses/1/subscriptions/{sub.id}/trigger",
            ):
                assert client.post(path, params={"period": WEEK}).status_code == 404
        # an outcome unknown (the server may have the email): no run, and the answer says why and what decides it
        [row] = ledger.open_rows(eng, sub.id, 1, "weekly", WEEK, [OWNER], None, now=utc_now())
        with eng.begin() as conn:
            conn.execute(sa.update(state.deliveries).where(state.deliveries.c.id == row["id"]).values(status="unknown"))
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {mine}"}) as client:
            held = client.post(f"/businesses/1/subscriptions/{sub.id}/trigger", params={"period": WEEK})
        assert held.status_code == 200 and held.json()["outcome"] == "nothing_to_send"
        assert held.json()["held"] == {OWNER: "unknown"} and "pos-exports resend" in held.json()["message"]
        assert instance.get_runs_count() == 0


def test_two_triggers_at_the_same_moment_email_each_recipient_once(archived_root, smtp_server, monkeypatch):
    """Both pass the ledger's first look (nothing emailed yet) and launch a run; the runs' claims let one send."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query="from=exports@pos.example"))
    monkeypatch.setenv("POS_EXPORTS_STORAGE", str(archived_root))
    eng = engine()
    sub = subscriptions.add(
        eng,
        {
            "business_id": 1,
            "name": "Weekly",
            "datasets": ["sales"],
            "formats": ["csv"],
            "frequency": "weekly",
            "day_of_week": "monday",
            "at": "07:00",
            "recipients": [OWNER, ACCOUNTS],
        },
        now=utc_now(),
    )
    _, secret = tokens.create(eng, 1, now=utc_now())
    with (
        dg.instance_for_test(overrides=LAUNCH_AT_ONCE) as instance,
        serving(create_app(str(eng.url), LocalStorage(archived_root), instance)) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=300) as client,
    ):
        client.get(f"/businesses/1/subscriptions/{sub.id}")  # the server is up before both go
        path = f"/businesses/1/subscriptions/{sub.id}/trigger"
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: client.post(path, params={"period": WEEK}), range(2)))
        assert [a.status_code for a in answers] == [202, 202]  # both looked before either run sent
        launched = [a.json()["run_id"] for a in answers]
        for run_id in launched:
            assert _finished(instance, run_id).status == dg.DagsterRunStatus.SUCCESS
    assert sorted(r.rcpt_tos[0] for r in smtp_server.handler.received) == [ACCOUNTS, OWNER]  # once each
    rows = ledger.history(eng, 1, sub.id)
    assert sorted((r["recipient"], r["status"]) for r in rows) == [(ACCOUNTS, "emailed"), (OWNER, "emailed")]
