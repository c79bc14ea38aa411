"""Retry budget and the failed-delivery retry sensor."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa
import yaml

from pos_exports.config import project_home
from pos_exports.core.clock import utc_now
from pos_exports.core.errors import ErrorKind
from pos_exports.defs import retries
from pos_exports.defs.deliveries import retry_requests
from pos_exports.delivery import ledger
from pos_exports.delivery.email import RecipientResult
from pos_exports.state import alerts, engine


def test_a_step_that_always_fails_is_attempted_exactly_the_step_budget():
    attempts = []

    @dg.op(retry_policy=dg.RetryPolicy(max_retries=retries.STEP_RETRIES, delay=0))  # RETRY_POLICY without waits
    def always_fails(context):
        attempts.append(context.retry_number)
        raise ConnectionError("connection to the POS lost")

    @dg.job
    def job():
        always_fails()

    assert not job.execute_in_process(raise_on_error=False).success
    assert len(attempts) == 1 + retries.STEP_RETRIES == 3
    # The project's policy is the same but with backoff; the run-level part of the budget is dagster.yaml's.
    assert retries.RETRY_POLICY.max_retries == retries.STEP_RETRIES
    run_retries = yaml.safe_load((project_home() / "dagster.yaml").read_text())["run_retries"]
    assert run_retries["max_retries"] == retries.RUN_RETRIES and run_retries["retry_on_asset_or_op_failure"] is False
    assert retries.ATTEMPT_BUDGET == 6


def test_permanent_errors_are_attempted_once():
    attempts = []

    @dg.op(retry_policy=dg.RetryPolicy(max_retries=retries.STEP_RETRIES, delay=0))
    def bad_config(context):
        attempts.append(context.retry_number)
        raise retries.failure("business_ids: no business with id 999", [ValueError("999")])

    @dg.job
    def job():
        bad_config()

    assert not job.execute_in_process(raise_on_error=False).success
    assert attempts == [0]


def test_transient_classification():
    import smtplib

    assert retries.is_transient(ConnectionError()) and retries.is_transient(TimeoutError())
    assert retries.is_transient(smtplib.SMTPResponseException(451, b"try later"))
    assert not retries.is_transient(smtplib.SMTPResponseException(550, b"no such user"))
    assert not retries.is_transient(ValueError("bad data"))


def test_failed_deliveries_are_retried_up_to_the_limit_then_given_up(tmp_path, monkeypatch):
    eng = engine(f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", "data-team@pos.example")
    rows = ledger.open_rows(eng, 7, 1, "daily", "2025-03-09", ["a@shop.example"], "run-1", now=utc_now())
    ids = ledger.mark_processing(eng, [r["id"] for r in rows], "run-1", now=utc_now())
    ledger.record_results(
        eng, 7, "2025-03-09", {"a@shop.example": RecipientResult("retry", 451, "451 later", 1, "<m>")}, now=utc_now()
    )
    requests, given_up = retry_requests(eng, max_attempts=3, now=utc_now())
    assert [r.run_key for r in requests] == ["delivery:7:daily:2025-03-09:retry1"] and given_up == []
    with eng.begin() as conn:  # two more failed attempts later...
        conn.execute(sa.update(ledger.deliveries).where(ledger.deliveries.c.id.in_(ids)).values(attempts=3))
    requests, given_up = retry_requests(eng, max_attempts=3, now=utc_now())
    assert requests == [] and len(given_up) == 1
    [row] = ledger.history(eng, subscription_id=7)
    assert row["error"].startswith("gave up after 3 attempts")
    with eng.connect() as conn:
        [alert] = conn.execute(sa.select(alerts)).all()
    assert alert.recipients == ["data-team@pos.example"] and "given up" in alert.subject
    assert retry_requests(eng, max_attempts=3, now=utc_now()) == ([], [])  # given up once, notified once


def test_a_delivery_given_up_is_alerted_to_its_business_only_in_plain_words(tmp_path, monkeypatch):
    from pos_exports.delivery.subscriptions import save_settings

    eng = engine(f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", "data-team@pos.example")
    owners = {1: "owner@kofi.example", 2: "owner@ama.example"}
    for business_id, owner in owners.items():
        save_settings(eng, {"business_id": business_id, "failure_recipients": [owner]}, now=utc_now())
    for sub_id, business_id, rcpt in ((7, 1, "a@kofi.example"), (8, 2, "b@ama.example")):
        rows = ledger.open_rows(eng, sub_id, business_id, "daily", "2025-03-09", [rcpt], f"run-{sub_id}", now=utc_now())
        ledger.mark_processing(eng, [r["id"] for r in rows], f"run-{sub_id}", now=utc_now())
        ledger.record_results(
            eng, sub_id, "2025-03-09", {rcpt: RecipientResult("retry", 451, "451 later", 1, "<m>")}, now=utc_now()
        )
    with eng.begin() as conn:
        conn.execute(sa.update(ledger.deliveries).values(attempts=3))

    requests, given_up = retry_requests(
        eng, max_attempts=3, businesses={1: "Kofi's Corner", 2: "Ama's Salon"}, now=utc_now()
    )
    assert requests == [] and len(given_up) == 2
    with eng.connect() as conn:
        sent = {tuple(a.recipients): a for a in conn.execute(sa.select(alerts)).all()}
    assert set(sent) == {("owner@kofi.example",), ("owner@ama.example",), ("data-team@pos.example",)}
    for (business_id, owner), (name, other, other_owner, other_rcpt) in zip(
        owners.items(),
        [
            ("Kofi's Corner", "Ama's Salon", "owner@ama.example", "b@ama.example"),
            ("Ama's Salon", "Kofi's Corner", "owner@kofi.example", "a@kofi.example"),
        ],
        strict=True,
    ):
        alert = sent[(owner,)]
        text = alert.subject + alert.body
        assert alert.business_id == business_id and name in text and "9 Mar 2025" in text
        assert other not in text and other_owner not in text and other_rcpt not in text
        assert "subscription" not in text.lower() and "dagster" not in text.lower() and "451" not in text
    team = sent[("data-team@pos.example",)].body
    assert "a@kofi.example" in team and "b@ama.example" in team and "451 later" in team


def test_a_permanent_error_reading_temporary_is_not_retried_nor_given_up(tmp_path):
    """The retry sensor decides by the ledger's error kind: a permanent error whose text happens to start with
    "temporary: " (a render error quoting a message, say) is neither retried nor alerted as given up; a
    transient one of the same delivery's next period is retried."""
    eng = engine(f"sqlite:///{tmp_path / 'state.db'}")
    for key, kind in (("2025-03-09", ErrorKind.PERMANENT), ("2025-03-10", ErrorKind.TRANSIENT)):
        rows = ledger.open_rows(eng, 7, 1, "daily", key, ["a@shop.example"], "run-1", now=utc_now())
        ledger.mark_processing(eng, [r["id"] for r in rows], "run-1", now=utc_now())
        ledger.mark_failed(
            eng, [r["id"] for r in rows], "temporary: 421 quoted by a template error", kind=kind, now=utc_now()
        )
    requests, given_up = retry_requests(eng, max_attempts=3, now=utc_now())
    assert [r.run_key for r in requests] == ["delivery:7:daily:2025-03-10:retry0"] and given_up == []
    with eng.begin() as conn:  # both out of attempts: only the transient one is given up
        conn.execute(sa.update(ledger.deliveries).values(attempts=3))
    requests, given_up = retry_requests(eng, max_attempts=3, now=utc_now())
    assert requests == [] and [g.split(" to ")[0] for g in given_up] == ["subscription 7 2025-03-10"]
    by_key = {r["period_key"]: r for r in ledger.history(eng, subscription_id=7)}
    assert by_key["2025-03-09"]["error"] == "temporary: 421 quoted by a template error"
    assert (by_key["2025-03-09"]["error_kind"], by_key["2025-03-10"]["error_kind"]) == ("permanent", "permanent")
    with eng.connect() as conn:
        assert conn.execute(sa.select(alerts)).all() == []  # nobody to tell here (no data team, no settings)
