"""History and deliveries tell the truth: skips are `skipped`, nothing is overdue before a subscription
existed, the period is stated in the business's zone, a missing archive fails at once with what to run."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from pos_exports.core.clock import utc_now
from pos_exports.defs.deliveries import delivery_job
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.delivery import ledger, subscriptions
from pos_exports.operations.stats import delivery_stats, overdue

UTC = dt.UTC
SENDER = "exports@pos.example"


def _run(root, sub, key, now=None):
    config = {"subscription_id": sub.id, "period_kind": sub.frequency, "period_key": key}
    return delivery_job.execute_in_process(
        run_config={"ops": {"deliver_subscription": {"config": config}}},
        resources={
            "storage": StorageResource(root=str(root)),
            "clock": ClockResource.at(now) if now else ClockResource(),
        },
        raise_on_error=False,
    )


def _daily(eng, now=None, **extra):
    data = {
        "business_id": 1,
        "name": "Daily sales",
        "datasets": ["sales"],
        "formats": ["csv"],
        "frequency": "daily",
        "at": "07:00",
        "recipients": ["owner@kofi-shop.example"],
        **extra,
    }
    return subscriptions.add(eng, data, now=now or utc_now())


def _cli(*argv):
    return subprocess.run(
        [sys.executable, "-m", "pos_exports.cli", *argv],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def env(archived_root, smtp_server, monkeypatch, tmp_path):
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query=f"from={SENDER}"))
    monkeypatch.setenv("POS_EXPORTS_STORAGE", str(archived_root))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()


# --- 11.5 ----------------------------------------------------------------------------------------------


def test_an_only_if_data_skip_is_skipped_not_failed(archived_root, state, smtp_server, env):
    sub = _daily(state, only_if_data=True)
    assert _run(archived_root, sub, "2025-03-04").success  # business 1 sold nothing that day
    assert smtp_server.handler.received == []
    [row] = ledger.history(state, subscription_id=sub.id)
    assert (row["status"], row["error"]) == ("skipped", "skipped: no data in the period (only_if_data)")
    assert ledger.history(state, status="failed") == []

    failed = _cli("history", "--status", "failed")
    assert failed.returncode == 0 and failed.stdout.strip() == "no deliveries match"
    skipped = _cli("history", "--status", "skipped")
    assert skipped.returncode == 0, skipped.stderr
    [line] = [x for x in skipped.stdout.splitlines() if "daily 2025-03-04" in x]
    assert "owner@kofi-shop.example" in line and " skipped " in line
    stats = _cli("stats")
    assert "  failed        0\n" in stats.stdout and "  skipped       1 (no data, only_if_data)" in stats.stdout
    figures = delivery_stats(state)
    assert (figures["failed"], figures["skipped"], figures["success_rate"]) == (0, 1, None)
    # A skip is final: a re-run does not send it.
    assert _run(archived_root, sub, "2025-03-04").success
    assert ledger.history(state, subscription_id=sub.id)[0]["status"] == "skipped"


def test_nothing_is_overdue_before_the_subscription_existed(state):
    created = dt.datetime(2025, 3, 9, 12, 0, tzinfo=UTC)
    sub = _daily(state, now=created)
    now = dt.datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    entries = overdue(state, None, {1: "Africa/Accra"}, now, lookback_days=7)
    # It fires daily at 07:00 Accra (UTC): only 10 March 07:00 is after its creation.
    assert [(e["subscription_id"], e["period_key"], e["reason"]) for e in entries] == [
        (sub.id, "2025-03-09", "never_ran")
    ]


# --- 11.6 ----------------------------------------------------------------------------------------------


def test_the_period_is_stated_in_the_business_zone_not_the_subscriptions(archived_root, state, smtp_server, env):
    sub = _daily(
        state,
        business_id=2,  # Asia/Tokyo
        timezone="Europe/London",  # only when it fires
        subject_template="{business_name}: {period_label} ({timezone})",
        recipients=["owner@tokyo.example"],
    )
    assert _run(archived_root, sub, "2025-03-09").success
    [received] = smtp_server.handler.received
    message = received.message
    assert message["Subject"] == "東京ショップ: 9 Mar 2025 (Asia/Tokyo)"
    text = message.get_body(("plain",)).get_content()
    assert "Period:   9 Mar 2025 (Asia/Tokyo)" in text and "Periods are shown in Asia/Tokyo." in text
    assert "Europe/London" not in text and "Europe/London" not in message.get_body(("html",)).get_content()
    assert message["Message-ID"].startswith(f"<sub-{sub.id}.daily.2025-03-09.")


# --- 11.7 ----------------------------------------------------------------------------------------------


def test_a_missing_archive_fails_at_once_saying_what_to_run(archived_root, state, env):
    sub = _daily(state)
    done = _cli("subscriptions", "trigger", str(sub.id), "--period", "2025-03-10")  # not archived
    assert done.returncode == 1
    assert (
        "the archive of 2025-03-10 is not there yet (sales of business 1): run "
        "`pos-exports archive --date 2025-03-10 --dataset sales --business-id 1`" in done.stderr
    )
    assert "max_retries" not in done.stderr + done.stdout and "Traceback" not in done.stderr
    assert "FAILED" in done.stdout
    assert ledger.history(state) == []  # nothing written


def test_a_missing_archive_is_not_retried_by_the_step_policy(archived_root, state):
    sub = _daily(state)
    result = _run(archived_root, sub, "2025-03-10")
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    [failure] = result.get_step_failure_events()
    assert failure.step_failure_data.error.message.strip().endswith(
        "the archive of 2025-03-10 is not there yet (sales of business 1): run "
        "`pos-exports archive --date 2025-03-10 --dataset sales --business-id 1` (or wait for the daily archive), "
        "then deliver again"
    )


# --- a snapshot that can never be captured does not hold a delivery back ------------------------------


def test_a_lost_snapshot_is_delivered_without_and_said_in_the_email_ledger_and_run(
    archived_root, state, smtp_server, monkeypatch
):
    from pos_exports.archive import capture
    from pos_exports.defs.deliveries import due_requests
    from pos_exports.storage.base import LocalStorage

    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query=f"from={SENDER}"))
    # the archive holds the sales of 8 March but no customers snapshot of it (captured on the 9th only)
    sub = _daily(state, datasets=["sales", "customers"])
    storage = LocalStorage(archived_root)

    def tick(last, now, waiting):
        requests, waiting, _ = due_requests(storage, state, last, now, waiting)
        return [
            i["period_key"] for r in requests for i in r.run_config["ops"]["deliver_batch"]["config"]["items"]
        ], waiting

    # Accra's 8 March ended 9 March 00:00 UTC: its snapshot can be captured until 11 March 00:00, so it is awaited
    first = dt.datetime(2025, 3, 9, 7, 5, tzinfo=UTC)
    launched, waiting = tick(first - dt.timedelta(hours=1), first, [])
    assert launched == [] and [w[2] for w in waiting] == ["2025-03-08"]
    # past the window it never will be: the next tick sends it with what exists
    lost_at = dt.datetime(2025, 3, 11, 0, 0, tzinfo=UTC)
    launched, waiting = tick(first, lost_at, waiting)
    assert launched == ["2025-03-08", "2025-03-09"] and waiting == []  # the 9th: complete

    result = _run(archived_root, sub, "2025-03-08", lost_at)
    assert result.success
    [received] = smtp_server.handler.delivered_to("owner@kofi-shop.example")
    names = [p.get_filename() for p in received.message.iter_attachments()]
    assert names and all("sales" in n for n in names)  # the customers export is not there, the sales one is
    text = received.message.get_body(("plain",)).get_content()
    html = received.message.get_body(("html",)).get_content()
    text = text.replace("\r\n", "\n")
    assert "Not included\n  The customer list as of" in text and "was not captured in time" in text
    assert "Not included: The customer list as of" in html

    reason = "snapshot " + capture.snapshot_capture(dt.date(2025, 3, 8), "Africa/Accra").note(lost_at)
    assert "never captured: lost" in reason
    [row] = ledger.history(state, subscription_id=sub.id)
    assert row["status"] == "emailed"
    assert row["missing"] == [{"dataset": "customers", "day": "2025-03-08", "reason": reason}]
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["not_included"].value == f"- customers 2025-03-08: {reason}"


def test_a_period_whose_only_dataset_is_a_lost_snapshot_fails_once_saying_why(archived_root, state, monkeypatch):

    sub = _daily(state, datasets=["customers"])
    result = _run(archived_root, sub, "2025-03-08", dt.datetime(2025, 3, 11, 0, 0, tzinfo=UTC))
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]  # permanent: not retried
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "nothing to deliver for" in message and "customers 2025-03-08: snapshot never captured: lost" in message
    assert ledger.history(state) == []
