"""Delivery statistics over a ledger written by the real ledger functions at chosen instants; figures by hand."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from pos_exports.core.clock import utc_now
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.defs.stats import delivery_statistics
from pos_exports.delivery import ledger, subscriptions
from pos_exports.delivery.email import RecipientResult
from pos_exports.operations.stats import delivery_stats, overdue, percentile, upcoming
from pos_exports_tests.exports.names import export_files

UTC = dt.UTC
T0 = dt.datetime(2025, 3, 10, 7, 0, tzinfo=UTC)


def _file(name: str, size: int) -> dict:
    dataset, fmt = name.split(".")
    return {"name": name, "dataset": dataset, "format": fmt, "bytes": size, "sha256": "0" * 64, "uri": f"/x/{name}"}


WEEKLY_FILES = [
    _file("sales.xlsx", 1000),
    _file("sales.csv", 200),
    _file("customers.xlsx", 3000),
    _file("customers.csv", 400),
]


def _ok(attempts: int = 1) -> RecipientResult:
    return RecipientResult("emailed", 250, "250 OK", attempts, "<m@x>", "data")


def seed(eng, clock) -> tuple[int, int]:
    """Six ledger rows (see the module docstring of stats.py for what each figure means):

    | row              | status  | attempts | files (bytes)               | started .. finished |
    | A 03-03 a@       | emailed | 1        | sales x/c, customers x/c    | T0 .. T0+10s        |
    | A 03-03 b@       | emailed | 4        | (4600: 1000+200+3000+400)   | T0+1h .. T0+1h30s   |
    | B 03-09 c@       | failed  | 1        | sales.pdf 500 (rejected)    | T0+2h .. T0+2h20s   |
    | B 03-08 c@       | failed  | 0        | none (render failed)        | T0+3h .. T0+3h5s    |
    | A 02-24 a@       | pending | 0        | none                        | -                   |
    | B 03-07 c@       | skipped | 0        | sales.pdf 100 (no data)     | T0+5h .. T0+5h2s    |
    """
    a = subscriptions.add(
        eng,
        {
            "business_id": 1,
            "name": "Weekly pack",
            "datasets": ["sales", "customers"],
            "formats": ["xlsx", "csv"],
            "frequency": "weekly",
            "day_of_week": "monday",
            "at": "07:00",
            "recipients": ["a@shop.example", "b@shop.example"],
        },
        now=utc_now(),
    )
    b = subscriptions.add(
        eng,
        {
            "business_id": 2,
            "name": "Daily PDF",
            "datasets": ["sales"],
            "formats": ["pdf"],
            "frequency": "daily",
            "at": "08:00",
            "recipients": ["c@shop.example"],
        },
        now=utc_now(),
    )
    clock.set(T0)
    rows = ledger.open_rows(eng, a.id, 1, "weekly", "2025-03-03", a.recipients, "run-1", now=clock.now)
    ids = ledger.mark_processing(eng, [r["id"] for r in rows], "run-1", now=clock.now)
    clock.advance(seconds=10)
    ledger.mark_completed(eng, ids, WEEKLY_FILES, 4600, now=clock.now)
    ledger.record_results(
        eng,
        a.id,
        "2025-03-03",
        {
            "a@shop.example": _ok(),
            "b@shop.example": RecipientResult("retry", 451, "451 try later", 3, "", "data"),
        },
        now=clock.now,
    )
    # The automatic retry of b@ an hour later: 1 more attempt, accepted.
    clock.set(T0 + dt.timedelta(hours=1))
    [row_b] = [r for r in ledger.retryable(eng, 8)]
    assert ledger.mark_processing(eng, [row_b["id"]], "run-2", now=clock.now) == [row_b["id"]]
    clock.advance(seconds=30)
    ledger.mark_completed(eng, [row_b["id"]], WEEKLY_FILES, 4600, now=clock.now)
    ledger.record_results(eng, a.id, "2025-03-03", {"b@shop.example": _ok()}, now=clock.now)

    clock.set(T0 + dt.timedelta(hours=2))
    rows = ledger.open_rows(eng, b.id, 2, "daily", "2025-03-09", b.recipients, "run-3", now=clock.now)
    ids = ledger.mark_processing(eng, [r["id"] for r in rows], "run-3", now=clock.now)
    clock.advance(seconds=20)
    ledger.mark_completed(eng, ids, [_file("sales.pdf", 500)], 500, now=clock.now)
    ledger.record_results(
        eng,
        b.id,
        "2025-03-09",
        {"c@shop.example": RecipientResult("failed", 550, "550 no such user", 1, "", "rcpt")},
        now=clock.now,
    )

    clock.set(T0 + dt.timedelta(hours=3))
    rows = ledger.open_rows(eng, b.id, 2, "daily", "2025-03-08", b.recipients, "run-4", now=clock.now)
    ids = ledger.mark_processing(eng, [r["id"] for r in rows], "run-4", now=clock.now)
    clock.advance(seconds=5)
    ledger.mark_failed(eng, ids, "ArchiveMissing: the archive does not hold sales 2025-03-08 yet", now=clock.now)

    clock.set(T0 + dt.timedelta(hours=4))
    ledger.open_rows(eng, a.id, 1, "weekly", "2025-02-24", ["a@shop.example"], "run-5", now=clock.now)

    clock.set(T0 + dt.timedelta(hours=5))
    rows = ledger.open_rows(eng, b.id, 2, "daily", "2025-03-07", b.recipients, "run-6", now=clock.now)
    ids = ledger.mark_processing(eng, [r["id"] for r in rows], "run-6", now=clock.now)
    clock.advance(seconds=2)
    ledger.mark_completed(eng, ids, [_file("sales.pdf", 100)], 100, now=clock.now)
    ledger.mark_skipped(eng, ids, "skipped: no data in the period (only_if_data)", now=clock.now)
    return a.id, b.id


def test_percentile_is_nearest_rank():
    assert percentile([], 0.95) is None
    assert percentile([2, 5, 10, 20, 30], 0.95) == 30  # ceil(4.75) = 5th
    assert percentile(range(1, 101), 0.95) == 95
    assert percentile([7], 0.5) == 7


def test_delivery_figures(state, clock):
    seed(state, clock)
    s = delivery_stats(state)
    assert {k: s[k] for k in ("attempted", "emailed", "failed", "skipped", "pending", "retried")} == {
        "attempted": 6,
        "emailed": 2,
        "failed": 2,
        "skipped": 1,
        "pending": 1,
        "retried": 1,  # b@ took 3 + 1 attempts
    }
    assert s["success_rate"] == 0.5  # 2 emailed of 4 settled (emailed + failed)
    assert s["failed_transient"] == 0  # a 550 and a missing archive: permanent, not retried automatically
    assert s["recipients"] == 3 and s["deliveries"] == 5
    assert s["files"] == 8 and s["bytes"] == 2 * 4600  # what was emailed, per recipient
    # durations [10, 30, 20, 5, 2] -> sorted [2, 5, 10, 20, 30]
    assert s["median_seconds"] == 10 and s["p95_seconds"] == 30
    assert s["by_status"] == {"emailed": 2, "failed": 2, "skipped": 1, "pending": 1}

    sales, customers = s["by_dataset"]["sales"], s["by_dataset"]["customers"]
    assert list(s["by_dataset"]) == ["sales", "customers"]
    assert (sales["attempted"], sales["emailed"], sales["failed"], sales["skipped"], sales["pending"]) == (
        6,
        2,
        2,
        1,
        1,
    )
    assert (sales["files"], sales["bytes"], sales["success_rate"]) == (4, 2 * 1200, 0.5)
    assert (customers["attempted"], customers["emailed"], customers["failed"], customers["pending"]) == (3, 2, 0, 1)
    assert (customers["files"], customers["bytes"], customers["success_rate"]) == (4, 2 * 3400, 1.0)
    assert (customers["median_seconds"], customers["p95_seconds"]) == (20, 30)

    xlsx, csv, pdf = (s["by_format"][f] for f in ("xlsx", "csv", "pdf"))
    assert (xlsx["attempted"], xlsx["emailed"], xlsx["files"], xlsx["bytes"]) == (3, 2, 4, 2 * 4000)
    assert (csv["attempted"], csv["emailed"], csv["files"], csv["bytes"]) == (3, 2, 4, 2 * 600)
    assert (pdf["attempted"], pdf["emailed"], pdf["failed"], pdf["skipped"], pdf["files"], pdf["bytes"]) == (
        3,
        0,
        2,
        1,
        0,
        0,
    )
    assert pdf["success_rate"] == 0.0 and (pdf["median_seconds"], pdf["p95_seconds"]) == (5, 20)
    assert s["exports"] is None  # no storage given


def test_delivery_figures_filtered(state, clock):
    seed(state, clock)
    two = delivery_stats(state, business_id=2)
    assert (two["attempted"], two["emailed"], two["failed"], two["skipped"]) == (3, 0, 2, 1)
    assert two["success_rate"] == 0.0 and list(two["by_format"]) == ["pdf"]
    later = delivery_stats(state, since=T0 + dt.timedelta(hours=2))
    assert (later["attempted"], later["pending"]) == (4, 1)
    early = delivery_stats(state, until=T0 + dt.timedelta(hours=2))  # exclusive
    assert (early["attempted"], early["emailed"], early["success_rate"]) == (2, 2, 1.0)
    assert delivery_stats(state, since=dt.date(2025, 3, 11))["attempted"] == 0
    empty = delivery_stats(state, business_id=99)
    assert empty["success_rate"] is None and empty["median_seconds"] is None and empty["by_dataset"] == {}


def test_statistics_asset_materializes_the_numbers(state, clock, tmp_path, monkeypatch):
    seed(state, clock)
    result = dg.materialize(
        [delivery_statistics],
        resources={
            "storage": StorageResource(root=str(tmp_path / "store")),
            "clock": ClockResource.at(T0 + dt.timedelta(days=1)),
        },
        run_config={"ops": {"delivery_statistics": {"config": {"window_days": 7}}}},
    )
    assert result.success
    [mat] = result.asset_materializations_for_node("delivery_statistics")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["success_rate"] == 0.5
    assert (meta["emailed"], meta["failed"], meta["retried"], meta["pending"]) == (2, 2, 1, 1)
    assert meta["bytes"] == 9200 and meta["median_seconds"] == 10.0 and meta["p95_seconds"] == 30.0
    assert (meta["emailed_xlsx"], meta["emailed_csv"], meta["emailed_pdf"], meta["failed_pdf"]) == (2, 2, 0, 2)
    assert (meta["bytes_xlsx"], meta["bytes_sales"], meta["bytes_customers"]) == (8000, 2400, 6800)
    assert meta["emailed_inventory"] == 0 and meta["exports_weekly"] == 0 and meta["window_days"] == 7
    assert "| **all** | 6 | 2 | 2 | 1 | 50.00% | 8 | 9200 | 10.0 | 30.0 |" in meta["table"]

    # A window after the ledger's rows: zero counts, and no undefined figures in the metadata.
    result = dg.materialize(
        [delivery_statistics],
        resources={
            "storage": StorageResource(root=str(tmp_path / "store")),
            "clock": ClockResource.at(T0 + dt.timedelta(days=30)),
        },
    )
    [mat] = result.asset_materializations_for_node("delivery_statistics")
    assert mat.metadata["attempted"].value == 0 and "success_rate" not in mat.metadata


# --- upcoming and overdue at chosen instants, against the week's archive (Accra, Tokyo, New York) -----------


CREATED = dt.datetime(2025, 2, 1, tzinfo=UTC)  # the subscriptions exist before every fire the tests look at


def _subs(eng, created=CREATED):
    def add(**data):
        base = {"formats": ["csv"], "recipients": ["x@shop.example"], "datasets": ["sales"]}
        return subscriptions.add(eng, {**base, **data}, now=created)

    s1 = add(business_id=1, name="Weekly", frequency="weekly", day_of_week="monday", at="07:00")  # Accra, UTC+0
    s2 = add(business_id=2, name="Daily", frequency="daily", at="08:00", datasets=["sales", "inventory"])  # Tokyo
    s3 = add(business_id=3, name="Daily NY", frequency="daily", at="09:00")  # New York (DST from 9 March)
    s4 = add(business_id=1, name="Paused", frequency="daily", at="01:00", is_active=False)
    return s1, s2, s3, s4


ZONES = {1: "Africa/Accra", 2: "Asia/Tokyo", 3: "America/New_York"}


def test_upcoming(state):
    s1, s2, s3, _ = _subs(state)
    now = dt.datetime(2025, 3, 10, 6, 0, tzinfo=UTC)  # Monday; 15:00 in Tokyo, 02:00 in New York
    entries = upcoming(state, ZONES, now)
    assert [(e["subscription_id"], e["fire_utc"], e["period_kind"], e["period_key"]) for e in entries] == [
        (s1.id, dt.datetime(2025, 3, 10, 7, 0, tzinfo=UTC), "weekly", "2025-03-03"),
        (s3.id, dt.datetime(2025, 3, 10, 13, 0, tzinfo=UTC), "daily", "2025-03-09"),  # 09:00 EDT
        (s2.id, dt.datetime(2025, 3, 10, 23, 0, tzinfo=UTC), "daily", "2025-03-10"),  # 08:00 JST on the 11th
    ]
    tokyo = entries[2]["fire_local"]
    assert (tokyo.isoformat(), entries[2]["timezone"]) == ("2025-03-11T08:00:00+09:00", "Asia/Tokyo")
    assert [e["subscription_id"] for e in upcoming(state, ZONES, now, limit=2)] == [s1.id, s3.id]
    # A business whose zone is unknown: listed last, with the reason.
    [*_, last] = upcoming(state, {1: "Africa/Accra", 2: "Asia/Tokyo"}, now)
    assert last["subscription_id"] == s3.id and last["fire_utc"] is None and "no time zone" in last["error"]


def _emailed(eng, sub, key, kind="daily"):
    rows = ledger.open_rows(eng, sub.id, sub.business_id, kind, key, sub.recipients, "r", now=utc_now())
    ids = ledger.mark_processing(eng, [r["id"] for r in rows], "r", now=utc_now())
    ledger.mark_completed(eng, ids, [], 0, now=utc_now())
    ledger.record_results(eng, sub.id, key, {r: _ok() for r in sub.recipients}, now=utc_now())


def test_overdue_with_reasons(archived_root, state):
    from pos_exports.storage.base import LocalStorage

    s1, s2, s3, _ = _subs(state)
    _emailed(state, s1, "2025-03-03", "weekly")
    _emailed(state, s2, "2025-03-08")
    rows = ledger.open_rows(state, s2.id, 2, "daily", "2025-03-09", s2.recipients, "r", now=utc_now())
    ledger.mark_processing(state, [r["id"] for r in rows], "r", now=utc_now())
    ledger.record_results(
        state,
        s2.id,
        "2025-03-09",
        {"x@shop.example": RecipientResult("failed", 550, "550 no such user", 1, "", "rcpt")},
        now=utc_now(),
    )
    rows = ledger.open_rows(state, s2.id, 2, "daily", "2025-03-07", s2.recipients, "r", now=utc_now())
    ledger.mark_processing(state, [r["id"] for r in rows], "r", now=utc_now())  # a run is on it right now

    now = dt.datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
    entries = overdue(state, LocalStorage(archived_root), ZONES, now, lookback_days=7)
    found = {(e["subscription_id"], e["period_key"]): e["reason"] for e in entries}
    # Window (3 Mar 08:00, 10 Mar 08:00] UTC.
    # s1 fires 10 Mar 07:00 for the week of 3 March: emailed, so not listed.
    # s2 (Tokyo 08:00 = 23:00 UTC the day before) fires for 3..9 March; inventory is archived on the 9th only:
    # the snapshots of 3..6 March are past their 48 h capture window (lost), so those periods do not wait for
    # them (they are delivered without inventory) and are `never_ran`, saying so.
    # s3 (New York 09:00) fires 3..9 March (14:00 UTC, 13:00 from the 9th) for 2..8 March; sales from the 3rd.
    assert found == {
        (s2.id, "2025-03-03"): "never_ran",
        (s2.id, "2025-03-04"): "never_ran",
        (s2.id, "2025-03-05"): "never_ran",
        (s2.id, "2025-03-06"): "never_ran",
        (s2.id, "2025-03-07"): "in_progress",
        (s2.id, "2025-03-09"): "failed",
        (s3.id, "2025-03-02"): "waiting_for_archive",
        **{(s3.id, f"2025-03-0{d}"): "never_ran" for d in range(3, 9)},
    }
    by_key = {(e["subscription_id"], e["period_key"]): e for e in entries}
    assert (
        "goes without inventory 2025-03-04 (snapshot never captured: lost)" in by_key[(s2.id, "2025-03-04")]["detail"]
    )
    assert by_key[(s3.id, "2025-03-08")]["fire_utc"] == dt.datetime(2025, 3, 9, 13, 0, tzinfo=UTC)  # 09:00 EDT
    assert by_key[(s3.id, "2025-03-07")]["fire_utc"] == dt.datetime(2025, 3, 8, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert "inventory 2025-03-03" in by_key[(s2.id, "2025-03-03")]["detail"]
    assert "550 no such user" in by_key[(s2.id, "2025-03-09")]["detail"]
    assert [e["fire_utc"] for e in entries] == sorted(e["fire_utc"] for e in entries)
    # One day back: only what fired in (9 Mar 08:00, 10 Mar 08:00].
    recent = overdue(state, LocalStorage(archived_root), ZONES, now, lookback_days=1)
    assert [(e["subscription_id"], e["period_key"], e["reason"]) for e in recent] == [
        (s3.id, "2025-03-08", "never_ran"),
        (s2.id, "2025-03-09", "failed"),
    ]


def test_overdue_without_storage_or_lookback(state):
    _, s2, s3, _ = _subs(state)
    now = dt.datetime(2025, 3, 10, 6, 30, tzinfo=UTC)
    assert overdue(state, None, ZONES, now, lookback_days=0) == []
    entries = overdue(state, None, ZONES, now, lookback_days=1)  # (9 Mar 06:30, 10 Mar 06:30]
    assert [(e["subscription_id"], e["period_key"], e["reason"]) for e in entries] == [
        (s3.id, "2025-03-08", "never_ran"),
        (s2.id, "2025-03-09", "never_ran"),
    ]
    assert "archive not checked" in entries[0]["detail"]


def test_export_stats_counts_every_kind_of_export_folder(archived_root):
    from pos_exports.archive.read import load_businesses
    from pos_exports.exports.produce import export_period
    from pos_exports.operations.stats import export_stats
    from pos_exports.reports.period import period_for
    from pos_exports.storage.base import LocalStorage

    storage = LocalStorage(archived_root)
    accra = next(b for b in load_businesses(storage) if b.id == 1)
    folders = {
        "daily": "exports/1/daily/2025-03-05",
        "on_demand": "exports/1/on_demand/range-2025-03-03_2025-03-04-0a1b2c3d",
        "subscription": "exports/1/subscriptions/9/weekly/2025-03-03",
    }
    periods = {"daily": ("daily", "2025-03-05"), "on_demand": ("range", "2025-03-03_2025-03-04")}
    periods["subscription"] = ("weekly", "2025-03-03")
    for kind, folder in folders.items():
        export_period(storage, accra, period_for(*periods[kind]), ["sales"], ["csv"], folder=folder)
    names = export_files(["sales"], ["csv"])  # one CSV per table
    size = {k: sum((archived_root / f / n).stat().st_size for n in names) for k, f in folders.items()}
    n = len(names)
    everything = export_stats(storage)
    assert everything["by_kind"] == {k: {"periods": 1, "files": n, "bytes": size[k]} for k in folders}
    assert everything["by_format"] == {"csv": {"files": 3 * n, "bytes": sum(size.values())}}
    # Periods ending on 4 March (the range) and 5 March (the day); the week ends on the 9th.
    window = export_stats(storage, dt.date(2025, 3, 4), dt.date(2025, 3, 6))
    assert set(window["by_kind"]) == {"daily", "on_demand"} and window["files"] == 2 * n
    assert export_stats(storage, dt.date(2025, 3, 9), business_id=1)["by_kind"] == {
        "subscription": {"periods": 1, "files": n, "bytes": size["subscription"]}
    }


def test_transient_failures_are_counted_by_their_kind_not_their_text(state):
    """`failed_transient` counts the failed rows whose error kind is transient (the retry sensor takes them again),
    never a permanent error whose text happens to read "temporary: "."""
    rows = ledger.open_rows(
        state, 1, 1, "daily", "2025-03-09", ["a@shop.example", "b@shop.example"], "run-1", now=utc_now()
    )
    a, b = (r["id"] for r in rows)
    ledger.mark_processing(state, [a, b], "run-1", now=utc_now())
    ledger.record_results(
        state,
        1,
        "2025-03-09",
        {"a@shop.example": RecipientResult("retry", 451, "451 try later", 3, "", "data")},
        now=utc_now(),
    )
    ledger.mark_failed(state, [b], "temporary: quoted in a permanent error", now=utc_now())
    s = delivery_stats(state)
    assert (s["failed"], s["failed_transient"]) == (2, 1)
