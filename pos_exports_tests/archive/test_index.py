"""The archive index in the state database: coverage, catch-up and readiness answer from it without
touching storage; it is written after each manifest (behind, never ahead) and `reindex` rebuilds it."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from types import SimpleNamespace

import dagster as dg
import sqlalchemy as sa

from pos_exports.archive import delta, index
from pos_exports.archive.extract import MARKER, archive_business_day
from pos_exports.archive.read import save_businesses
from pos_exports.archive.tables import DATASETS
from pos_exports.core.clock import utc_now
from pos_exports.defs import catchup
from pos_exports.defs.deliveries import due_requests
from pos_exports.delivery import subscriptions
from pos_exports.delivery.deliver import archive_gaps
from pos_exports.operations import retention
from pos_exports.periods import day_window
from pos_exports.reports.period import period_for
from pos_exports.source.database import Business, connect, list_businesses
from pos_exports.state import archive_index, engine
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.fixtures import load_sqlite

UTC = dt.UTC
TODAY = dt.date(2025, 3, 31)
NOW = dt.datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
DAYS = [TODAY - dt.timedelta(days=i) for i in range(25, 0, -1)]  # 6..30 March
BUSINESSES = [Business(i, f"Shop {i}", "UTC", "EUR", True) for i in range(1, 401)]  # x 25 days = 10,000
MISSING = {("sales", 7, DAYS[3]), ("inventory", 250, DAYS[-2]), ("audit_log", 400, DAYS[0])}


class CountingStorage(LocalStorage):
    """Local storage that counts every listing, existence/size probe and read, by key."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, str]] = []

    def sizes(self, prefix):
        self.calls.append(("list", prefix))
        return super().sizes(prefix)

    def list(self, prefix):
        self.calls.append(("list", prefix))
        return super().list(prefix)

    def exists(self, key):
        self.calls.append(("exists", key))
        return super().exists(key)

    def size(self, key):
        self.calls.append(("size", key))
        return super().size(key)

    def read_bytes(self, key):
        self.calls.append(("read", key))
        return super().read_bytes(key)

    def local_copy(self, key):
        self.calls.append(("read", key))
        return super().local_copy(key)

    def archive_calls(self) -> list[tuple[str, str]]:
        """Everything but the one business list (archive/businesses.json) each tick reads."""
        return [c for c in self.calls if c[0] == "list" or c[1] != "archive/businesses.json"]


def count_delta_access(storage: CountingStorage, monkeypatch) -> None:
    """Count every way into the Delta tables too (deltalake reads the files itself, not through Storage):
    opening a table or asking whether one exists, and the records reader."""
    import deltalake

    table = deltalake.DeltaTable

    class Counted(table):
        def __init__(self, uri, *args, **kwargs):
            storage.calls.append(("delta", str(uri)))
            super().__init__(uri, *args, **kwargs)

        @staticmethod
        def is_deltatable(uri, *args, **kwargs):
            storage.calls.append(("delta", str(uri)))
            return table.is_deltatable(uri, *args, **kwargs)

    records = delta.records
    monkeypatch.setattr(deltalake, "DeltaTable", Counted)
    monkeypatch.setattr(delta, "records", lambda s: storage.calls.append(("delta", "records")) or records(s))


def _synthetic_index(eng) -> None:
    rows = [
        {
            "dataset": name,
            "business_id": b.id,
            "day": day,
            "generation": "g",
            "kind": DATASETS[name].kind,
            "rows": 1,
            "bytes": 1,
            "manifest_sha256": "0" * 64,
            "published_at": NOW,
        }
        for name in DATASETS
        for b in BUSINESSES
        for day in DAYS
        if (name, b.id, day) not in MISSING
    ]
    with eng.begin() as conn:
        conn.execute(archive_index.insert(), rows)


def test_coverage_catchup_and_readiness_on_10000_business_days_touch_no_storage(tmp_path, monkeypatch):
    monkeypatch.setenv("POS_RETENTION_DAYS", "26")  # the POS holds 6..31 March
    eng = engine()
    storage = CountingStorage(tmp_path / "store")
    save_businesses(storage, BUSINESSES)
    _synthetic_index(eng)
    count_delta_access(storage, monkeypatch)
    assert delta.records(storage) == {} and ("delta", "records") in storage.calls  # it does count, and
    assert ("delta", delta.table_uri(storage, delta.RECORDS)) in storage.calls  # sees deltalake probe the path
    storage.calls.clear()

    cov = retention.coverage(storage, TODAY, 26, now=NOW, start=DAYS[0], eng=eng)
    assert {(g.dataset, g.business_id, g.day) for g in cov.gaps} == MISSING
    assert storage.archive_calls() == []

    with dg.instance_for_test() as instance:
        requests, _, _ = catchup.plan(storage, eng, instance, {}, NOW, 50)
    assert {r.partition_key for r in requests} >= {DAYS[3].isoformat(), DAYS[0].isoformat()}
    assert storage.archive_calls() == []

    # readiness of a daily delivery of every dataset for each of the 10,000 business-days: one query per
    # dataset for all of them; exactly the MISSING ones lack something, none of them lost (their windows are open
    # or they are events)
    sub = SimpleNamespace(datasets=list(DATASETS))
    wanted = [(sub, b.id, b.timezone, period_for("daily", d.isoformat())) for b in BUSINESSES for d in DAYS]
    gaps = archive_gaps(wanted, now=NOW, eng=eng)
    found = {(g.dataset, b, p.first_day) for (_, b, _, p), gs in zip(wanted, gaps, strict=True) for g in gs}
    assert found == MISSING
    assert not any(g.lost for gs in gaps for g in gs)
    assert storage.archive_calls() == []

    # the due sensor's tick: daily subscriptions of three businesses fire on 30 March for the 29th
    for business_id in (1, 7, 250):
        subscriptions.add(
            eng,
            {
                "business_id": business_id,
                "name": "Daily",
                "datasets": list(DATASETS),
                "formats": ["csv"],
                "frequency": "daily",
                "at": "08:00",
                "recipients": ["owner@shop.example"],
            },
            now=utc_now(),
        )
    last, tick = dt.datetime(2025, 3, 30, 7, tzinfo=UTC), dt.datetime(2025, 3, 30, 9, tzinfo=UTC)
    requests, waiting, broken = due_requests(storage, eng, last, tick, [])
    launched = [
        (i["subscription_id"], i["period_key"])
        for r in requests
        for i in r.run_config["ops"]["deliver_batch"]["config"]["items"]
    ]
    by_business = {s.business_id: s.id for s in subscriptions.find(eng)}
    assert not broken and launched == [(by_business[1], "2025-03-29"), (by_business[7], "2025-03-29")]
    assert [w[:3] for w in waiting] == [[by_business[250], "daily", "2025-03-29"]]  # its inventory is missing
    assert storage.archive_calls() == []
    assert ("list", "archive/") not in storage.calls


def _archive_day(url: str, storage: LocalStorage, day: dt.date) -> None:
    with connect(url) as reader:
        businesses = list_businesses(reader)
        save_businesses(storage, businesses)
        for business in (b for b in businesses if b.is_active):
            for ds in DATASETS.values():
                now = day_window(day, business.timezone).end + dt.timedelta(hours=1)
                archive_business_day(reader, storage, ds, business, day, now=now)


def _index_rows(eng) -> dict:
    cols = ("generation", "kind", "rows", "bytes", "manifest_sha256")
    with eng.connect() as conn:
        rows = conn.execute(sa.select(archive_index)).mappings().all()
    return {(r["dataset"], r["business_id"], r["day"]): tuple(r[c] for c in cols) for r in rows}


def _manifest_rows(storage: LocalStorage) -> dict:
    """What the manifests on storage say, in the index's terms."""
    import json

    out = {}
    for key in storage.list("archive/"):
        if key.endswith("/" + MARKER):
            data = storage.read_bytes(key)
            m = json.loads(data)
            out[(m["dataset"], m["business_id"], dt.date.fromisoformat(m["date"]))] = (
                m["generation"],
                m["kind"],
                sum(t["rows"] for t in m["tables"]),
                sum(t["bytes"] for t in m["tables"]),
                hashlib.sha256(data).hexdigest(),
            )
    return out


DAY = dt.date(2025, 3, 5)


def test_the_index_is_written_on_publish_and_matches_the_manifests(tmp_path):
    url = load_sqlite(tmp_path / "pos.sqlite")
    storage = LocalStorage(tmp_path / "store")
    _archive_day(url, storage, DAY)
    manifests = _manifest_rows(storage)
    assert manifests and _index_rows(engine()) == manifests
    _archive_day(url, storage, DAY)  # a new generation replaces the row
    assert _index_rows(engine()) == _manifest_rows(storage) != manifests


def test_reindex_of_an_archive_written_without_the_index_reproduces_it(tmp_path, monkeypatch):
    url = load_sqlite(tmp_path / "pos.sqlite")
    storage = LocalStorage(tmp_path / "store")
    _archive_day(url, storage, DAY)
    written = _index_rows(engine())
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    fresh = engine()
    cov = retention.coverage(storage, DAY + dt.timedelta(days=2), 90, now=NOW, start=DAY, eng=fresh)
    assert retention.INDEX_EMPTY in cov.notes and cov.status == "error" and not cov.gaps
    lines: list[str] = []
    assert index.reindex(storage, fresh, progress=lines.append) == len(written)
    assert _index_rows(fresh) == written
    assert f"indexed sales {DAY}" in lines
    index.reindex(storage, fresh)  # idempotent
    assert _index_rows(fresh) == written


CRASH = """
import datetime as dt, sys
from pos_exports.archive.extract import archive_business_day
from pos_exports.archive.tables import DATASETS
from pos_exports.periods import day_window
from pos_exports.source.database import connect, list_businesses
from pos_exports.storage.base import LocalStorage
url, root, day = sys.argv[1], sys.argv[2], dt.date.fromisoformat(sys.argv[3])
with connect(url) as reader:
    business = next(b for b in list_businesses(reader) if b.id == 1)
    now = day_window(day, business.timezone).end + dt.timedelta(hours=1)
    archive_business_day(reader, LocalStorage(root), DATASETS["sales"], business, day, now=now)
"""


def test_kill_9_between_manifest_and_index_leaves_the_index_behind_and_reindex_repairs_it(tmp_path):
    url = load_sqlite(tmp_path / "pos.sqlite")
    storage = LocalStorage(tmp_path / "store")
    _archive_day(url, storage, DAY)
    before = _index_rows(engine())
    env = {**os.environ, index.CRASH_HOOK_ENV: "1"}
    proc = subprocess.run([sys.executable, "-c", CRASH, url, str(storage.root), DAY.isoformat()], env=env)
    assert proc.returncode == -9
    on_storage = _manifest_rows(storage)
    key = ("sales", 1, DAY)
    assert on_storage[key] != before[key]  # the new generation's manifest is published ...
    assert _index_rows(engine()) == before  # ... the index still names the old one: behind, never ahead
    index.reindex(storage, engine())
    assert _index_rows(engine()) == on_storage


def test_an_existing_state_database_gets_the_index_of_days(tmp_path):
    from pos_exports import state
    from pos_exports.state.migrations import schema_0001

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sa.create_engine(url)
    schema_0001.metadata.create_all(old)  # a state database made before the index of days existed
    assert "archive_index_by_day" not in {i["name"] for i in sa.inspect(old).get_indexes("archive_index")}
    eng = engine(url)
    assert "archive_index_by_day" in {i["name"] for i in sa.inspect(eng).get_indexes("archive_index")}
    state._engine.cache_clear()
    engine(url)  # idempotent on a database that has it
