"""Delivery planning on plain data (no Dagster): which (subscription, period)s are due and ready at `now`."""

from __future__ import annotations

import datetime as dt

from pos_exports.core.clock import utc_now
from pos_exports.delivery import ledger, subscriptions
from pos_exports.delivery.email import RecipientResult
from pos_exports.operations.planning import due_pairs, wanted_files
from pos_exports.storage.base import LocalStorage

UTC = dt.UTC
LAST = dt.datetime(2025, 3, 10, 6, 0, tzinfo=UTC)
NOW = dt.datetime(2025, 3, 10, 7, 5, tzinfo=UTC)  # Monday 07:05 in Accra (UTC+0): the week of 3-9 March is due


def _weekly(eng, name: str, **extra):
    data = {
        "business_id": 1,
        "name": name,
        "datasets": ["sales"],
        "formats": ["csv"],
        "frequency": "weekly",
        "day_of_week": "monday",
        "at": "07:00",
        "recipients": ["owner@kofi-shop.example"],
    }
    return subscriptions.add(eng, {**data, **extra}, now=utc_now())


def test_the_due_pairs_follow_the_given_now_and_the_limit(archived_root, state):
    first, second = _weekly(state, "Weekly A"), _weekly(state, "Weekly B", at="07:30")
    storage = LocalStorage(archived_root)
    # 07:05: only A's 07:00 firing has passed; B fires at 07:30
    pairs, waiting, broken = due_pairs(storage, state, LAST, NOW, [], max_pairs=10)
    assert pairs == [(first.id, "weekly", "2025-03-03")] and waiting == [] and broken == {}
    # an hour later both are due; with room for one, the older firing goes first and the other waits
    later = NOW + dt.timedelta(hours=1)
    pairs, waiting, _ = due_pairs(storage, state, LAST, later, [], max_pairs=1)
    assert pairs == [(first.id, "weekly", "2025-03-03")]
    assert waiting == [[second.id, "weekly", "2025-03-03", "2025-03-10T07:30:00+00:00"]]
    # before any firing nothing is due
    assert due_pairs(storage, state, LAST, LAST + dt.timedelta(minutes=30), [], max_pairs=10)[0] == []


def test_a_delivered_pair_is_not_due_again(archived_root, state):
    sub = _weekly(state, "Weekly A")
    [row] = ledger.open_rows(state, sub.id, 1, "weekly", "2025-03-03", sub.recipients, "run-1", now=utc_now())
    ledger.mark_processing(state, [row["id"]], "run-1", now=utc_now())
    ledger.claim_sending(state, row["id"], "run-1", now=utc_now())
    ledger.record_result(
        state,
        row["id"],
        "run-1",
        RecipientResult("emailed", 250, "250 OK", 1, "<m@pos.example>", "data"),
        now=utc_now(),
    )
    assert due_pairs(LocalStorage(archived_root), state, LAST, NOW, [], max_pairs=10)[0] == []


def test_an_unfiltered_subscription_asks_for_its_files_a_filtered_one_renders_its_own(state):
    _weekly(state, "Plain", formats=["csv", "pdf"])
    _weekly(state, "Filtered", datasets=["customers"], filters={"customer_type": "wholesale"})
    assert wanted_files("weekly", state) == {(1, "sales", "csv"), (1, "sales", "pdf")}
    assert wanted_files("daily", state) == set()
