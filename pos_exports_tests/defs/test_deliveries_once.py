"""Each recipient gets each export once: races, a crash after the server's 250, connections lost after the
body. Real SMTP server (aiosmtpd), real state databases (SQLite and PostgreSQL), real Dagster runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from pos_exports import state
from pos_exports.archive import index
from pos_exports.archive.read import load_businesses
from pos_exports.core.clock import utc_now
from pos_exports.defs.deliveries import delivery_job, retry_requests
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.delivery import ledger, subscriptions
from pos_exports.delivery.deliver import deliver
from pos_exports.delivery.email import SmtpSettings, message_id_for
from pos_exports.storage.base import LocalStorage

OWNER = "owner@kofi-shop.example"
DATA_TEAM = "data@pos-team.example"
SENDER = "exports@pos.example"
WEEK = "2025-03-03"


def _weekly(eng, recipients=(OWNER,)):
    return subscriptions.add(
        eng,
        {
            "business_id": 1,
            "name": "Weekly owner pack",
            "datasets": ["sales"],
            "formats": ["csv"],
            "frequency": "weekly",
            "day_of_week": "monday",
            "at": "07:00",
            "recipients": list(recipients),
        },
        now=utc_now(),
    )


def _run(root, sub_id, **extra):
    config = {"subscription_id": sub_id, "period_kind": "weekly", "period_key": WEEK, **extra}
    return delivery_job.execute_in_process(
        run_config={"ops": {"deliver_subscription": {"config": config}}},
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource()},
        raise_on_error=False,
    )


def _exports_to(server, address):
    """The export emails (not the alerts) the server accepted for `address`."""
    return [r for r in server.handler.delivered_to(address) if not r.message["Subject"].startswith("[pos_exports]")]


def _alerts(eng):
    with eng.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(state.alerts).order_by(state.alerts.c.id)).mappings()]


def _cli(*argv, env):
    return subprocess.run(
        [sys.executable, "-m", "pos_exports.cli", *argv], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def smtp_env(smtp_server, monkeypatch, archived_root, tmp_path):
    """The environment of a delivery to the test SMTP server (also for `pos-exports` subprocesses)."""
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query=f"from={SENDER}&timeout=1"))
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", DATA_TEAM)
    monkeypatch.setenv("POS_EXPORTS_STORAGE", str(archived_root))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    return dict(os.environ)


# --- 10.7: a connection dropped, or a reply timed out, after the message body -------------------------------


@pytest.mark.parametrize("fault", ["drop", 2.5], ids=["dropped-after-data", "reply-stalled-past-timeout"])
def test_a_lost_reply_after_the_body_is_unknown_alerted_and_never_sent_again(
    archived_root, state, smtp_server, smtp_env, fault
):
    sub = _weekly(state)
    smtp_server.handler.data_faults = [fault]  # the server commits the message, the client never hears so

    result = _run(archived_root, sub.id)
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert "unknown" in failure.step_failure_data.error.message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]  # no step retry
    [received] = _exports_to(smtp_server, OWNER)  # one copy, not three
    mid = message_id_for(sub.id, "weekly", WEEK, OWNER, SENDER)
    assert received.message["Message-ID"] == mid

    [row] = ledger.history(state, subscription_id=sub.id)
    assert (row["status"], row["attempts"], row["message_id"], row["emailed_at"]) == ("unknown", 1, mid, None)
    assert row["error"].startswith("unknown: no reply after the message body")
    # The data team is told, with the Message-ID and how to resend; the email reached it.
    [alert] = _alerts(state)
    assert alert["recipients"] == [DATA_TEAM] and alert["status"] == "sent"
    assert (
        OWNER in alert["body"]
        and mid in alert["body"]
        and f"pos-exports resend {sub.id} --period {WEEK}" in alert["body"]
    )
    assert len(smtp_server.handler.delivered_to(DATA_TEAM)) == 1

    # Nothing sends it again automatically: not the retry sensor, not a re-run.
    assert retry_requests(state, max_attempts=5, now=utc_now()) == ([], [])
    assert not _run(archived_root, sub.id).success
    assert len(_exports_to(smtp_server, OWNER)) == 1
    assert ledger.history(state, subscription_id=sub.id)[0]["status"] == "unknown"


def test_resend_says_what_it_risks_and_keeps_the_message_id(archived_root, state, smtp_server, smtp_env):
    sub = _weekly(state)
    smtp_server.handler.data_faults = ["drop"]
    assert not _run(archived_root, sub.id).success
    mid = message_id_for(sub.id, "weekly", WEEK, OWNER, SENDER)

    asked = _cli("resend", str(sub.id), "--period", WEEK, env=smtp_env)
    assert asked.returncode == 1, asked.stderr
    assert f"{OWNER}: unknown: no reply after the message body" in asked.stdout
    assert f"Message-ID {mid}" in asked.stdout
    assert "RISK: these recipients may already have this email" in asked.stdout
    assert "nothing sent: run again with --yes to resend" in asked.stdout
    assert len(_exports_to(smtp_server, OWNER)) == 1

    done = _cli("resend", str(sub.id), "--period", WEEK, "--yes", env=smtp_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resend of {sub.name!r} for weekly {WEEK}: sent" in done.stdout
    first, second = _exports_to(smtp_server, OWNER)
    assert first.message["Message-ID"] == second.message["Message-ID"] == mid
    [row] = ledger.history(state, subscription_id=sub.id)
    assert (row["status"], row["attempts"], row["message_id"]) == ("emailed", 2, mid)
    # Nothing is left to resend.
    again = _cli("resend", str(sub.id), "--period", WEEK, "--yes", env=smtp_env)
    assert again.returncode == 0 and "nothing to resend" in again.stdout
    assert len(_exports_to(smtp_server, OWNER)) == 2


def test_the_launchpad_resend_flag_sends_the_unknown_ones_only(archived_root, state, smtp_server, smtp_env):
    other = "accounts@kofi-shop.example"
    sub = _weekly(state, recipients=(OWNER, other))
    smtp_server.handler.data_faults = ["drop"]  # the first recipient's transaction only
    assert not _run(archived_root, sub.id).success
    statuses = {r["recipient"]: r["status"] for r in ledger.history(state, subscription_id=sub.id)}
    assert statuses == {OWNER: "unknown", other: "emailed"}

    assert _run(archived_root, sub.id, resend_unknown=True).success
    assert (len(_exports_to(smtp_server, OWNER)), len(_exports_to(smtp_server, other))) == (2, 1)
    assert {r["status"] for r in ledger.history(state, subscription_id=sub.id)} == {"emailed"}


# --- 10.5: two runs of one delivery at once ---------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def any_state(request, tmp_path, monkeypatch, archived_root):
    url = (
        f"sqlite:///{tmp_path / 'race.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("new_pg_database")()
    )
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", url)
    eng = state.engine(url)
    index.reindex(LocalStorage(archived_root), eng)  # readiness reads the archive index of this state database
    yield eng
    eng.dispose()


def test_two_concurrent_runs_of_one_delivery_send_once(archived_root, any_state, smtp_server, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", DATA_TEAM)
    storage = LocalStorage(archived_root)
    sub = _weekly(any_state)
    business = {b.id: b for b in load_businesses(storage)}[1]
    smtp = SmtpSettings.from_url(smtp_server.url(query=f"from={SENDER}"))
    first_at_server, release = threading.Event(), threading.Event()

    def hold_the_first(n: int) -> None:  # run A's transaction waits at the server while run B runs
        if n == 1:
            first_at_server.set()
            release.wait(60)

    smtp_server.handler.on_data = hold_the_first
    outcomes = {}

    def run(run_id: str) -> None:
        outcomes[run_id] = deliver(
            any_state,
            storage,
            sub,
            business,
            "weekly",
            WEEK,
            run_id=run_id,
            smtp=smtp,
            outbox_dir=archived_root,
            clock=utc_now,
        )

    a = threading.Thread(target=run, args=("run-a",))
    a.start()
    assert first_at_server.wait(120)
    run("run-b")  # the same delivery while A is in its SMTP transaction
    release.set()
    a.join(120)

    assert len(_exports_to(smtp_server, OWNER)) == 1
    assert smtp_server.handler.data_commands == 1
    assert (outcomes["run-a"].status, outcomes["run-b"].status) == ("sent", "already_sent")
    [row] = ledger.history(any_state, subscription_id=sub.id)
    assert (row["status"], row["run_id"], row["attempts"]) == ("emailed", "run-a", 1)


# --- 10.6: killed right after the server's 250, before the ledger write -------------------------------------

KILLED_RUN = textwrap.dedent(
    """
    import os, signal, smtplib, sys
    from pathlib import Path

    from pos_exports.archive.read import load_businesses
    from pos_exports.core.clock import utc_now
    from pos_exports.delivery.deliver import deliver
    from pos_exports.delivery.email import SmtpSettings
    from pos_exports.state import engine
    from pos_exports.delivery.subscriptions import get
    from pos_exports.storage.base import LocalStorage

    state_url, root, smtp_url, sub_id = sys.argv[1:5]
    # The server has answered 250 to the message; the client dies before anything else happens.
    smtplib.SMTP.quit = lambda self: os.kill(os.getpid(), signal.SIGKILL)
    eng, storage = engine(state_url), LocalStorage(root)
    sub = get(eng, int(sub_id))
    business = {b.id: b for b in load_businesses(storage)}[sub.business_id]
    smtp = SmtpSettings.from_url(smtp_url)
    deliver(
        eng, storage, sub, business, "weekly", "2025-03-03",
        run_id="run-killed", smtp=smtp, outbox_dir=Path(root), clock=utc_now,
    )
    print("survived")
    """
)


def test_killed_after_the_servers_250_is_unknown_and_a_rerun_sends_nothing(
    archived_root, any_state, smtp_server, monkeypatch, tmp_path
):
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", DATA_TEAM)
    storage = LocalStorage(archived_root)
    sub = _weekly(any_state)
    smtp_url = smtp_server.url(query=f"from={SENDER}")
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    url = any_state.url.render_as_string(hide_password=False)
    proc = subprocess.run(
        [sys.executable, str(script), url, str(archived_root), smtp_url, str(sub.id)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr
    assert len(_exports_to(smtp_server, OWNER)) == 1
    [row] = ledger.history(any_state, subscription_id=sub.id)
    assert (row["run_id"], row["emailed_at"]) == ("run-killed", None)  # the outcome never reached the ledger

    business = {b.id: b for b in load_businesses(storage)}[1]
    smtp = SmtpSettings.from_url(smtp_url)
    outcome = deliver(
        any_state,
        storage,
        sub,
        business,
        "weekly",
        WEEK,
        run_id="run-2",
        smtp=smtp,
        outbox_dir=Path(tmp_path),
        clock=utc_now,
    )
    assert outcome.status == "unknown" and OWNER in outcome.message
    assert len(_exports_to(smtp_server, OWNER)) == 1  # the re-run sent nothing
    [row] = ledger.history(any_state, subscription_id=sub.id)
    assert (row["status"], row["run_id"], row["emailed_at"]) == ("unknown", "run-killed", None)
    assert row["error"].startswith("unknown: the run run-killed") and "never recorded the outcome" in row["error"]
    [alert] = _alerts(any_state)
    assert alert["recipients"] == [DATA_TEAM] and OWNER in alert["body"] and alert["status"] == "sent"
    # Still nothing later: not the retry sensor, not another run.
    assert retry_requests(any_state, max_attempts=5, now=utc_now()) == ([], [])
    deliver(
        any_state,
        storage,
        sub,
        business,
        "weekly",
        WEEK,
        run_id="run-3",
        smtp=smtp,
        outbox_dir=Path(tmp_path),
        clock=utc_now,
    )
    assert len(_exports_to(smtp_server, OWNER)) == 1
