"""The archive as Delta Lake tables (POS_EXPORTS_ARCHIVE_LAYOUT=delta), in real Dagster runs on demo data."""

from __future__ import annotations

import datetime as dt
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from pos_exports.archive import capture, delta
from pos_exports.archive.assets import daily_archive
from pos_exports.archive.parquet import ArchiveCorrupt
from pos_exports.archive.read import archived, load_businesses, read_table
from pos_exports.archive.tables import DATASETS, MONEY
from pos_exports.automation.retries import is_transient
from pos_exports.delivery.state import archive_index, engine
from pos_exports.exports.assets import daily_exports
from pos_exports.source import demo
from pos_exports.source.resource import PosDatabase, StorageResource
from pos_exports.storage import open_storage
from pos_exports.storage.base import LocalStorage

END = dt.date(2025, 3, 20)
DAYS = [END - dt.timedelta(days=1), END]
BUSINESSES = 12  # the six fixed demo businesses and six more


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("demo") / "pos.sqlite"
    demo.build_sqlite(path, demo.DemoSpec(end_date=END, days=2, sales_per_day=3, extra_businesses=BUSINESSES - 6))
    return f"sqlite:///{path}"


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    # END has ended in every zone and its snapshots can still be captured
    monkeypatch.setattr(capture, "clock", lambda: dt.datetime.combine(END, dt.time(14), dt.UTC) + dt.timedelta(days=1))


def archive(url, root, monkeypatch, layout, day, business_ids=(), datasets=tuple(DATASETS), allow_shrink=False):
    monkeypatch.setenv("POS_EXPORTS_ARCHIVE_LAYOUT", layout)
    return dg.materialize(
        [daily_archive],
        selection=[dg.AssetKey(f"{d}_archive") for d in datasets],
        partition_key=day.isoformat(),
        resources={"pos_database": PosDatabase(url=url), "storage": StorageResource(root=str(root))},
        run_config={
            "ops": {"daily_archive": {"config": {"business_ids": list(business_ids), "allow_shrink": allow_shrink}}}
        },
        raise_on_error=False,
    )


def archive_all(url, root, monkeypatch, layout, days=DAYS):
    for day in days:
        datasets = tuple(DATASETS) if day == days[-1] else ("sales", "audit_log")
        assert archive(url, root, monkeypatch, layout, day, datasets=datasets).success


def whole(store, days=DAYS) -> dict:
    """Every table of every business-day the archive holds, read back through archive/read.py."""
    out = {}
    for name, ds in DATASETS.items():
        for day in days:
            for business in range(1, BUSINESSES + 1):
                if archived(store, name, business, day) is None:  # an inactive business
                    continue
                for table in ds.tables:
                    out[name, day, business, table.name] = read_table(store, name, table.name, business, [day])
    return out


def active(roots) -> list[int]:
    return [b.id for b in load_businesses(LocalStorage(roots[0])) if b.is_active]


@pytest.fixture(scope="module")
def both(demo_url, tmp_path_factory):
    """The same demo days archived in the folder layout and as Delta tables: (folders root, delta root)."""
    roots = tmp_path_factory.mktemp("folders"), tmp_path_factory.mktemp("delta")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(capture, "clock", lambda: dt.datetime.combine(END, dt.time(14), dt.UTC) + dt.timedelta(days=1))
        mp.setenv("POS_EXPORTS_STATE_URL", f"sqlite:///{tmp_path_factory.mktemp('state')}/state.db")
        for root, layout in zip(roots, ("folders", "delta"), strict=True):
            archive_all(demo_url, root, mp, layout)
    return roots


def test_delta_archive_holds_what_the_folder_archive_holds_row_for_row(both):
    folders, tables = whole(LocalStorage(both[0])), whole(LocalStorage(both[1]))
    assert folders.keys() == tables.keys() and len({k[2] for k in folders}) == len(active(both))
    for key, expected in folders.items():
        assert tables[key].equals(expected), key  # same rows, same order, same exact types
    assert sum(t.num_rows for t in folders.values()) > 500
    sales = pa.schema(DeltaTable(str(both[1] / "archive/tables/sales")).schema()).field("total")
    assert sales.type == MONEY  # decimal128(18, 2) through Delta


def test_a_dataset_day_is_one_commit_per_table_and_a_record_per_business(both):
    store = LocalStorage(both[1])
    rec = archived(store, "sales", 3, END)
    assert rec["layout"] == "delta" and rec["reconciled"] and rec["date"] == END.isoformat()
    for table in DATASETS["sales"].tables:  # two days of every business: two commits per table
        uri = str(both[1] / f"archive/tables/{table.name}")
        assert [h["version"] for h in DeltaTable(uri).history()] == [1, 0]
        assert DeltaTable(uri).metadata().configuration == delta.PROPERTIES  # nothing removed automatically
        pinned = {
            next(t["version"] for t in archived(store, "sales", b, END)["tables"] if t["table"] == table.name)
            for b in active(both)
        }
        assert pinned == {1}


def test_exports_from_the_delta_tables_are_byte_identical_to_the_folder_exports(both, monkeypatch):
    files = {}
    for root in both:
        result = dg.materialize(
            [daily_exports],
            partition_key=END.isoformat(),
            run_config={"ops": {"daily_exports": {"config": {"render": "all", "formats": ["csv"]}}}},
            resources={"storage": StorageResource(root=str(root))},
            raise_on_error=False,
        )
        assert result.success
        files[root] = {p.relative_to(root): p.read_bytes() for p in (root / "exports").rglob("*.csv")}
    folders, tables = files.values()
    assert len(folders) >= len(active(both)) * len(DATASETS) and folders == tables


def test_files_per_table_day_do_not_grow_with_businesses(demo_url, tmp_path, monkeypatch):
    root = tmp_path / "store"
    ids = list(range(1, BUSINESSES + 1))
    assert archive(demo_url, root, monkeypatch, "delta", DAYS[0], business_ids=ids[:3], datasets=("sales",)).success
    assert archive(demo_url, root, monkeypatch, "delta", DAYS[1], business_ids=ids, datasets=("sales",)).success
    for table in DATASETS["sales"].tables:
        actions = pa.table(DeltaTable(str(root / f"archive/tables/{table.name}")).get_add_actions(flatten=True))
        per_day = Counter(actions.column("partition.business_date").to_pylist())
        assert per_day == {DAYS[0]: 1, DAYS[1]: 1}, table.name
        businesses = pa.table(DeltaTable(str(root / f"archive/tables/{table.name}")).to_pyarrow_dataset().to_table())
        assert len(set(businesses.column("business_id").to_pylist())) > 3


def test_rearchive_replaces_the_business_day_and_keeps_the_old_version_readable(demo_url, tmp_path, monkeypatch):
    root = tmp_path / "store"
    store = LocalStorage(root)
    assert archive(demo_url, root, monkeypatch, "delta", END, datasets=("sales",)).success
    before = archived(store, "sales", 2, END)
    rows = read_table(store, "sales", "sales", 2, [END])
    assert archive(demo_url, root, monkeypatch, "delta", END, business_ids=[2], datasets=("sales",)).success
    after = archived(store, "sales", 2, END)
    old, new = before["tables"][0]["version"], after["tables"][0]["version"]
    assert new > old and after["previous"][0]["tables"][0]["version"] == old
    assert read_table(store, "sales", "sales", 2, [END]).equals(rows)
    # the earlier version still holds the business-day as it was (time travel, nothing vacuumed)
    uri = str(root / "archive/tables/sales")
    at_old = DeltaTable(uri, version=old).to_pyarrow_dataset().to_table(filter=delta._day_filter(2, END))
    assert at_old.num_rows == rows.num_rows
    assert archived(store, "sales", 1, END) == archived(store, "sales", 1, END)  # other businesses untouched
    assert archived(store, "sales", 1, END)["tables"][0]["version"] == old


def test_rearchive_refuses_lost_keys_and_keeps_the_archive(demo_url, tmp_path, monkeypatch):
    src = tmp_path / "pos.sqlite"
    src.write_bytes(open(demo_url.removeprefix("sqlite:///"), "rb").read())
    url = f"sqlite:///{src}"
    root, store = tmp_path / "store", LocalStorage(tmp_path / "store")
    assert archive(url, root, monkeypatch, "delta", END, datasets=("sales",)).success
    before = archived(store, "sales", 1, END)
    rows = read_table(store, "sales", "sales", 1, [END])
    victim = rows.column("id")[0].as_py()
    with sqlite3.connect(src) as conn:  # the POS "purged" one sale of business 1
        for table in ("sale_items", "payments", "refunds"):
            conn.execute(f"DELETE FROM {table} WHERE sale_id = ?", (victim,))
        conn.execute("DELETE FROM sales WHERE id = ?", (victim,))
    result = archive(url, root, monkeypatch, "delta", END, datasets=("sales",))
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error.message
    assert f"sales id {victim}" in error and "business 1" in error
    assert archived(store, "sales", 1, END) == before  # kept
    assert read_table(store, "sales", "sales", 1, [END]).equals(rows)
    assert archived(store, "sales", 2, END)["tables"][0]["version"] > before["tables"][0]["version"]  # others done
    assert archive(
        url, root, monkeypatch, "delta", END, business_ids=[1], datasets=("sales",), allow_shrink=True
    ).success
    assert read_table(store, "sales", "sales", 1, [END]).num_rows == rows.num_rows - 1


def test_a_reader_pinned_to_the_record_ignores_a_commit_made_without_a_record(demo_url, tmp_path, monkeypatch):
    root, store = tmp_path / "store", LocalStorage(tmp_path / "store")
    assert archive(demo_url, root, monkeypatch, "delta", END, datasets=("sales",)).success
    rows = read_table(store, "sales", "sales", 1, [END])
    sales = DATASETS["sales"].tables[0]
    # a run that died between its data commit and its record: business 1's rows replaced by none
    version = delta.commit_rows(store, "sales", delta.delta_schema(sales), lambda: iter([]), delta._predicate(END, [1]))
    latest = DeltaTable(str(root / "archive/tables/sales")).to_pyarrow_dataset()
    assert latest.to_table(filter=delta._day_filter(1, END)).num_rows == 0 and version > 0
    assert read_table(store, "sales", "sales", 1, [END]).equals(rows)  # the record's version, not the latest


def test_a_tampered_data_file_is_archive_corrupt_naming_it(demo_url, tmp_path, monkeypatch):
    root, store = tmp_path / "store", LocalStorage(tmp_path / "store")
    assert archive(demo_url, root, monkeypatch, "delta", END, datasets=("sales",)).success
    [path] = (root / "archive/tables/payments").rglob("*.parquet")
    path.write_bytes(b"not parquet" + path.read_bytes()[11:])
    with pytest.raises(ArchiveCorrupt, match=f"{path.name}.*cannot be read") as err:
        read_table(store, "sales", "payments", 1, [END])
    assert not is_transient(err.value) and "payments" in str(err.value)


def test_rows_changed_behind_the_record_are_archive_corrupt(demo_url, tmp_path, monkeypatch):
    root, store = tmp_path / "store", LocalStorage(tmp_path / "store")
    assert archive(demo_url, root, monkeypatch, "delta", END, datasets=("sales",)).success
    rec = archived(store, "sales", 1, END)
    forged = {**rec, "tables": [{**t, "rows": t["rows"] + 1} if t["table"] == "refunds" else t for t in rec["tables"]]}
    with pytest.raises(ArchiveCorrupt, match="refunds rows of business 1 .* but the reconciliation record says"):
        delta.read_record_table(store, forged, DATASETS["sales"].tables[3])


def test_the_index_and_reindex_hold_the_delta_records(both, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", f"sqlite:///{both[1]}/reindexed.db")
    from pos_exports.archive.index import reindex

    eng = engine()
    assert reindex(LocalStorage(both[1]), eng) == len(active(both)) * (
        2 + 2 + 2
    )  # 2 event datasets x 2 days + 2 snapshots
    with eng.connect() as conn:
        rows = conn.execute(archive_index.select().where(archive_index.c.dataset == "sales")).mappings().all()
    assert {r["layout"] for r in rows} == {"delta"}
    row = next(r for r in rows if r["business_id"] == 1 and r["day"] == END)
    rec = archived(LocalStorage(both[1]), "sales", 1, END)
    assert row["versions"] == {t["table"]: t["version"] for t in rec["tables"]}
    assert row["totals"]["sales"] == {"rows": rec["tables"][0]["rows"], "sums": rec["tables"][0]["sums"]}


@pytest.fixture(scope="module")
def moto_process():
    """moto's S3 server in a child process (deltalake's history() holds the GIL while it waits on HTTP)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def test_delta_archive_on_s3_reads_back_what_the_folder_archive_holds(demo_url, both, moto_process, monkeypatch):
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL": moto_process,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"pos-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_process).create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/exports"
    assert archive(demo_url, url, monkeypatch, "delta", END, datasets=("sales",)).success
    s3 = open_storage(url)
    assert s3.table_options()["AWS_ALLOW_HTTP"] == "true"
    assert any(k.startswith("archive/tables/sales/_delta_log/") for k in s3.list("archive/tables/"))
    folders = LocalStorage(both[0])
    for business in (1, 7, BUSINESSES):
        for table in DATASETS["sales"].tables:
            got = read_table(s3, "sales", table.name, business, [END])
            assert got.equals(read_table(folders, "sales", table.name, business, [END])), (business, table.name)
