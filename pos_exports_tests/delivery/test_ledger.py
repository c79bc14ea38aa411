"""The delivery ledger on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from pos_exports.core.clock import utc_now
from pos_exports.core.errors import ErrorKind
from pos_exports.delivery import ledger
from pos_exports.delivery.email import RecipientResult

SUB, BIZ, KEY = 3, 99, "2025-W10"


@pytest.fixture(params=["sqlite", "postgresql"])
def eng(request):
    return request.getfixturevalue("state_db" if request.param == "sqlite" else "state_pg")


def result(status, code=None, response="", attempts=1, stage="data"):
    return RecipientResult(status, code, response, attempts, "<m1@acme.example>", stage)


def test_open_rows_is_idempotent(eng):
    rows = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["B@x.com", "a@x.com", "b@x.com "], "run-1", now=utc_now())
    assert [r["recipient"] for r in rows] == ["b@x.com", "a@x.com"]
    assert {r["status"] for r in rows} == {"pending"} and {r["attempts"] for r in rows} == {0}
    assert all(r["created_at"].tzinfo == dt.UTC for r in rows)
    again = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com", "c@x.com"], "run-2", now=utc_now())
    assert [r["recipient"] for r in again] == ["a@x.com", "c@x.com"]
    assert again[0]["id"] == rows[1]["id"] and again[0]["run_id"] == "run-1"
    assert len(ledger.history(eng, subscription_id=SUB)) == 3
    assert ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, [], "run-3", now=utc_now()) == []


def test_full_lifecycle_and_never_twice(eng):
    rows = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com", "b@x.com", "c@x.com"], "run-1", now=utc_now())
    ids = [r["id"] for r in rows]
    assert ledger.mark_processing(eng, ids, "run-1", now=utc_now()) == ids
    assert ledger.mark_processing(eng, ids, "run-other", now=utc_now()) == []  # a live claim is not taken twice
    processing = ledger.open_rows(
        eng, SUB, BIZ, "weekly", KEY, ["a@x.com", "b@x.com", "c@x.com"], "run-2", now=utc_now()
    )
    assert ledger.pending_recipients(processing, now=utc_now()) == []
    files = [{"name": "sales.csv", "dataset": "sales", "format": "csv", "bytes": 10, "sha256": "ab", "uri": "u"}]
    assert ledger.mark_completed(eng, ids, files, 10, now=utc_now()) == 3
    assert (
        ledger.record_results(
            eng,
            SUB,
            KEY,
            {
                "a@x.com": result("emailed", 250, "250 OK", 1),
                "B@x.com": result("retry", 451, "451 4.3.0 try later", 3),
                "c@x.com": result("failed", 550, "550 5.1.1 no such user", 1, "rcpt"),
            },
            now=utc_now(),
        )
        == 3
    )
    by = {r["recipient"]: r for r in ledger.history(eng, business_id=BIZ)}
    a, b, c = by["a@x.com"], by["b@x.com"], by["c@x.com"]
    assert (a["status"], a["smtp_response"], a["message_id"], a["attempts"]) == (
        "emailed",
        "250 OK",
        "<m1@acme.example>",
        1,
    )
    assert a["emailed_at"].tzinfo == dt.UTC and a["started_at"] <= a["finished_at"] <= a["emailed_at"]
    assert a["files"] == files and a["bytes"] == 10
    assert (b["status"], b["error"], b["attempts"]) == ("failed", "temporary: 451 4.3.0 try later", 3)
    assert (a["error_kind"], b["error_kind"], c["error_kind"]) == (None, "transient", "permanent")
    assert (c["status"], c["error"], c["smtp_response"]) == (
        "failed",
        "rejected: 550 5.1.1 no such user",
        "550 5.1.1 no such user",
    )

    rows = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com", "b@x.com", "c@x.com"], "run-2", now=utc_now())
    assert ledger.pending_recipients(rows, now=utc_now()) == ["b@x.com"]
    assert ledger.pending_recipients(rows, include_rejected=True, now=utc_now()) == ["b@x.com", "c@x.com"]
    assert [r["recipient"] for r in ledger.retryable(eng, max_attempts=4)] == ["b@x.com"]
    assert ledger.retryable(eng, max_attempts=3) == []

    # Nothing moves an emailed row: not a claim, a result, a completion or a failure.
    assert ledger.mark_processing(eng, [a["id"]], "run-2", include_rejected=True, now=utc_now()) == []
    assert ledger.mark_processing(eng, [c["id"]], "run-2", now=utc_now()) == []
    assert (
        ledger.record_results(eng, SUB, KEY, {"a@x.com": result("failed", 550, "550 late", 1, "rcpt")}, now=utc_now())
        == 0
    )
    assert ledger.mark_completed(eng, [a["id"]], [], 0, now=utc_now()) == 0
    assert ledger.mark_failed(eng, (SUB, KEY), "render exploded", "Traceback ...", now=utc_now()) == 1  # b only
    after = {r["recipient"]: r for r in ledger.history(eng, subscription_id=SUB)}
    assert after["a@x.com"] == a and after["c@x.com"] == c
    assert (after["b@x.com"]["error"], after["b@x.com"]["traceback"]) == ("render exploded", "Traceback ...")
    # a render failure is re-run by hand (pending again) but not retried automatically
    rows = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com", "b@x.com", "c@x.com"], "run-3", now=utc_now())
    assert ledger.pending_recipients(rows, now=utc_now()) == ["b@x.com"]
    assert ledger.retryable(eng, max_attempts=10) == []
    assert ledger.mark_failed(eng, [c["id"]], "operator gave up", now=utc_now()) == 1


def test_retries_follow_the_error_kind_not_the_error_text(eng):
    """A permanent error whose text happens to start with "temporary: " is never retried; a transient one is,
    and reads `temporary: ...` as before."""
    rows = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com", "b@x.com"], "run-1", now=utc_now())
    a, b = (r["id"] for r in rows)
    assert (
        ledger.mark_failed(eng, [a], "temporary: the text of a permanent error, e.g. a quoted message", now=utc_now())
        == 1
    )
    assert ledger.mark_failed(eng, [b], "ConnectionError: reset by peer", kind=ErrorKind.TRANSIENT, now=utc_now()) == 1
    by = {r["recipient"]: r for r in ledger.history(eng, subscription_id=SUB)}
    assert (by["a@x.com"]["error_kind"], by["b@x.com"]["error_kind"]) == ("permanent", "transient")
    assert by["b@x.com"]["error"] == "temporary: ConnectionError: reset by peer"
    assert [r["recipient"] for r in ledger.retryable(eng, max_attempts=5)] == ["b@x.com"]


def test_a_refused_recipient_is_kept_back_by_its_mark_not_its_text(eng):
    """The `rejected` mark, set by a 5xx to RCPT, keeps a recipient from a re-run; a render error whose text happens
    to start with "rejected: " does not, and a 5xx after the body (not at RCPT) is no refusal of the recipient."""
    now = dt.datetime(2025, 3, 10, 7, tzinfo=dt.UTC)
    rows = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com", "b@x.com", "c@x.com"], "run-1", now=now)
    a, b, c = (r["id"] for r in rows)
    assert ledger.mark_processing(eng, [a, b, c], "run-1", now=now) == [a, b, c]
    assert ledger.mark_failed(eng, [b], "rejected: quoted by a permanent render error", now=now) == 1
    refused = result("failed", 550, "550 5.1.1 no such user", stage="rcpt")
    late = result("failed", 554, "554 5.7.1 message refused", stage="data")
    assert ledger.record_results(eng, SUB, KEY, {"a@x.com": refused, "c@x.com": late}, now=now) == 2
    by = {r["recipient"]: r for r in ledger.history(eng, subscription_id=SUB)}
    assert {r: (by[r]["error"], by[r]["rejected"]) for r in by} == {
        "a@x.com": ("rejected: 550 5.1.1 no such user", True),
        "b@x.com": ("rejected: quoted by a permanent render error", False),
        "c@x.com": ("failed: 554 5.7.1 message refused", False),
    }
    again = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com", "b@x.com", "c@x.com"], "run-2", now=now)
    assert ledger.pending_recipients(again, now=now) == ["b@x.com", "c@x.com"]
    assert ledger.mark_processing(eng, [a, b, c], "run-2", now=now) == [b, c]  # the SQL form agrees
    assert ledger.mark_processing(eng, [a], "run-2", include_rejected=True, now=now) == [a]  # only when asked
    assert ledger.history(eng, subscription_id=SUB)[0]["started_at"] == now


def test_stale_processing_can_be_claimed_again(eng):
    rows = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com"], "run-1", now=utc_now())
    assert ledger.mark_processing(eng, [rows[0]["id"]], "run-1", now=utc_now()) == [rows[0]["id"]]
    rows = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com"], "run-2", now=utc_now())
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    assert ledger.pending_recipients(rows, now=utc_now()) == []
    assert ledger.pending_recipients(rows, now=later) == ["a@x.com"]
    assert ledger.mark_processing(eng, [rows[0]["id"]], "run-2", stale_after=dt.timedelta(0), now=utc_now()) == [
        rows[0]["id"]
    ]
    assert ledger.history(eng)[0]["run_id"] == "run-2"


def test_history_filters(eng):
    ledger.open_rows(eng, 1, 10, "daily", "2025-03-01", ["a@x.com", "b@x.com"], "r", now=utc_now())
    ledger.open_rows(eng, 2, 20, "daily", "2025-03-01", ["c@x.com"], "r", now=utc_now())
    ledger.record_results(eng, 1, "2025-03-01", {"a@x.com": result("emailed", 250, "250 OK")}, now=utc_now())
    assert {r["recipient"] for r in ledger.history(eng, business_id=10)} == {"a@x.com", "b@x.com"}
    assert [r["recipient"] for r in ledger.history(eng, subscription_id=2)] == ["c@x.com"]
    assert [r["recipient"] for r in ledger.history(eng, status="emailed")] == ["a@x.com"]
    now = dt.datetime.now(dt.UTC)
    assert len(ledger.history(eng, since=now - dt.timedelta(minutes=5))) == 3
    # the same instant in another zone selects the same rows
    assert (
        len(ledger.history(eng, since=(now - dt.timedelta(minutes=5)).astimezone(dt.timezone(dt.timedelta(hours=-8)))))
        == 3
    )
    assert ledger.history(eng, since=now + dt.timedelta(minutes=5)) == []
    assert ledger.history(eng, until=now - dt.timedelta(minutes=5)) == []
    assert len(ledger.history(eng, business_id=10, until=now + dt.timedelta(minutes=5))) == 2
    with pytest.raises(ValueError):
        ledger.history(eng, status="sent")
    with pytest.raises(ValueError):
        ledger.history(eng, since=dt.datetime(2025, 1, 1))


def test_only_the_claimant_sends(eng):
    [row] = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com"], "run-1", now=utc_now())
    assert ledger.mark_processing(eng, [row["id"]], "run-1", now=utc_now()) == [row["id"]]
    assert ledger.mark_completed(eng, [row["id"]], [], 0, now=utc_now()) == 1
    # A `completed` row of a live run is not another run's to take (the race of two runs of one delivery).
    assert (
        ledger.pending_recipients(
            ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com"], "run-2", now=utc_now()), now=utc_now()
        )
        == []
    )
    assert ledger.mark_processing(eng, [row["id"]], "run-2", now=utc_now()) == []
    assert ledger.claim_sending(eng, row["id"], "run-2", now=utc_now()) is False
    assert ledger.claim_sending(eng, row["id"], "run-1", now=utc_now()) is True
    assert ledger.claim_sending(eng, row["id"], "run-1", now=utc_now()) is False  # claimed once
    [claimed] = ledger.history(eng, subscription_id=SUB)
    assert claimed["status"] == "sending" and claimed["claimant"] == ledger.claimant()
    # Nobody takes a `sending` row, not even once it looks stale; only the claimant records the outcome.
    assert (
        ledger.mark_processing(
            eng, [row["id"]], "run-2", stale_after=dt.timedelta(0), include_rejected=True, now=utc_now()
        )
        == []
    )
    assert ledger.record_result(eng, row["id"], "run-2", result("emailed", 250, "250 OK"), now=utc_now()) is False
    assert ledger.record_result(eng, row["id"], "run-1", result("emailed", 250, "250 OK"), now=utc_now()) is True
    assert ledger.history(eng, subscription_id=SUB)[0]["status"] == "emailed"


def test_a_claim_whose_claimant_is_gone_becomes_unknown_and_only_a_resend_takes_it(eng):
    [row] = ledger.open_rows(eng, SUB, BIZ, "weekly", KEY, ["a@x.com"], "run-1", now=utc_now())
    ledger.mark_processing(eng, [row["id"]], "run-1", now=utc_now())
    assert ledger.claim_sending(eng, row["id"], "run-1", now=utc_now())
    assert ledger.stale_claims(eng, now=utc_now()) == []  # this process holds it and is alive
    with eng.begin() as conn:  # held by a process on another host: only its lease tells
        conn.execute(ledger.deliveries.update().values(claimant="elsewhere 4242"))
    assert ledger.stale_claims(eng, now=utc_now()) == []
    later = dt.datetime.now(dt.UTC) + ledger.SENDING_LEASE + dt.timedelta(minutes=1)
    [gone] = ledger.stale_claims(eng, now=later)
    [marked] = ledger.expire_claims(eng, [gone], now=later)
    assert marked["status"] == "unknown" and "never recorded the outcome" in marked["error"]
    [row] = ledger.history(eng, status="unknown")
    assert ledger.expire_claims(eng, [gone], now=later) == []  # once
    assert ledger.pending_recipients([row], now=utc_now()) == [] and ledger.retryable(eng, max_attempts=99) == []
    assert ledger.mark_processing(eng, [row["id"]], "run-2", include_rejected=True, now=utc_now()) == []
    assert ledger.mark_failed(eng, (SUB, KEY), "render exploded", now=utc_now()) == 0  # an outcome is never overwritten
    assert ledger.pending_recipients([row], resend=True, now=utc_now()) == ["a@x.com"]
    assert ledger.mark_processing(eng, [row["id"]], "run-2", resend=True, now=utc_now()) == [row["id"]]


def test_an_earlier_sqlite_state_database_keeps_working(tmp_path):
    import sqlite3

    from pos_exports import state

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the deliveries table as the previous version created it
        db.execute(
            """CREATE TABLE deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, subscription_id INTEGER NOT NULL,
            business_id BIGINT NOT NULL, period_kind TEXT NOT NULL, period_key TEXT NOT NULL,
            recipient TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, smtp_response TEXT,
            message_id TEXT, files JSON, bytes BIGINT, error TEXT, traceback TEXT, run_id TEXT,
            created_at DATETIME NOT NULL, started_at DATETIME, finished_at DATETIME, emailed_at DATETIME,
            CONSTRAINT deliveries_once UNIQUE (subscription_id, period_key, recipient))"""
        )
        db.execute(
            "INSERT INTO deliveries (subscription_id, business_id, period_kind, period_key, recipient, status,"
            " attempts, error, created_at) VALUES (3, 99, 'weekly', '2025-W10', 'a@x.com', 'failed', 0,"
            " 'skipped: no data in the period (only_if_data)', '2025-03-10 07:00:00')"
        )
    url = f"sqlite:///{path}"
    for _ in range(2):  # idempotent
        state._engine.cache_clear()
        eng = state.engine(url)
        [row] = ledger.history(eng)
        assert (row["status"], row["claimed_at"], row["claimant"]) == ("skipped", None, None)
        eng.dispose()
    [row] = ledger.open_rows(eng, 3, 99, "weekly", "2025-W10", ["b@x.com"], "run-1", now=utc_now())
    assert ledger.mark_processing(eng, [row["id"]], "run-1", now=utc_now()) == [row["id"]]
    assert ledger.claim_sending(eng, row["id"], "run-1", now=utc_now())
