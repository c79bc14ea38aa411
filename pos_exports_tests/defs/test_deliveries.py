"""Delivery end to end: a real SMTP server, a real Dagster run, the ledger; the sensor at chosen instants."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import dagster as dg

from pos_exports.core.clock import utc_now
from pos_exports.defs import deliveries as automation
from pos_exports.defs.deliveries import delivery_job, due_subscriptions_sensor
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.delivery import ledger, subscriptions
from pos_exports.delivery.email import message_id_for
from pos_exports_tests.exports.names import export_files
from pos_exports_tests.operations.conftest import reindex_all

UTC = dt.UTC


def _weekly(eng, **extra):
    data = {
        "business_id": 1,
        "name": "Weekly owner pack",
        "datasets": ["sales", "customers"],
        "formats": ["xlsx", "csv"],
        "frequency": "weekly",
        "day_of_week": "monday",
        "at": "07:00",
        "recipients": ["owner@kofi-shop.example", "accounts@kofi-shop.example"],
        **extra,
    }
    return subscriptions.add(eng, data, now=utc_now())


def _deliver(root, sub_id, key="2025-03-03"):
    return delivery_job.execute_in_process(
        run_config={
            "ops": {
                "deliver_subscription": {
                    "config": {"subscription_id": sub_id, "period_kind": "weekly", "period_key": key}
                }
            }
        },
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource()},
        raise_on_error=False,
    )


def test_each_email_says_how_to_change_or_stop_it(archived_root, state, smtp_server, monkeypatch):
    """The closing line names the subscription and whom to write to; List-Unsubscribe is a mail to the data
    team naming the subscription and that recipient; Reply-To falls back to the data team."""
    from email.utils import unquote
    from urllib.parse import unquote as url_unquote

    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query="from=exports@pos.example"))
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", "data-team@pos.example")
    sub = _weekly(state)
    assert _deliver(archived_root, sub.id).success
    for received in smtp_server.handler.received:
        m, [rcpt] = received.message, received.rcpt_tos
        assert m["Reply-To"] == "data-team@pos.example"
        header = unquote(m["List-Unsubscribe"])
        assert url_unquote(header) == f"mailto:data-team@pos.example?subject=Unsubscribe subscription {sub.id} {rcpt}"
        [sent] = [h for h in received.data.decode("ascii").split("\r\n") if h.startswith("List-Unsubscribe:")]
        assert sent.startswith(
            f"List-Unsubscribe: <mailto:data-team@pos.example?subject=Unsubscribe%20subscription%20{sub.id}%20"
        )
        assert "=?" not in sent  # as written on the wire, not an RFC 2047 encoded word
        line = (
            f'You receive this through the weekly subscription "Weekly owner pack" (number {sub.id}). '
            "To change or stop it, write to data-team@pos.example."
        )
        assert line in m.get_body(("plain",)).get_content()
        assert line.replace('"', "&#34;") in m.get_body(("html",)).get_content()


def test_subject_and_headings_name_datasets_in_words(archived_root, state, smtp_server, monkeypatch):
    """`audit_log` is a machine name: the subject and the summary heading say "audit log"."""
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query="from=exports@pos.example"))
    sub = _weekly(state, name="Audit", datasets=["audit_log"], formats=["csv"], recipients=["it@kofi-shop.example"])
    assert _deliver(archived_root, sub.id).success
    [received] = smtp_server.handler.received
    assert received.message["Subject"] == "Accra Shop: audit log export for 3–9 Mar 2025"
    text = received.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "\nAudit log\n" in text and "audit_log" not in text.replace("_audit_log_", "")


def test_delivery_emails_the_stored_files_once(archived_root, state, smtp_server, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query="from=exports@pos.example"))
    sub = _weekly(state)
    assert _deliver(archived_root, sub.id).success
    # One message per recipient, each addressed to that recipient only, with its own stable Message-ID.
    by_rcpt = {tuple(r.rcpt_tos): r.message for r in smtp_server.handler.received}
    assert sorted(by_rcpt) == [("accounts@kofi-shop.example",), ("owner@kofi-shop.example",)]
    for (rcpt,), m in by_rcpt.items():
        assert m["To"] == rcpt
        assert m["Message-ID"] == message_id_for(sub.id, "weekly", "2025-03-03", rcpt, "exports@pos.example")
    message = by_rcpt[("owner@kofi-shop.example",)]
    assert "Accra Shop" in message["Subject"]
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None
    attached = {part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()}
    folder = archived_root / "exports/1/weekly/2025-03-03"
    # named for a Downloads folder: business, dataset, period (ASCII; the original name in RFC 2231 beside it)
    stored = {f"accra-shop_{n.replace('.', '_2025-03-03.')}": n for n in ("sales.xlsx", "customers.xlsx")}
    zips = {f"accra-shop_{d}_2025-03-03.csv.zip": d for d in ("sales", "customers")}  # CSV tables, zipped
    assert set(attached) == set(stored) | set(zips)
    for name, dataset in zips.items():
        with zipfile.ZipFile(io.BytesIO(attached.pop(name))) as archive:
            members = {m.filename: archive.read(m) for m in archive.infolist()}
        tables = sorted(export_files([dataset], ["csv"]))
        assert sorted(members) == sorted(f"accra-shop_{t.removesuffix('.csv')}_2025-03-03.csv" for t in tables)
        for table in tables:
            assert members[f"accra-shop_{table.removesuffix('.csv')}_2025-03-03.csv"] == (folder / table).read_bytes()
    for name, data in attached.items():
        assert data == (folder / stored[name]).read_bytes(), name
    assert "GHS 18.50" in message.get_body(("plain",)).get_content()  # net sales: 21.00 net revenue - 2.50 refunds
    rows = ledger.history(state, subscription_id=sub.id)
    assert {r["status"] for r in rows} == {"emailed"} and len(rows) == 2
    # A re-run sends nothing: both recipients are already emailed.
    assert _deliver(archived_root, sub.id).success
    assert len(smtp_server.handler.received) == 2


def test_without_smtp_the_email_goes_to_the_outbox(archived_root, state, monkeypatch):
    monkeypatch.delenv("POS_EXPORTS_SMTP_URL", raising=False)
    sub = _weekly(state, recipients=["owner@kofi-shop.example"])
    assert _deliver(archived_root, sub.id).success
    [eml] = list((archived_root / "outbox").glob("*.eml"))
    assert b"Accra Shop" in eml.read_bytes()


def _evaluate(root, now, cursor=None, monkeypatch=None, instance=None):
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource.at(now)},
    )
    result = due_subscriptions_sensor(context)
    return pairs_of(result if isinstance(result, list) else []), context.cursor


def pairs_of(requests: list[dg.RunRequest]) -> list[str]:
    """The (subscription, period)s the batch run requests deliver, as `delivery:{id}:{kind}:{key}`."""
    return [
        f"delivery:{i['subscription_id']}:{i['period_kind']}:{i['period_key']}"
        for r in requests
        for i in r.run_config["ops"]["deliver_batch"]["config"]["items"]
    ]


def test_sensor_launches_each_due_period_once(archived_root, state, monkeypatch):
    sub = _weekly(state)
    start = json.dumps({"checked_at": "2025-03-10T06:00:00+00:00"})
    # Monday 10 March 07:00 in Accra (UTC+0): the week of 3-9 March is due.
    requests, cursor = _evaluate(archived_root, dt.datetime(2025, 3, 10, 7, 5, tzinfo=UTC), start, monkeypatch)
    assert requests == [f"delivery:{sub.id}:weekly:2025-03-03"]
    again, _ = _evaluate(archived_root, dt.datetime(2025, 3, 10, 7, 5, tzinfo=UTC), start, monkeypatch)
    assert again == requests  # same tick: same run key, one run
    later, _ = _evaluate(archived_root, dt.datetime(2025, 3, 10, 7, 15, tzinfo=UTC), cursor, monkeypatch)
    assert later == []


def test_paused_subscription_never_fires(archived_root, state, monkeypatch):
    sub = _weekly(state)
    subscriptions.set_active(state, sub.id, False, now=utc_now())
    start = json.dumps({"checked_at": "2025-03-03T00:00:00+00:00"})
    requests, _ = _evaluate(archived_root, dt.datetime(2025, 3, 31, tzinfo=UTC), start, monkeypatch)
    assert requests == []


def test_sensor_waits_for_the_archive(archived_root, state, monkeypatch):
    _weekly(state)
    marker = archived_root / "archive/sales/date=2025-03-07/business_id=1/_reconciliation.json"
    saved = marker.read_bytes()
    marker.unlink()
    reindex_all(archived_root)  # not archived yet: neither on storage nor in the index
    start = json.dumps({"checked_at": "2025-03-10T06:00:00+00:00"})
    requests, cursor = _evaluate(archived_root, dt.datetime(2025, 3, 10, 7, 5, tzinfo=UTC), start, monkeypatch)
    assert requests == [] and json.loads(cursor)["waiting"]
    marker.write_bytes(saved)  # the archive catches up (publishes, then indexes): the next tick launches it
    reindex_all(archived_root)
    requests, _ = _evaluate(archived_root, dt.datetime(2025, 3, 10, 7, 20, tzinfo=UTC), cursor, monkeypatch)
    assert len(requests) == 1


def _mark_archived(root, business_id, first, last, dataset="sales"):
    """Reconciliation markers for a run of days, indexed as the archive indexes what it publishes (the index is
    what the sensor checks before it launches a delivery)."""
    from pos_exports.archive import index
    from pos_exports.archive.extract import marker_key
    from pos_exports.state import engine
    from pos_exports.storage.base import LocalStorage

    storage, day = LocalStorage(root), first
    while day <= last:
        storage.write_bytes(marker_key(dataset, day, business_id), b'{"tables": []}')
        manifest = {"dataset": dataset, "business_id": business_id, "date": day.isoformat()}
        index.upsert(engine(), [index.index_row(manifest, b'{"tables": []}', dt.datetime.now(UTC))])
        day += dt.timedelta(days=1)


def _sweep(root, start, end, step, monkeypatch):
    """Evaluate the sensor every `step` from `start` to `end`; return {run key: first instant it was requested}."""
    cursor, seen, now = json.dumps({"checked_at": start.isoformat()}), {}, start
    with dg.instance_for_test() as instance:
        while now <= end:
            requests, cursor = _evaluate(root, now, cursor, monkeypatch, instance)
            for pair in requests:
                seen.setdefault(pair, now)
            now += step
    return seen


def test_weekly_fires_once_a_week_at_its_local_hour_across_dst(archived_root, state, monkeypatch):
    sub = _weekly(state, business_id=3, name="NY weekly", datasets=["sales"])
    _mark_archived(archived_root, 3, dt.date(2025, 2, 24), dt.date(2025, 3, 23))
    seen = _sweep(
        archived_root,
        dt.datetime(2025, 3, 1, 0, 5, tzinfo=UTC),
        dt.datetime(2025, 3, 25, tzinfo=UTC),
        dt.timedelta(hours=1),
        monkeypatch,
    )
    # Mondays 07:00 in New York: 12:00 UTC before the change of 9 March (EST), 11:00 UTC after it (EDT).
    assert seen == {
        f"delivery:{sub.id}:weekly:2025-02-24": dt.datetime(2025, 3, 3, 12, 5, tzinfo=UTC),
        f"delivery:{sub.id}:weekly:2025-03-03": dt.datetime(2025, 3, 10, 11, 5, tzinfo=UTC),
        f"delivery:{sub.id}:weekly:2025-03-10": dt.datetime(2025, 3, 17, 11, 5, tzinfo=UTC),
        f"delivery:{sub.id}:weekly:2025-03-17": dt.datetime(2025, 3, 24, 11, 5, tzinfo=UTC),
    }


def test_last_friday_and_second_tuesday_fire_on_the_right_dates(archived_root, state, monkeypatch):
    base = {"datasets": ["sales"], "frequency": "monthly", "day_of_week": None, "at": "09:00"}
    last_friday = _weekly(state, name="Last Friday", **base, nth_weekday="last friday")
    second_tuesday = _weekly(state, name="Second Tuesday", **base, nth_weekday="2nd tuesday")
    _mark_archived(archived_root, 1, dt.date(2024, 12, 1), dt.date(2025, 3, 31))
    seen = _sweep(
        archived_root,
        dt.datetime(2025, 1, 1, tzinfo=UTC),
        dt.datetime(2025, 4, 30, tzinfo=UTC),
        dt.timedelta(hours=6),
        monkeypatch,
    )
    fired = {key.split(":", 1)[1]: when.date() for key, when in seen.items()}
    # Accra is UTC+0, 09:00 local: seen at the 12:00 UTC evaluation of the same day.
    # Last Fridays of Jan-Apr 2025: 31 Jan, 28 Feb, 28 Mar, 25 Apr. Second Tuesdays: 14 Jan, 11 Feb, 11 Mar, 8 Apr.
    assert {k: v for k, v in fired.items() if k.startswith(f"{last_friday.id}:")} == {
        f"{last_friday.id}:monthly:2024-12": dt.date(2025, 1, 31),
        f"{last_friday.id}:monthly:2025-01": dt.date(2025, 2, 28),
        f"{last_friday.id}:monthly:2025-02": dt.date(2025, 3, 28),
        f"{last_friday.id}:monthly:2025-03": dt.date(2025, 4, 25),
    }
    assert {k: v for k, v in fired.items() if k.startswith(f"{second_tuesday.id}:")} == {
        f"{second_tuesday.id}:monthly:2024-12": dt.date(2025, 1, 14),
        f"{second_tuesday.id}:monthly:2025-01": dt.date(2025, 2, 11),
        f"{second_tuesday.id}:monthly:2025-02": dt.date(2025, 3, 11),
        f"{second_tuesday.id}:monthly:2025-03": dt.date(2025, 4, 8),
    }


def test_a_subscription_whose_business_has_a_bad_time_zone_is_skipped_and_reported_once(
    archived_root, state, monkeypatch
):
    import sqlalchemy as sa

    from pos_exports.archive.read import load_businesses, save_businesses
    from pos_exports.source.database import Business
    from pos_exports.state import alerts
    from pos_exports.storage.base import LocalStorage

    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", "data@pos.example")
    storage = LocalStorage(archived_root)
    save_businesses(storage, [*load_businesses(storage), Business(99, "Mars Shop", "Mars/Olympus", "USD", True)])
    first = _weekly(state, name="First", at="06:00")
    broken = _weekly(state, business_id=99, name="Broken zone")
    second = _weekly(state, name="Second")
    start = json.dumps({"checked_at": "2025-03-10T05:00:00+00:00"})
    with dg.instance_for_test() as instance:
        requests, cursor = _evaluate(
            archived_root, dt.datetime(2025, 3, 10, 7, 5, tzinfo=UTC), start, monkeypatch, instance
        )
        assert requests == [
            f"delivery:{first.id}:weekly:2025-03-03",
            f"delivery:{second.id}:weekly:2025-03-03",
        ]
        for minutes in (10, 15):  # later ticks: still skipped, not reported again
            _evaluate(archived_root, dt.datetime(2025, 3, 10, 7, minutes, tzinfo=UTC), cursor, monkeypatch, instance)
    with state.connect() as conn:
        [alert] = conn.execute(sa.select(alerts)).all()
    assert alert.recipients == ["data@pos.example"]
    assert f"subscription {broken.id} (Broken zone) of business 99: unknown time zone 'Mars/Olympus'" in alert.body
    assert "every other subscription is delivered as usual" in alert.body


def test_a_tick_launches_at_most_the_limit_oldest_first_and_the_next_tick_the_rest(archived_root, state, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_MAX_RUNS_PER_TICK", "2")  # runs per tick, of one pair each here
    monkeypatch.setenv("POS_EXPORTS_DELIVERY_BATCH_SIZE", "1")
    late = _weekly(state, name="Late", at="07:00")
    early = _weekly(state, name="Early", at="06:00")
    middle = _weekly(state, name="Middle", at="06:30")
    start = json.dumps({"checked_at": "2025-03-10T05:00:00+00:00"})
    key = "weekly:2025-03-03"
    with dg.instance_for_test() as instance:
        requests, cursor = _evaluate(
            archived_root, dt.datetime(2025, 3, 10, 7, 5, tzinfo=UTC), start, monkeypatch, instance
        )
        assert requests == [f"delivery:{early.id}:{key}", f"delivery:{middle.id}:{key}"]
        requests, cursor = _evaluate(
            archived_root, dt.datetime(2025, 3, 10, 7, 10, tzinfo=UTC), cursor, monkeypatch, instance
        )
        assert requests == [f"delivery:{late.id}:{key}"]
        requests, cursor = _evaluate(
            archived_root, dt.datetime(2025, 3, 10, 7, 15, tzinfo=UTC), cursor, monkeypatch, instance
        )
        assert requests == [] and json.loads(cursor)["waiting"] == []


def test_a_bad_limit_is_refused_naming_the_variable(monkeypatch):
    import pytest

    monkeypatch.setenv("POS_EXPORTS_MAX_RUNS_PER_TICK", "lots")
    with pytest.raises(ValueError, match=r"^POS_EXPORTS_MAX_RUNS_PER_TICK: .lots. is not a whole number"):
        automation.max_runs_per_tick()
