"""Deliveries batched per tick: one run sends every due (subscription, period), each isolated; the due sensor
reads the ledger once per tick, whatever the history."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest
import sqlalchemy as sa

from pos_exports.core.clock import utc_now
from pos_exports.defs import deliveries as automation
from pos_exports.defs.deliveries import delivery_batch_job, due_requests, due_subscriptions_sensor
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.delivery import ledger, subscriptions
from pos_exports.delivery.email import RecipientResult
from pos_exports.failures import from_metadata
from pos_exports.state import engine as state_engine
from pos_exports.storage.base import LocalStorage

UTC = dt.UTC
TICK = dt.datetime(2025, 3, 10, 7, 5, tzinfo=UTC)  # Monday 07:05 in Accra: the week of 3-9 March is due
LAST = dt.datetime(2025, 3, 10, 6, 0, tzinfo=UTC)


def _ten(eng, n: int = 10) -> list:
    return [
        subscriptions.add(
            eng,
            {
                "business_id": 1,
                "name": f"Weekly {i}",
                "datasets": ["sales"],
                "formats": ["csv"],
                "frequency": "weekly",
                "day_of_week": "monday",
                "at": "07:00",
                "recipients": [f"owner{i}@kofi-shop.example"],
            },
            now=utc_now(),
        )
        for i in range(n)
    ]


def _items(request: dg.RunRequest) -> list[dict]:
    return request.run_config["ops"]["deliver_batch"]["config"]["items"]


def test_a_batch_with_one_refused_subscription_sends_the_nine_once_and_fails_only_the_one(
    archived_root, state, smtp_server, monkeypatch
):
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query="from=exports@pos.example"))
    subs = _ten(state)
    refused = subs[4]
    smtp_server.handler.rcpt_replies["owner4@kofi-shop.example"] = ["550 5.1.1 no such user"]
    [request] = due_requests(LocalStorage(archived_root), state, LAST, TICK, [])[0]
    assert len(_items(request)) == 10
    result = delivery_batch_job.execute_in_process(
        run_config=request.run_config,
        resources={"storage": StorageResource(root=str(archived_root)), "clock": ClockResource()},
        raise_on_error=False,
    )
    assert not result.success
    # Nine emailed once each at the server; nothing for the refused one.
    for sub in subs:
        got = smtp_server.handler.delivered_to(sub.recipients[0])
        assert len(got) == (0 if sub.id == refused.id else 1), sub.recipients
    assert len(smtp_server.handler.received) == 9
    # The ledger: exactly one row per subscription, nine emailed after one attempt, one rejected.
    rows = ledger.history(state)
    assert len(rows) == 10
    by_sub = {r["subscription_id"]: r for r in rows}
    for sub in subs:
        row = by_sub[sub.id]
        assert row["period_key"] == "2025-03-03" and row["attempts"] == 1
        if sub.id == refused.id:
            assert row["status"] == "failed" and row["error"].startswith("rejected: 550")
        else:
            assert row["status"] == "emailed" and row["emailed_at"] is not None
    # The run failed with the structured items of that subscription only, and the per-pair table.
    failure = result.failure_data_for_node("deliver_batch").user_failure_data
    assert f"subscription {refused.id} 2025-03-03" in failure.description and "550 5.1.1" in failure.description
    assert failure.description.startswith("1 of 10 deliveries failed")
    [item] = from_metadata(failure.metadata)
    assert (item.business_id, item.stage, item.period_key, item.must_act) == (1, "delivery", "2025-03-03", True)
    table = {r.data["subscription"]: r.data for r in failure.metadata["deliveries"].records}
    assert {s: t["status"] for s, t in table.items()} == {
        sub.id: ("failed" if sub.id == refused.id else "sent") for sub in subs
    }
    assert table[refused.id]["failed"] == 1 and "550" in table[refused.id]["message"]
    assert all(t["emailed"] == 1 and t["business"] == 1 for s, t in table.items() if s != refused.id)


def test_the_sensor_launches_one_run_for_ten_due_pairs_once(archived_root, state, monkeypatch):
    subs = _ten(state)
    start = json.dumps({"checked_at": LAST.isoformat()})

    def tick(cursor):
        context = dg.build_sensor_context(
            cursor=cursor,
            resources={"storage": StorageResource(root=str(archived_root)), "clock": ClockResource.at(TICK)},
        )
        result = due_subscriptions_sensor(context)
        return (result if isinstance(result, list) else []), context.cursor

    [request], cursor = tick(start)
    assert sorted(i["subscription_id"] for i in _items(request)) == sorted(s.id for s in subs)
    [again], _ = tick(start)  # the same tick evaluated again: the same run key, so Dagster launches it once
    assert again.run_key == request.run_key and again.run_config == request.run_config
    assert tick(cursor)[0] == []  # the next tick: nothing new
    # Once delivered, even a tick re-evaluated from the old cursor launches nothing.
    for sub in subs:
        [row] = ledger.open_rows(state, sub.id, 1, "weekly", "2025-03-03", sub.recipients, "r", now=utc_now())
        ledger.mark_processing(state, [row["id"]], "r", now=utc_now())
        ledger.claim_sending(state, row["id"], "r", now=utc_now())
        ledger.record_result(
            state,
            row["id"],
            "r",
            RecipientResult("emailed", 250, "250 OK", 1, "<m@pos.example>", "data"),
            now=utc_now(),
        )
    assert tick(start)[0] == []


def test_the_batch_size_shards_the_tick(archived_root, state, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_DELIVERY_BATCH_SIZE", "4")
    _ten(state)
    requests = due_requests(LocalStorage(archived_root), state, LAST, TICK, [], 50, automation.delivery_batch_size())[0]
    assert [len(_items(r)) for r in requests] == [4, 4, 2]
    assert len({r.run_key for r in requests}) == 3


@pytest.mark.parametrize("max_runs, runs, waiting", [(50, [10, 10, 5], 0), (2, [10, 10], 5)])
def test_one_tick_starts_up_to_the_run_limit_of_batches(archived_root, state, monkeypatch, max_runs, runs, waiting):
    monkeypatch.setenv("POS_EXPORTS_DELIVERY_BATCH_SIZE", "10")
    monkeypatch.setenv("POS_EXPORTS_MAX_RUNS_PER_TICK", str(max_runs))
    subs = _ten(state, 25)
    context = dg.build_sensor_context(
        cursor=json.dumps({"checked_at": LAST.isoformat()}),
        resources={"storage": StorageResource(root=str(archived_root)), "clock": ClockResource.at(TICK)},
    )
    requests = due_subscriptions_sensor(context)
    assert [len(_items(r)) for r in requests] == runs
    launched = [i["subscription_id"] for r in requests for i in _items(r)]
    assert len(launched) == len(set(launched))  # each pair in exactly one run
    left = [w[0] for w in json.loads(context.cursor)["waiting"]]
    assert len(left) == waiting and sorted(launched + left) == sorted(s.id for s in subs)
    assert len({r.run_key for r in requests}) == len(runs)


def test_the_due_sensor_reads_the_ledger_once_per_tick_whatever_the_history(archived_root, state):
    subs = _ten(state)
    monday = dt.date(2025, 3, 3)
    for sub in subs:  # a long history: 60 past weeks of ledger rows per subscription
        for week in range(1, 61):
            key = (monday - dt.timedelta(weeks=week)).isoformat()
            ledger.open_rows(state, sub.id, 1, "weekly", key, sub.recipients, "old", now=utc_now())
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "deliveries" in statement:
            statements.append(statement)

    sa.event.listen(state, "before_cursor_execute", record)
    try:
        [request] = due_requests(LocalStorage(archived_root), state, LAST, TICK, [])[0]
    finally:
        sa.event.remove(state, "before_cursor_execute", record)
    assert len(_items(request)) == 10
    assert len(statements) == 1  # one query for the ten pairs (not one per subscription)
    assert "GROUP BY" in statements[0] and "IN" in statements[0]


def test_a_pair_whose_archive_is_missing_fails_alone_and_a_rerun_sends_nothing_twice(
    archived_root, state, smtp_server, monkeypatch
):
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query="from=exports@pos.example"))
    *subs, unarchived = _ten(state)[:4]
    # the week of 10 March is not archived yet (the archive holds 3-9 March)
    pairs = [*((s.id, "weekly", "2025-03-03") for s in subs), (unarchived.id, "weekly", "2025-03-10")]
    request = automation.batch_request(pairs)
    assert request.run_key == automation.batch_request(list(reversed(pairs))).run_key  # the order does not matter

    def run():
        return delivery_batch_job.execute_in_process(
            run_config=request.run_config,
            resources={"storage": StorageResource(root=str(archived_root)), "clock": ClockResource()},
            raise_on_error=False,
        )

    first = run()
    assert not first.success
    failure = first.failure_data_for_node("deliver_batch").user_failure_data
    assert failure.description.startswith("1 of 4 deliveries failed") and "not there yet" in failure.description
    [item] = from_metadata(failure.metadata)
    assert (item.business_id, item.period_key) == (
        1,
        "2025-03-10",
    ) and item.reason == "the data it is made from is not archived yet"
    assert sorted(a for r in smtp_server.handler.received for a in r.rcpt_tos) == sorted(s.recipients[0] for s in subs)
    assert ledger.history(state, subscription_id=unarchived.id) == []  # nothing written before the archive is there
    # The same batch again: the three are already emailed (nothing sent twice), the fourth fails the same way.
    second = run()
    assert not second.success and len(smtp_server.handler.received) == 3
    table = {
        r.data["subscription"]: r.data["status"]
        for r in second.failure_data_for_node("deliver_batch").user_failure_data.metadata["deliveries"].records
    }
    assert table == {**{s.id: "already_sent" for s in subs}, unarchived.id: "failed"}
    assert {r["status"] for r in ledger.history(state)} == {"emailed"} and len(ledger.history(state)) == 3


def test_a_manual_trigger_racing_the_batch_sends_nothing_twice(archived_root, state, smtp_server, monkeypatch):
    import threading

    from pos_exports.defs.deliveries import delivery_job

    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query="from=exports@pos.example"))
    subs = _ten(state)[:3]
    held, release = threading.Event(), threading.Event()

    def hold_the_first(n: int) -> None:  # the batch's first SMTP transaction waits at the server
        if n == 1:
            held.set()
            release.wait(60)

    smtp_server.handler.on_data = hold_the_first
    resources = {"storage": StorageResource(root=str(archived_root)), "clock": ClockResource()}
    request = automation.batch_request([(s.id, "weekly", "2025-03-03") for s in subs])
    results = {}

    def batch() -> None:
        results["batch"] = delivery_batch_job.execute_in_process(
            run_config=request.run_config, resources=resources, raise_on_error=False
        )

    thread = threading.Thread(target=batch)
    thread.start()
    assert held.wait(120)
    first = sorted(subs, key=lambda s: s.id)[0]  # the batch sends in the order of its sorted pairs
    config = {"subscription_id": first.id, "period_kind": "weekly", "period_key": "2025-03-03"}
    manual = delivery_job.execute_in_process(
        run_config={"ops": {"deliver_subscription": {"config": config}}}, resources=resources, raise_on_error=False
    )
    release.set()
    thread.join(120)
    assert manual.success and manual.output_for_node("deliver_subscription") == "already_sent"
    assert results["batch"].success
    for sub in subs:
        assert len(smtp_server.handler.delivered_to(sub.recipients[0])) == 1
    assert smtp_server.handler.data_commands == 3
    rows = ledger.history(state)
    assert len(rows) == 3 and {r["status"] for r in rows} == {"emailed"} and {r["attempts"] for r in rows} == {1}


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_state(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'q.db'}" if request.param == "sqlite" else request.getfixturevalue("new_pg_database")()
    )
    eng = state_engine(url)
    yield eng
    eng.dispose()


def test_delivered_names_only_the_pairs_whose_every_row_is_emailed(sql_state):
    emailed = RecipientResult("emailed", 250, "250 OK", 1, "<m@pos.example>", "data")

    def send(sub_id: int, key: str, recipients: list[str], ok: set[str]) -> None:
        for row in ledger.open_rows(sql_state, sub_id, 1, "weekly", key, recipients, "r", now=utc_now()):
            if row["recipient"] in ok:
                ledger.mark_processing(sql_state, [row["id"]], "r", now=utc_now())
                ledger.claim_sending(sql_state, row["id"], "r", now=utc_now())
                ledger.record_result(sql_state, row["id"], "r", emailed, now=utc_now())

    send(1, "2025-03-03", ["a@x.example", "b@x.example"], {"a@x.example", "b@x.example"})  # all emailed
    send(2, "2025-03-03", ["a@x.example", "b@x.example"], {"a@x.example"})  # one still pending
    send(3, "2025-02-24", ["a@x.example"], {"a@x.example"})  # emailed, but another period
    asked = [(1, "2025-03-03"), (2, "2025-03-03"), (3, "2025-03-03"), (4, "2025-03-03")]
    assert ledger.delivered(sql_state, asked) == {(1, "2025-03-03")}
    assert ledger.delivered(sql_state, asked, chunk=1) == {(1, "2025-03-03")}
    assert ledger.delivered(sql_state, []) == set()


def test_the_due_sensor_targets_the_batch_job_and_manual_runs_stay_single():
    from pos_exports.definitions import defs

    repo = defs.get_repository_def()
    assert {"delivery_batch_job", "delivery_job"} <= set(repo.job_names)
    assert repo.get_sensor_def("due_subscriptions_sensor").job_name == "delivery_batch_job"
    assert repo.get_sensor_def("failed_delivery_retry_sensor").job_name == "delivery_job"
