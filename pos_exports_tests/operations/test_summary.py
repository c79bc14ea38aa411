"""The weekly summary: real deliveries of the week of 3 March (delivery_job at chosen ledger instants), then
the summaries through the alert queue to a real SMTP server; expected figures worked out by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from pos_exports.core.clock import utc_now
from pos_exports.defs.deliveries import delivery_job
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.defs.summary import weekly_summary_job
from pos_exports.delivery import ledger, subscriptions
from pos_exports.delivery.email import RecipientResult
from pos_exports.operations import summary as summary_module
from pos_exports.operations.summary import last_complete_week, week_summary
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.exports.names import export_files
from pos_exports_tests.operations.conftest import reindex_all

UTC = dt.UTC
WEEK = dt.date(2025, 3, 3)
DATA_TEAM = "data@pos-team.example"


def _deliver(root, sub_id, key, now):
    return delivery_job.execute_in_process(
        run_config={
            "ops": {
                "deliver_subscription": {
                    "config": {"subscription_id": sub_id, "period_kind": "daily", "period_key": key}
                }
            }
        },
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource.at(now)},
        raise_on_error=False,
    )


def _size(root, business_id, key, names):
    return sum((root / f"exports/{business_id}/daily/{key}/{n}").stat().st_size for n in names)


@pytest.fixture
def week(archived_root, state, smtp_server, clock, monkeypatch):
    """The week's ledger, written by real deliveries at the clock's instants (and one retried row through the
    ledger functions):

    | sub | business | period     | at (UTC)          | recipients                                 |
    | s1  | 1 Accra  | 2025-03-05 | 6 Mar 07:00       | owner@ emailed, acc@ refused (550 at RCPT) |
    | s1  | 1 Accra  | 2025-03-06 | 7 Mar 07:00       | owner@, acc@ emailed                       |
    | s2  | 2 Tokyo  | 2025-03-05 | 5 Mar 23:30       | owner@tokyo emailed                        |
    | s2  | 2 Tokyo  | 2025-03-06 | 6 Mar 23:30       | owner@tokyo emailed on the 2nd attempt     |
    s3 (business 3) is paused: no summary for business 3; business 2's summary goes to its settings'
    default recipient.
    """
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query="from=exports@pos.example"))
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", DATA_TEAM)
    base = {"frequency": "daily", "at": "07:00", "datasets": ["sales"]}
    s1 = subscriptions.add(
        state,
        {
            **base,
            "business_id": 1,
            "name": "Daily sales",
            "formats": ["csv", "xlsx"],
            "recipients": ["owner@accra.example", "acc@accra.example"],
        },
        now=utc_now(),
    )
    s2 = subscriptions.add(
        state,
        {**base, "business_id": 2, "name": "Daily PDF", "formats": ["pdf"], "recipients": ["owner@tokyo.example"]},
        now=utc_now(),
    )
    subscriptions.add(
        state,
        {
            **base,
            "business_id": 3,
            "name": "NY",
            "formats": ["csv"],
            "recipients": ["ny@ny.example"],
            "is_active": False,
        },
        now=utc_now(),
    )
    subscriptions.save_settings(state, {"business_id": 2, "default_recipients": ["boss@tokyo.example"]}, now=utc_now())

    smtp_server.handler.rcpt_replies["acc@accra.example"] = ["550 5.1.1 no such user"]
    clock.set(dt.datetime(2025, 3, 6, 7, 0, tzinfo=UTC))
    assert not _deliver(archived_root, s1.id, "2025-03-05", clock.now).success  # partial: one recipient refused
    clock.set(dt.datetime(2025, 3, 7, 7, 0, tzinfo=UTC))
    assert _deliver(archived_root, s1.id, "2025-03-06", clock.now).success
    clock.set(dt.datetime(2025, 3, 5, 23, 30, tzinfo=UTC))
    assert _deliver(archived_root, s2.id, "2025-03-05", clock.now).success
    clock.set(dt.datetime(2025, 3, 6, 23, 30, tzinfo=UTC))
    rows = ledger.open_rows(state, s2.id, 2, "daily", "2025-03-06", s2.recipients, "r", now=clock.now)
    ids = ledger.mark_processing(state, [r["id"] for r in rows], "r", now=clock.now)
    ledger.mark_completed(state, ids, [], 0, now=clock.now)
    ok = RecipientResult("emailed", 250, "250 OK", 2, "<m@x>", "data")
    ledger.record_results(state, s2.id, "2025-03-06", {"owner@tokyo.example": ok}, now=clock.now)
    assert len(smtp_server.handler.received) == 4  # the export emails: one message per recipient
    return s1, s2


def _summaries(smtp_server):
    return {
        tuple(sorted(r.rcpt_tos)): r.message
        for r in smtp_server.handler.received
        if "Weekly summary" in str(r.message["Subject"])
    }


def _text(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def _check(archived_root, smtp_server):
    mails = _summaries(smtp_server)
    assert set(mails) == {("acc@accra.example", "owner@accra.example"), ("boss@tokyo.example",), (DATA_TEAM,)}

    accra = mails[("acc@accra.example", "owner@accra.example")]
    assert accra["Subject"] == "[pos_exports] Weekly summary 3–9 Mar 2025 (2025-03-03): Accra Shop"
    text = _text(accra)
    names = sorted(export_files(["sales"], ["csv", "xlsx"]))  # a workbook and one CSV per table, a day
    emailed = _size(archived_root, 1, "2025-03-05", names) + 2 * _size(archived_root, 1, "2025-03-06", names)
    for line in [
        "Weekly summary for Accra Shop (business 1)",
        "Week: 3–9 Mar 2025 (Monday 2025-03-03 to Sunday 2025-03-09, Africa/Accra)",
        "  Periods: 2\n",  # the daily exports of the 5th and the 6th
        f"  By period: daily 2 ({2 * len(names)} files, ",
        f"  Files: {2 * len(names)}\n",
        "  Delivered: 3\n",
        "  Failed: 1\n",
        "  Retried: 0\n",
        "  Success rate: 75.00%\n",
        "  Recipients: 2\n",
        f"  Emailed: {3 * len(names)} file(s), ",  # 3 emails x the stored files (the CSV tables travel zipped)
        f"({emailed} bytes)",
        "  sales: 7 of 7\n",
        "  customers: 1 of 7; missing 2025-03-03, 2025-03-04, 2025-03-05, 2025-03-06, 2025-03-07, 2025-03-08\n",
        "  audit_log: 7 of 7\n",
    ]:
        assert line in text, line

    tokyo = _text(mails[("boss@tokyo.example",)])
    for line in [
        "Weekly summary for 東京ショップ (business 2)",
        "Asia/Tokyo)",
        "  Periods: 1\n",
        "  Files: 1\n",
        "  Delivered: 2\n",
        "  Failed: 0\n",
        "  Retried: 1\n",
        "  Success rate: 100.00%\n",
        "  inventory: 1 of 7",
    ]:
        assert line in tokyo, line

    fleet = _text(mails[(DATA_TEAM,)])
    for line in [
        "Weekly summary for all businesses",
        "  Periods: 3\n",
        f"  Files: {2 * len(names) + 1}\n",  # Accra's and Tokyo's one
        "  Delivered: 5\n",
        "  Failed: 1\n",
        "  Retried: 1\n",
        "  Success rate: 83.33%\n",
        "  Recipients: 3\n",
        "  sales: 21 of 21\n",
        "  customers: 3 of 21; missing business 1: 6 days, business 2: 6 days, business 3: 6 days\n",
        "  Accra Shop (business 1): 3 delivered, 1 failed, 0 retried, success 75.00%, 2 export period(s), "
        "12 archive day(s) missing",
        "  東京ショップ (business 2): 2 delivered, 0 failed, 1 retried, success 100.00%, 1 export period(s)",
        "  NY Shop (business 3): 0 delivered, 0 failed, 0 retried, success n/a, 0 export period(s)",
    ]:
        assert line in fleet, line
    assert "Closed Shop" not in fleet  # inactive business


def test_weekly_summaries_arrive_by_smtp(week, archived_root, state, smtp_server, monkeypatch):
    result = weekly_summary_job.execute_in_process(
        resources={
            "storage": StorageResource(root=str(archived_root)),
            "clock": ClockResource.at(dt.datetime(2025, 3, 10, 6, 0, tzinfo=UTC)),
        }
    )
    assert result.success and result.output_for_node("send_weekly_summary") == "2025-03-03"  # the default week
    _check(archived_root, smtp_server)
    # Monday 06:00 UTC: Sunday's archive run (12:30 UTC) has not come yet; the fixture has it anyway.
    assert "not archived yet" not in _text(_summaries(smtp_server)[(DATA_TEAM,)])

    # Re-running the job sends nothing twice; `force` sends again.
    result = weekly_summary_job.execute_in_process(
        resources={
            "storage": StorageResource(root=str(archived_root)),
            "clock": ClockResource.at(dt.datetime(2025, 3, 10, 6, 0, tzinfo=UTC)),
        }
    )
    assert result.success and len(_summaries(smtp_server)) == 3 and len(smtp_server.handler.received) == 7
    result = weekly_summary_job.execute_in_process(
        run_config={"ops": {"send_weekly_summary": {"config": {"week_start": "2025-03-03", "force": True}}}},
        resources={
            "storage": StorageResource(root=str(archived_root)),
            "clock": ClockResource.at(dt.datetime(2025, 3, 10, 6, 0, tzinfo=UTC)),
        },
    )
    assert result.success and len(smtp_server.handler.received) == 10


def test_failed_summary_stays_queued_and_is_resent(week, archived_root, state, smtp_server, tmp_path):
    from pos_exports.delivery import notify
    from pos_exports.delivery.email import SmtpSettings
    from pos_exports.state import alerts

    smtp = SmtpSettings.from_url(smtp_server.url(query="from=exports@pos.example"))
    smtp_server.handler.data_replies = ["554 5.3.0 try again later"]  # the first summary is refused
    out = summary_module.send_weekly_summaries(
        state, LocalStorage(archived_root), WEEK, smtp, tmp_path, now=dt.datetime(2025, 3, 17, tzinfo=UTC)
    )
    assert set(out["queued"]) == {1, 2, "data_team"} and out["flush"] == {"sent": 2, "pending": 1, "failed": 0}
    assert notify.flush(state, smtp, tmp_path, now=utc_now()) == {
        "sent": 1,
        "pending": 0,
        "failed": 0,
    }  # alert_outbox_sensor
    _check(archived_root, smtp_server)
    with state.connect() as conn:
        rows = conn.execute(alerts.select().where(alerts.c.kind == "summary")).mappings().all()
    assert sorted(r["business_id"] or 0 for r in rows) == [0, 1, 2] and {r["status"] for r in rows} == {"sent"}


def test_missing_days_and_not_yet_due(archived_root, state):
    storage = LocalStorage(archived_root)
    (archived_root / "archive/sales/date=2025-03-05/business_id=1/_reconciliation.json").unlink()
    monday_morning = dt.datetime(2025, 3, 10, 6, 0, tzinfo=UTC)
    (archived_root / "archive/sales/date=2025-03-09/business_id=1/_reconciliation.json").unlink()
    reindex_all(archived_root)
    s = week_summary(state, storage, 1, WEEK, now=monday_morning)
    assert (s.coverage["sales"].archived, s.coverage["sales"].expected) == (5, 7)
    assert "  sales: 5 of 7; missing 2025-03-05; not archived yet (its run is later) 2025-03-09\n" in s.text()
    later = week_summary(state, storage, 1, WEEK, now=dt.datetime(2025, 3, 10, 13, 0, tzinfo=UTC))
    assert "  sales: 5 of 7; missing 2025-03-05, 2025-03-09\n" in later.text()
    assert (s.deliveries["attempted"], s.exports["periods"]) == (0, 0)
    assert "Success rate: n/a" in s.text()


def test_week_selection(archived_root, state, monkeypatch):
    assert last_complete_week(dt.datetime(2025, 3, 10, 6, 0, tzinfo=UTC)) == WEEK
    assert last_complete_week(dt.datetime(2025, 3, 16, 23, 59, tzinfo=UTC)) == WEEK
    assert last_complete_week(dt.datetime(2025, 3, 17, 0, 0, tzinfo=UTC)) == dt.date(2025, 3, 10)
    for week_start, message in [
        ("2025-03-04", "is a Tuesday"),
        ("2025-03-10", "has not ended yet"),
        ("March", "is not a date"),
    ]:
        result = weekly_summary_job.execute_in_process(
            run_config={"ops": {"send_weekly_summary": {"config": {"week_start": week_start}}}},
            resources={
                "storage": StorageResource(root=str(archived_root)),
                "clock": ClockResource.at(dt.datetime(2025, 3, 12, tzinfo=UTC)),
            },
            raise_on_error=False,
        )
        assert not result.success
        [failure] = result.get_step_failure_events()
        assert message in failure.step_failure_data.error.message
