"""The archive keeps what it holds: re-archives keep every primary key, a business-day is published as one
whole generation (a crash before its manifest leaves the old one intact and readable), files are verified
on read, and temporary files of killed runs are swept. On local storage and on S3 (moto server)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pos_exports.archive.extract import ArchiveError, archive_business_day, marker_key
from pos_exports.archive.index import business_ids_on
from pos_exports.archive.parquet import ArchiveCorrupt
from pos_exports.archive.read import archived, read_table, save_businesses, table_file
from pos_exports.archive.tables import DATASETS
from pos_exports.defs.retries import is_transient
from pos_exports.exports.produce import export_available, export_period
from pos_exports.operations import retention
from pos_exports.periods import day_window
from pos_exports.reports.period import period_for
from pos_exports.source.database import connect, list_businesses
from pos_exports.state import archive_index, engine
from pos_exports.storage import open_storage
from pos_exports.storage.base import HOST, LocalStorage
from pos_exports_tests.fixtures import DAY, PAYMENTS, SALE_ITEMS, SALES, load_sqlite

D = dt.date.fromisoformat(DAY)
SALES_DS = DATASETS["sales"]

# Run in a subprocess: archive sales of business 1 on D, and die (SIGKILL) once every table of the new
# generation is published, right before the manifest is written.
CRASH_BEFORE_MANIFEST = """
import datetime as dt, os, signal, sys
from pos_exports.archive.extract import MARKER, archive_business_day
from pos_exports.archive.tables import DATASETS
from pos_exports.periods import day_window
from pos_exports.source.database import connect, list_businesses
from pos_exports.storage import open_storage
from pos_exports.storage.base import Storage

url, root, day = sys.argv[1], sys.argv[2], dt.date.fromisoformat(sys.argv[3])
write_bytes = Storage.write_bytes

def die_before_manifest(self, key, data):
    if key.endswith(MARKER):
        os.kill(os.getpid(), signal.SIGKILL)
    write_bytes(self, key, data)

Storage.write_bytes = die_before_manifest
with connect(url) as reader:
    business = {b.id: b for b in list_businesses(reader)}[1]
    now = day_window(day, business.timezone).end + dt.timedelta(hours=2)
    archive_business_day(reader, open_storage(root), DATASETS["sales"], business, day, now=now)
"""

# Run in a subprocess: start writing `key` and die (SIGKILL) mid-write, or (with "wait") hold the temp
# file open, print its path, and publish it when a line arrives on stdin (a concurrent live run).
STAGE = """
import os, signal, sys
from pos_exports.storage import open_storage

root, key, mode = sys.argv[1:4]
with open_storage(root).staged(key) as tmp:
    tmp.write_bytes(b"half a file")
    print(tmp, flush=True)
    if mode == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()
"""


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    """(storage, root as POS_EXPORTS_STORAGE would name it)."""
    if request.param == "local":
        root = str(tmp_path / "store")
        return LocalStorage(root), root
    url = request.getfixturevalue("s3_storage_url")
    return open_storage(url), url


@pytest.fixture
def pos(tmp_path):
    """The hand-built fixture in SQLite: (URL, path)."""
    path = tmp_path / "pos.sqlite"
    return load_sqlite(path), path


def _index_generation(business_id: int) -> str | None:
    t = archive_index
    where = (t.c.dataset == "sales", t.c.business_id == business_id, t.c.day == D)
    with engine().connect() as conn:
        return conn.execute(t.select().where(*where)).mappings().one()["generation"]


def _business(url, business_id=1):
    with connect(url) as reader:
        return {b.id: b for b in list_businesses(reader)}[business_id]


def _archive(url, storage, *, hours=1, allow_shrink=False):
    with connect(url) as reader:
        businesses = list_businesses(reader)
        save_businesses(storage, businesses)
        business = {b.id: b for b in businesses}[1]
        now = day_window(D, business.timezone).end + dt.timedelta(hours=hours)
        return archive_business_day(reader, storage, SALES_DS, business, D, now=now, allow_shrink=allow_shrink)


def _sql(path, *statements):
    conn = sqlite3.connect(path)
    for statement, *params in statements:
        conn.execute(statement, params)
    conn.commit()
    conn.close()


def _insert(table, row):
    return (f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", *row)


def _sale_190(sale=SALES[1]):
    """Sale R-190 of business 1 on D: like R-102 (same amounts, same day)."""
    return (190,) + sale[1:5] + ("R-190",) + sale[6:]


def _ids(storage, table="sales"):
    return read_table(storage, "sales", table, 1, [D]).column("id").to_pylist()


def test_same_count_but_a_lost_key_is_refused_naming_the_ids(store, pos):
    storage, _ = store
    url, path = pos
    _archive(url, storage)
    before = storage.read_bytes(marker_key("sales", D, 1))
    # The source lost sale R-102 (with its item and payment) and gained R-190: same counts, same sums.
    _sql(
        path,
        ("DELETE FROM sale_items WHERE sale_id = 102",),
        ("DELETE FROM payments WHERE sale_id = 102",),
        ("DELETE FROM sales WHERE id = 102",),
        _insert("sales", _sale_190()),
        _insert("sale_items", (90, 190) + SALE_ITEMS[2][2:]),
        _insert("payments", (90, 1, 190) + PAYMENTS[1][3:]),
    )
    with pytest.raises(ArchiveError) as refused:
        _archive(url, storage, hours=2)
    message = str(refused.value)
    assert "sales id 102" in message and "sale_items id 3" in message and "payments id 2" in message
    assert "allow_shrink" in message and "190" not in message
    assert storage.read_bytes(marker_key("sales", D, 1)) == before  # the archive was kept as it was
    assert _ids(storage) == [101, 102, 104]

    _archive(url, storage, hours=2, allow_shrink=True)  # the source is right: replace, keep the old one
    assert _ids(storage) == [101, 104, 190]
    manifest = archived(storage, "sales", 1, D)
    [old] = manifest["previous"]
    old_sales = next(t for t in old["tables"] if t["table"] == "sales")
    assert old_sales["rows"] == 3 and old_sales["key"] != table_file(storage, "sales", 1, D, "sales")
    with storage.local_copy(old_sales["key"]) as kept:  # nothing lost: the superseded generation stays
        assert pq.read_table(kept).column("id").to_pylist() == [101, 102, 104]


def test_a_crash_before_the_manifest_leaves_the_old_generation_whole(store, pos):
    storage, root = store
    url, path = pos
    _archive(url, storage)
    manifest = archived(storage, "sales", 1, D)
    old_keys = {t["table"]: t["key"] for t in manifest["tables"]}
    old_bytes = {k: storage.read_bytes(k) for k in old_keys.values()}
    _sql(path, _insert("sales", _sale_190()))  # the source gained a sale: the new generation has 4

    crash = subprocess.run(
        [sys.executable, "-c", CRASH_BEFORE_MANIFEST, url, root, DAY], capture_output=True, text=True, timeout=120
    )
    assert crash.returncode == -signal.SIGKILL, crash.stderr
    published = []  # the new generation's tables were published before the kill
    for key in storage.list("archive/sales"):
        if key.endswith("/sales.parquet"):
            with storage.local_copy(key) as file:
                published.append(pq.read_table(file).num_rows)
    assert 4 in published

    # Every reader still sees the whole old generation: the manifest, the files it names, their SHA-256.
    assert archived(storage, "sales", 1, D) == manifest
    for entry in manifest["tables"]:
        assert storage.read_bytes(entry["key"]) == old_bytes[entry["key"]]
        assert read_table(storage, "sales", entry["table"], 1, [D]).num_rows == entry["rows"]
    assert _ids(storage) == [101, 102, 104]
    export_period(storage, _business(url), period_for("daily", DAY), ["sales"], ["csv"])
    exported = json.loads(storage.read_bytes(f"exports/1/daily/{DAY}/manifest.json"))
    assert exported["reconciled_source_counts"]["sales"]["sales"]["rows"] == 3
    csv = storage.read_bytes(f"exports/1/daily/{DAY}/sales.csv").decode("utf-8-sig")
    assert "R-102" in csv and "R-190" not in csv
    assert 1 in business_ids_on(engine(), "sales", D)  # the index, as the manifest, names the old generation
    assert _index_generation(1) == manifest["generation"]
    today = D + dt.timedelta(days=5)
    cov = retention.coverage(storage, today, 90, ("sales",), start=D)
    assert not [g for g in cov.gaps if g.business_id == 1 and g.day == D]

    # A re-run completes the new generation; the old one stays, listed as previous.
    _archive(url, storage, hours=3)
    assert _ids(storage) == [101, 102, 104, 190]
    current = archived(storage, "sales", 1, D)
    assert current["previous"][0]["generation"] == manifest["generation"]
    assert all(storage.read_bytes(k) == v for k, v in old_bytes.items())


def test_a_file_that_differs_from_its_manifest_is_a_loud_error(store, pos):
    storage, _ = store
    url, _ = pos
    _archive(url, storage)
    key = table_file(storage, "sales", 1, D, "sales")
    payments = table_file(storage, "sales", 1, D, "payments")
    with storage.staged(key) as tmp:  # another valid Parquet file in its place
        tmp.write_bytes(storage.read_bytes(payments))
    with pytest.raises(ArchiveCorrupt, match=r"sales\.parquet.*(bytes|SHA-256).*re-archive that day") as err:
        read_table(storage, "sales", "sales", 1, [D])
    assert not is_transient(err.value)  # permanent: the step retry policy never runs it again
    storage.delete(key)
    with pytest.raises(ArchiveCorrupt, match=r"sales\.parquet.*not in storage"):
        read_table(storage, "sales", "sales", 1, [D])
    # The index (coverage, readiness) caches manifests and never probes files: the loss is found where the
    # day is read, and the export of the day says so instead of shipping a file without those rows.
    assert 1 in business_ids_on(engine(), "sales", D)
    _, entries, failed = export_available(storage, _business(url), period_for("daily", DAY), [("sales", "csv")])
    assert not entries and isinstance(failed["sales"], ArchiveCorrupt) and not is_transient(failed["sales"])


def test_the_first_flat_layout_stays_readable_and_is_superseded_safely(tmp_path, pos):
    storage = LocalStorage(tmp_path / "store")
    url, path = pos
    _archive(url, storage)
    # Rewrite it as the first layout did: files beside a manifest without a generation.
    manifest = archived(storage, "sales", 1, D)
    for t in manifest["tables"]:
        flat = f"archive/sales/date={DAY}/business_id=1/{t['table']}.parquet"
        storage.write_bytes(flat, storage.read_bytes(t["key"]))
        storage.delete(t["key"])
        t["key"] = flat
    del manifest["generation"], manifest["previous"]
    storage.write_bytes(marker_key("sales", D, 1), json.dumps(manifest).encode())

    assert _ids(storage) == [101, 102, 104]
    _sql(path, ("DELETE FROM sales WHERE id = 104",))
    with pytest.raises(ArchiveError, match="sales id 104"):
        _archive(url, storage, hours=2)
    _sql(path, _insert("sales", SALES[3]), _insert("sales", _sale_190()))
    _archive(url, storage, hours=2)
    assert _ids(storage) == [101, 102, 104, 190]
    assert archived(storage, "sales", 1, D)["previous"][0]["generation"] is None


def _stage(root, key, mode, env=None):
    return subprocess.Popen(
        [sys.executable, "-c", STAGE, root, key, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_temp_files_of_killed_runs_are_swept_and_a_live_runs_are_not(tmp_path):
    root = str(tmp_path / "store")
    storage = LocalStorage(root)
    folder = tmp_path / "store/exports/1/daily/2025-03-09"
    killed = _stage(root, "exports/1/daily/2025-03-09/sales.xlsx", "die")
    dead_tmp = Path(killed.stdout.readline().strip())
    assert killed.wait(timeout=60) == -signal.SIGKILL and dead_tmp.exists()
    assert dead_tmp.name.startswith(f".sales.xlsx.{HOST}-{killed.pid}-") and dead_tmp.name.endswith(".tmp")
    live = _stage(root, "exports/1/daily/2025-03-09/sales.csv", "wait")
    live_tmp = Path(live.stdout.readline().strip())
    old = folder / ".sales.pdf.x1y2z3.tmp"  # the first naming (no writer), a day old
    old.write_bytes(b"old")
    two_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).timestamp()
    os.utime(old, (two_days_ago, two_days_ago))
    young = folder / ".sales.pdf.a1b2c3.tmp"  # no writer, recent: may be someone's; kept
    young.write_bytes(b"young")

    storage.write_bytes("exports/1/daily/2025-03-09/manifest.json", b"{}")  # the next write to the folder

    assert not dead_tmp.exists() and not old.exists()
    assert live_tmp.exists() and young.exists()
    live.communicate("go\n", timeout=60)
    assert live.returncode == 0 and storage.read_bytes("exports/1/daily/2025-03-09/sales.csv") == b"half a file"


def test_an_archive_run_sweeps_the_temp_files_of_a_killed_archive_run(tmp_path, pos):
    root = str(tmp_path / "store")
    storage = LocalStorage(root)
    url, _ = pos
    gen = f"archive/sales/date={DAY}/business_id=1/gen=20250310T000000000000Z-abcdef"
    killed = _stage(root, f"{gen}/sales.parquet", "die")
    dead_tmp = Path(killed.stdout.readline().strip())
    assert killed.wait(timeout=60) == -signal.SIGKILL and dead_tmp.exists()
    _archive(url, storage)
    assert not dead_tmp.exists()
    assert not [p for p in (tmp_path / "store/archive").rglob("*.tmp")]


def test_s3_scratch_folders_of_killed_runs_are_swept(s3_storage_url, tmp_path, monkeypatch):
    # A private temporary folder: another process's sweep of the shared one cannot take this test's folders.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    storage = open_storage(s3_storage_url)
    killed = _stage(s3_storage_url, "exports/1/daily/2025-03-09/sales.xlsx", "die", env)
    scratch = Path(killed.stdout.readline().strip()).parent
    assert killed.wait(timeout=60) == -signal.SIGKILL and scratch.exists()
    live = _stage(s3_storage_url, "exports/1/daily/2025-03-09/sales.csv", "wait", env)
    live_scratch = Path(live.stdout.readline().strip()).parent

    swept = storage.sweep_temp("exports/")

    assert str(scratch) in swept and not scratch.exists()
    assert live_scratch.exists()
    live.communicate("go\n", timeout=60)
    assert storage.read_bytes("exports/1/daily/2025-03-09/sales.csv") == b"half a file"
    assert not storage.exists("exports/1/daily/2025-03-09/sales.xlsx")


def test_the_daily_cleanup_sweeps_temp_files_of_killed_runs_anywhere(tmp_path):
    import dagster as dg

    from pos_exports.defs.cleanup import cleanup_job
    from pos_exports.defs.resources import ClockResource, StorageResource

    root = str(tmp_path / "store")
    keys = ["exports/1/on_demand/daily-2025-03-09-run1/sales.xlsx", f"archive/sales/date={DAY}/business_id=9/gen=G/x"]
    dead = []
    for key in keys:
        killed = _stage(root, key, "die")
        dead.append(Path(killed.stdout.readline().strip()))
        assert killed.wait(timeout=60) == -signal.SIGKILL
    live = _stage(root, "exports/1/daily/2025-03-09/sales.csv", "wait")
    live_tmp = Path(live.stdout.readline().strip())
    with dg.instance_for_test() as instance:
        result = cleanup_job.execute_in_process(
            instance=instance, resources={"storage": StorageResource(root=root), "clock": ClockResource()}
        )
    assert result.success
    assert not any(p.exists() for p in dead) and live_tmp.exists()
    [output] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["temp_files_swept"].value == 2
    live.communicate("go\n", timeout=60)
