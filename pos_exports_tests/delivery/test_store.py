"""The store functions and the YAML import on a real SQLite and a real PostgreSQL state database."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from pos_exports import state
from pos_exports.core.clock import utc_now
from pos_exports.delivery import subscriptions as subs
from pos_exports.delivery.subscriptions import NotificationSettings, SubscriptionError

DEMO = Path(subs.__file__).with_name("demo_subscriptions.yaml")
ZONES = {1: "Africa/Accra", 2: "America/New_York", 3: "Asia/Tokyo", 4: "Europe/Warsaw", 5: "Asia/Dubai"}


def weekly(**changes) -> dict:
    data = {
        "business_id": 2,
        "name": "Weekly summary",
        "datasets": ["sales", "customers"],
        "formats": ["xlsx", "pdf"],
        "frequency": "weekly",
        "day_of_week": "monday",
        "at": "07:00",
        "recipients": ["owner@bodega.example"],
        "filters": {"customer_type": "wholesale"},
    }
    return {**data, **changes}


def count(eng, table) -> int:
    with eng.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_round_trip(state_engine):
    eng = state_engine
    added = subs.add(eng, subs.validate(weekly()), now=utc_now())
    assert added.id is not None and added.created_at is not None and added.created_at.tzinfo is not None
    assert subs.get(eng, added.id) == added

    other = subs.add(eng, weekly(business_id=3, name="Tokyo daily", frequency="daily", day_of_week=None), now=utc_now())
    assert [s.id for s in subs.find(eng)] == [added.id, other.id]
    assert [s.id for s in subs.find(eng, business_id=3)] == [other.id]

    changed = subs.update(
        eng, added.id, {"at": "08:30", "recipients": ["a@bodega.example", "b@bodega.example"]}, now=utc_now()
    )
    assert (changed.hour, changed.minute, changed.recipients) == (8, 30, ["a@bodega.example", "b@bodega.example"])
    assert changed.created_at == added.created_at and changed.updated_at >= added.updated_at
    assert subs.get(eng, added.id) == changed

    # a new frequency drops the schedule fields of the old one; a day_of_month replaces nth_weekday
    monthly = subs.update(eng, added.id, {"frequency": "monthly", "nth_weekday": "2nd tuesday"}, now=utc_now())
    assert (monthly.day_of_week, monthly.nth_weekday, monthly.day_of_month) == (None, "2nd tuesday", None)
    monthly = subs.update(eng, added.id, {"day_of_month": "last"}, now=utc_now())
    assert (monthly.nth_weekday, monthly.day_of_month) == (None, "last")

    paused = subs.set_active(eng, added.id, False, now=utc_now())
    assert paused.is_active is False and subs.get(eng, added.id).is_active is False
    assert [s.id for s in subs.find(eng, active=False)] == [added.id]
    assert [s.id for s in subs.find(eng, active=True)] == [other.id]
    assert subs.set_active(eng, added.id, True, now=utc_now()).is_active is True

    third = subs.add(eng, weekly(name="Third", day_of_week="friday"), now=utc_now())
    same = subs.update(
        eng, third.id, {"frequency": "WEEKLY", "at": "09:00"}, now=utc_now()
    )  # the same frequency: nothing cleared
    assert (same.frequency, same.day_of_week, same.hour) == ("weekly", 4, 9)
    subs.remove(eng, third.id)

    removed = subs.remove(eng, added.id)
    assert removed.id == added.id and subs.get(eng, added.id) is None
    assert [s.id for s in subs.find(eng)] == [other.id]


def test_refusals(state_engine):
    eng = state_engine
    first = subs.add(eng, weekly(), now=utc_now())
    with pytest.raises(SubscriptionError, match=r"name: business 2 already has a subscription named 'Weekly summary'"):
        subs.add(eng, weekly(formats=["csv"]), now=utc_now())
    second = subs.add(eng, weekly(name="Second"), now=utc_now())
    with pytest.raises(SubscriptionError, match="already has a subscription named 'Weekly summary'"):
        subs.update(eng, second.id, {"name": "Weekly summary"}, now=utc_now())
    with pytest.raises(SubscriptionError, match="business_id: a subscription cannot move to another business"):
        subs.update(eng, first.id, {"business_id": 3}, now=utc_now())
    with pytest.raises(SubscriptionError, match=r"^recipients: 'x@y\\r\\nBcc: z@w.com' is not a valid"):
        subs.update(eng, first.id, {"recipients": ["x@y\r\nBcc: z@w.com"]}, now=utc_now())
    with pytest.raises(SubscriptionError, match="filters: 'customer_type' filters the customers dataset"):
        subs.update(eng, first.id, {"datasets": ["sales"]}, now=utc_now())  # re-validated as a whole
    with pytest.raises(SubscriptionError, match="^id: cannot be changed"):
        subs.update(eng, first.id, {"id": 9}, now=utc_now())
    with pytest.raises(SubscriptionError, match="business_id: no business with id 7"):
        subs.add(eng, weekly(business_id=7, name="x"), business_timezones=ZONES, now=utc_now())
    for call in (
        lambda: subs.update(eng, 999, {}, now=utc_now()),
        lambda: subs.set_active(eng, 999, True, now=utc_now()),
        lambda: subs.remove(eng, 999),
    ):
        with pytest.raises(SubscriptionError, match="^id: no subscription with id 999"):
            call()
    assert subs.get(eng, 999) is None
    assert subs.get(eng, first.id).datasets == ["sales", "customers"]  # nothing changed by the refusals


def test_notification_settings(state_engine):
    eng = state_engine
    defaults = subs.get_settings(eng, 2)
    assert defaults == NotificationSettings(business_id=2)
    assert (defaults.notify_success, defaults.notify_failure, defaults.from_name, defaults.reply_to) == (
        False,
        True,
        "POS Exports",
        None,
    )
    saved = subs.save_settings(
        eng, {"business_id": 2, "notify_success": True, "failure_recipients": ["it@b.example"]}, now=utc_now()
    )
    assert saved.updated_at is not None
    again = subs.get_settings(eng, 2)
    assert again.notify_success is True and again.failure_recipients == ["it@b.example"]
    again.from_name = "Bodega"
    again.reply_to = "owner@b.example"
    subs.save_settings(eng, again, now=utc_now())
    assert subs.get_settings(eng, 2).from_name == "Bodega" and subs.get_settings(eng, 2).reply_to == "owner@b.example"
    with pytest.raises(SubscriptionError, match="^from_name: .*line break"):
        subs.save_settings(eng, NotificationSettings(business_id=2, from_name="x\nBcc: y@z.com"), now=utc_now())
    with pytest.raises(SubscriptionError, match="^default_recipients: 'a@b.com, c@d.com'"):
        subs.save_settings(
            eng, NotificationSettings(business_id=2, default_recipients=["a@b.com, c@d.com"]), now=utc_now()
        )
    assert subs.get_settings(eng, 2).from_name == "Bodega"
    assert count(eng, state.notification_settings) == 1


def test_import_of_the_demo_file(state_engine):
    eng = state_engine
    stored = subs.import_yaml(eng, DEMO, business_timezones=ZONES, now=utc_now())
    assert {s.business_id for s in stored} == {1, 2, 3, 4, 5}
    by_name = {s.name: s for s in subs.find(eng)}
    assert len(by_name) == len(stored) == count(eng, state.subscriptions)

    daily = by_name["Daily sales"]
    assert (daily.business_id, daily.frequency, daily.hour, daily.minute) == (1, "daily", 7, 0)
    assert daily.datasets == ["sales"] and daily.formats == ["xlsx", "csv"]
    assert daily.recipients == ["owner@kofi-shop.example"] and daily.timezone is None and daily.is_active

    week = by_name["Weekly summary"]
    assert (week.day_of_week, week.datasets, week.formats) == (0, ["sales", "customers", "inventory"], ["xlsx", "pdf"])
    assert by_name["Monthly on the last day"].day_of_month == "last"
    assert by_name["Second Tuesday stock review"].nth_weekday == "2nd tuesday"
    assert by_name["Second Tuesday stock review"].filters == {"stock_status": "low_stock"}
    assert by_name["Last Friday report"].nth_weekday == "last friday"
    assert by_name["Last Friday report"].message_template.startswith("Dzień dobry,\n")
    assert by_name["Monthly wholesale customers"].filters == {"customer_type": "wholesale"}
    assert by_name["Daily audit trail (when there is activity)"].only_if_data is True
    assert by_name["Daily sales (paused for the holidays)"].is_active is False
    assert by_name["Weekly sales for head office"].timezone == "Europe/London"

    settings = subs.get_settings(eng, 2)
    assert settings.notify_success and settings.from_name == "Brooklyn Bodega exports"
    assert settings.reply_to == "owner@brooklyn-bodega.example"
    assert subs.get_settings(eng, 4).failure_recipients == ["wlasciciel@cafe-lodz.example"]

    # importing again updates in place (same ids), and the export reads back to the same values
    assert [s.id for s in subs.import_yaml(eng, DEMO, now=utc_now())] == [s.id for s in stored]
    exported = subs.export_yaml(eng)
    before = [s.to_input() for s in subs.find(eng)]
    assert [s.to_input() for s in subs.import_yaml(eng, exported, now=utc_now())] == before
    assert [s.to_input() for s in subs.find(eng)] == before
    assert count(eng, state.subscriptions) == len(stored)


def test_import_upserts_by_business_and_name(sqlite_engine):
    eng = sqlite_engine
    first = subs.add(eng, weekly(), now=utc_now())
    text = """
subscriptions:
  - {business_id: 2, name: Weekly summary, datasets: [sales], formats: [csv], frequency: daily, at: "06:15",
     recipients: [new@bodega.example]}
  - {business_id: 2, name: Another, datasets: [audit_log], formats: [pdf], frequency: monthly, day_of_month: 3,
     hour: 5, recipients: [it@bodega.example], filters: {user_id: 4}}
"""
    stored = subs.import_yaml(eng, text, now=utc_now())
    assert stored[0].id == first.id and stored[0].created_at == first.created_at
    assert (stored[0].frequency, stored[0].formats, stored[0].filters) == ("daily", ["csv"], {})
    assert stored[1].id != first.id and stored[1].filters == {"user_id": 4}
    assert len(subs.find(eng)) == 2


BAD_DOCUMENTS = [
    # (document, expected message)
    (
        """
subscriptions:
  - {business_id: 1, name: Fine, datasets: [sales], formats: [csv], frequency: daily, at: "07:00",
     recipients: [a@shop.example]}
  - {business_id: 1, name: Broken, datasets: [sales], formats: [csv], frequency: daily, at: "07:00",
     recipients: ["a@shop.example, b@shop.example"]}
notification_settings:
  - {business_id: 1, notify_success: true}
""",
        "subscriptions[1] ('Broken'): recipients: 'a@shop.example, b@shop.example' is not a valid email address",
    ),
    (
        """
subscriptions:
  - {business_id: 1, name: Fine, datasets: [sales], formats: [csv], frequency: daily, at: "07:00",
     recipients: [a@shop.example]}
notification_settings:
  - {business_id: 1, reply_to: "x@y.com\\r\\nBcc: z@w.com"}
""",
        "notification_settings[0] (business 1): reply_to:",
    ),
    (
        """
subscriptions:
  - {business_id: 1, name: Twice, datasets: [sales], formats: [csv], frequency: daily, at: "07:00",
     recipients: [a@shop.example]}
  - {business_id: 1, name: Twice, datasets: [sales], formats: [pdf], frequency: daily, at: "08:00",
     recipients: [a@shop.example]}
""",
        "subscriptions[1] ('Twice'): name: the same entry is already given as subscriptions[0] ('Twice')",
    ),
    (
        """
subscriptions:
  - {business_id: 1, name: Late, datasets: [sales], formats: [csv], frequency: daily, at: 7:30,
     recipients: [a@shop.example]}
""",
        "subscriptions[0] ('Late'): at: write the time as a quoted string",
    ),
    (
        """
subscriptions:
  - {business_id: 9, name: Nobody, datasets: [sales], formats: [csv], frequency: daily, at: "07:00",
     recipients: [a@shop.example]}
""",
        "subscriptions[0] ('Nobody'): business_id: no business with id 9",
    ),
    (
        """
subscriptions:
  - business_id: 1
    name: Doubled
    datasets: [sales]
    formats: [csv]
    frequency: daily
    at: "07:00"
    recipients: [a@shop.example]
    recipients: [someone-else@other.example]
""",
        "yaml: 'recipients' is given twice in the same mapping (line 10)",
    ),
    ("subscriptions: [", "yaml: not valid YAML"),
    ("subscription: []", "subscription: unknown top-level key"),
    ("subscriptions: {name: x}", "subscriptions: must be a list"),
    ("subscriptions:\n  - just text", "subscriptions[0]: subscription: expected a mapping"),
]


@pytest.mark.parametrize(("document", "message"), BAD_DOCUMENTS, ids=[f"doc{i}" for i in range(len(BAD_DOCUMENTS))])
def test_import_is_all_or_nothing(sqlite_engine, document, message):
    eng = sqlite_engine
    kept = subs.add(eng, weekly(business_id=1, name="Fine", recipients=["kept@shop.example"]), now=utc_now())
    with pytest.raises(SubscriptionError) as caught:
        subs.import_yaml(eng, document, business_timezones=ZONES, now=utc_now())
    assert str(caught.value).startswith(message)
    assert subs.find(eng) == [kept]  # nothing written, nothing changed
    assert count(eng, state.notification_settings) == 0


def test_import_rolls_back_on_a_database_error(state_engine, monkeypatch):
    eng = state_engine
    calls = []
    real = subs._put_settings

    def failing(conn, settings, *rest):
        calls.append(settings.business_id)
        real(conn, settings, *rest)
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk full"))

    monkeypatch.setattr(subs, "_put_settings", failing)
    with pytest.raises(sa.exc.OperationalError):
        subs.import_yaml(eng, DEMO, now=utc_now())
    assert calls and count(eng, state.subscriptions) == 0 and count(eng, state.notification_settings) == 0


def test_a_removed_subscription_id_is_not_reused(state_engine):
    """The delivery ledger names subscriptions by id: a new subscription must not inherit an old one's history."""
    eng = state_engine
    old = subs.add(eng, weekly(), now=utc_now())
    with eng.begin() as conn:
        conn.execute(
            sa.insert(state.deliveries).values(
                subscription_id=old.id,
                business_id=2,
                period_kind="weekly",
                period_key="2025-03-03",
                recipient="owner@bodega.example",
                status="emailed",
                attempts=1,
                created_at=old.created_at,
            )
        )
    subs.remove(eng, old.id)
    new = subs.add(eng, weekly(name="Replacement"), now=utc_now())
    assert new.id != old.id


def test_import_reads_a_path_given_as_text(sqlite_engine, tmp_path):
    path = tmp_path / "subs.yaml"
    path.write_text(DEMO.read_text(encoding="utf-8"), encoding="utf-8")
    assert len(subs.import_yaml(sqlite_engine, str(path), now=utc_now())) == 9
    with pytest.raises(SubscriptionError, match="^file: cannot read"):
        subs.import_yaml(sqlite_engine, str(tmp_path / "missing.yaml"), now=utc_now())
