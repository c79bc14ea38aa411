"""Faults of the Delta archive with real processes: a kill -9 between the records and the index, two archive
processes committing the same dataset-day at once, and S3 unreachable while a pinned version is read."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pyarrow.compute as pc
import pytest
import sqlalchemy as sa
from deltalake import DeltaTable

from pos_exports.archive import delta, index
from pos_exports.archive.parquet import ArchiveCorrupt, ArchiveUnavailable
from pos_exports.archive.read import archived, read_table, save_businesses
from pos_exports.archive.tables import DATASETS
from pos_exports.exports.produce import export_available, plain_reason
from pos_exports.failures import TEMPORARY
from pos_exports.reports.period import period_for
from pos_exports.source.database import connect, list_businesses
from pos_exports.state import archive_index, engine
from pos_exports.storage import open_storage
from pos_exports.storage.base import LocalStorage
from pos_exports.transient import is_transient
from pos_exports_tests.exports.names import export_files
from pos_exports_tests.fixtures import DAY, load_sqlite

D = dt.date.fromisoformat(DAY)
SALES = DATASETS["sales"]

# One archive process of the sales dataset-day for every active business, as the archive run commits it
# (stage and reconcile each business, then one commit per table, the records, the index). With two barrier
# files it waits, before its first data commit, until the other process is there too.
ARCHIVE = r"""
import datetime as dt, json, sys, tempfile, time
from pathlib import Path
import deltalake
from deltalake.exceptions import CommitFailedError
from pos_exports.archive import delta
from pos_exports.archive.tables import DATASETS
from pos_exports.periods import day_window
from pos_exports.source.database import connect, list_businesses
from pos_exports.storage import open_storage

url, root, day = sys.argv[1], sys.argv[2], dt.date.fromisoformat(sys.argv[3])
mine, other = (sys.argv[4:6] + ["", ""])[:2]
conflicts = []
write = deltalake.write_deltalake

def write_together(*args, **kwargs):
    if mine:
        Path(mine).touch()
        for _ in range(6000):  # at most a minute: the other process may have died
            if Path(other).exists():
                break
            time.sleep(0.01)
    try:
        return write(*args, **kwargs)
    except CommitFailedError:
        conflicts.append(1)
        raise

deltalake.write_deltalake = write_together
storage = open_storage(root)
with connect(url) as reader, tempfile.TemporaryDirectory() as folder:
    businesses = [b for b in list_businesses(reader) if b.is_active]
    now = max(day_window(day, b.timezone).end for b in businesses) + dt.timedelta(hours=1)
    staged = [
        delta.stage_business_day(reader, storage, DATASETS["sales"], b, day, now=now, folder=Path(folder))
        for b in businesses
    ]
    outcome = delta.commit_dataset_day(storage, DATASETS["sales"], day, staged, now)
failed = {s.result.business_id: f"{type(o).__name__}: {o}" for s, o in outcome if isinstance(o, Exception)}
print(json.dumps({"conflicts": len(conflicts), "failed": failed}))
"""


def _archive_process(url: str, root, *barrier: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", ARCHIVE, url, str(root), DAY, *barrier],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _active(url: str) -> list:
    with connect(url) as reader:
        return [b for b in list_businesses(reader) if b.is_active]


def _index_versions(eng) -> dict:
    with eng.connect() as conn:
        rows = conn.execute(sa.select(archive_index).where(archive_index.c.dataset == "sales")).mappings().all()
    return {(r["business_id"], r["day"]): r["versions"] for r in rows}


def _record_versions(storage) -> dict:
    return {
        (b, day): {t["table"]: t["version"] for t in rec["tables"]}
        for (name, b, day), rec in delta.records(storage).items()
        if name == "sales"
    }


def _rows(storage, businesses) -> dict:
    return {(b.id, t.name): read_table(storage, "sales", t.name, b.id, [D]) for b in businesses for t in SALES.tables}


def test_kill_9_between_the_delta_records_and_the_index_loses_nothing_and_the_rerun_completes(tmp_path):
    url = load_sqlite(tmp_path / "pos.sqlite")
    storage = LocalStorage(tmp_path / "store")
    businesses = _active(url)
    save_businesses(storage, businesses)
    killed = _archive_process(url, storage.root, env={index.CRASH_HOOK_ENV: "1"})
    killed.communicate(timeout=300)
    assert killed.returncode == -9  # died in index.upsert: data and records committed, the index not
    recorded = _record_versions(storage)
    assert {b for b, _ in recorded} == {b.id for b in businesses}
    assert _index_versions(engine()) == {}  # behind the records, never ahead
    committed = _rows(storage, businesses)  # what the killed run archived reads back, verified
    assert sum(t.num_rows for t in committed.values()) > 0

    assert _finish(_archive_process(url, storage.root)) == {"conflicts": 0, "failed": {}}
    assert _index_versions(engine()) == _record_versions(storage)  # the index equals the records
    again = _rows(storage, businesses)
    assert again.keys() == committed.keys() and all(again[k].equals(committed[k]) for k in committed)
    for (business, day), versions in recorded.items():  # the killed run's versions stay readable (kept)
        previous = archived(storage, "sales", business, day)["previous"][0]
        assert {t["table"]: t["version"] for t in previous["tables"]} == versions
    folder, entries, failed = export_available(storage, businesses[0], period_for("daily", DAY), [("sales", "csv")])
    assert not failed and {e.name for e in entries} == export_files(["sales"], ("csv",))
    csv = storage.read_bytes(f"{folder}/sales.csv").decode("utf-8-sig")
    summary = storage.read_bytes(f"{folder}/sales-summary.csv").decode("utf-8-sig")
    sales = committed[businesses[0].id, "sales"].to_pylist()
    receipts = [s["receipt_number"] for s in sales if s["status"] != "draft"]  # the report leaves drafts out
    assert receipts and all(f'"{r}"' in csv for r in receipts) and f"\nSales,{len(receipts)}\n" in summary


def test_two_archive_processes_committing_the_same_dataset_day_at_once_both_finish_each_row_once(tmp_path):
    url = load_sqlite(tmp_path / "pos.sqlite")
    storage = LocalStorage(tmp_path / "store")
    businesses = _active(url)
    assert _finish(_archive_process(url, storage.root))["failed"] == {}  # the tables exist, as on any later day
    first = _rows(storage, businesses)
    conflicts = 0
    for attempt in range(3):  # until the two commits did collide (the barrier makes that the rule)
        a, b = tmp_path / f"a{attempt}.ready", tmp_path / f"b{attempt}.ready"
        procs = [
            _archive_process(url, storage.root, str(a), str(b)),
            _archive_process(url, storage.root, str(b), str(a)),
        ]
        results = [_finish(p) for p in procs]  # both finish: the commit that lost the race was retried
        for result in results:  # the later one finds the other's records newer than what it staged: keeps them
            assert all("another run recorded" in why for why in result["failed"].values()), result
        assert any(not r["failed"] for r in results)  # and one of them recorded every business
        conflicts += sum(r["conflicts"] for r in results)
        if conflicts:
            break
    assert conflicts >= 1  # a CommitFailedError was met and retried, not raised
    for table in SALES.tables:  # the latest version holds each row of the day once
        data = DeltaTable(str(storage.root) + f"/archive/tables/{table.name}").to_pyarrow_dataset().to_table()
        keys = data.select(list(table.key)).to_pylist()
        assert len(keys) == len({tuple(k.values()) for k in keys}), table.name
        assert len(keys) == sum(first[b.id, table.name].num_rows for b in businesses), table.name
        assert pc.sum(data.column("business_id")).as_py() == sum(
            b.id * first[b.id, table.name].num_rows for b in businesses
        )
    again = _rows(storage, businesses)  # every record matches the rows at the version it names
    assert all(again[k].equals(first[k]) for k in first)
    assert _index_versions(engine()) == _record_versions(storage)


@pytest.fixture
def own_s3(monkeypatch):
    """A moto S3 server of this test alone (the test stops it); yields (storage URL, server process)."""
    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        endpoint = f"http://127.0.0.1:{port}"
        for name, value in {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        bucket = f"pos-{uuid.uuid4().hex[:10]}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield f"s3://{bucket}/exports", server
    finally:
        server.kill()
        server.wait(timeout=10)


def test_s3_unreachable_while_reading_a_pinned_version_is_transient_not_corrupt(tmp_path, own_s3):
    url, server = own_s3
    pos = load_sqlite(tmp_path / "pos.sqlite")
    storage = open_storage(url)
    assert _finish(_archive_process(pos, url))["failed"] == {}
    rec = archived(storage, "sales", 1, D)
    sales, payments = SALES.tables[0], SALES.tables[2]
    assert delta.read_record_table(storage, rec, sales).num_rows == rec["tables"][0]["rows"] > 0
    # payments: its version's log is loaded (pinned) now, its data file is read after the server is gone
    delta._pinned(delta.table_uri(storage, "payments"), rec["tables"][2]["version"], delta._options(storage))
    server.kill()
    server.wait(timeout=10)
    with pytest.raises(ArchiveUnavailable, match=r"payments.*cannot be read now: .*[Cc]onnection refused") as err:
        delta.read_record_table(storage, rec, payments)  # the data file
    assert is_transient(err.value) and not isinstance(err.value, ArchiveCorrupt)
    with pytest.raises(ArchiveUnavailable, match=r"sale_items version \d+.*cannot be read now") as err:
        delta.read_record_table(storage, rec, SALES.tables[1])  # sale_items: its version's log not loaded yet
    assert is_transient(err.value)
    assert plain_reason("sales", period_for("daily", DAY), err.value) == TEMPORARY  # "try again later" wording
