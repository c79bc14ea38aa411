"""The archive as Delta Lake tables (POS_EXPORTS_ARCHIVE_LAYOUT=delta), in real Dagster runs on demo data."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from pos_exports import cli
from pos_exports.archive import delta, migrate, read
from pos_exports.archive.extract import load_manifest
from pos_exports.archive.parquet import ArchiveCorrupt
from pos_exports.archive.read import archived, load_businesses, read_table, shared_days
from pos_exports.archive.tables import DATASETS, MONEY
from pos_exports.defs.archive import daily_archive
from pos_exports.defs.exports import daily_exports
from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource
from pos_exports.defs.retries import is_transient
from pos_exports.exports.produce import export_period
from pos_exports.reports.period import period_for
from pos_exports.source import demo
from pos_exports.state import archive_index, engine
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


# END has ended in every zone and its snapshots can still be captured
NOW = dt.datetime.combine(END, dt.time(14), dt.UTC) + dt.timedelta(days=1)


def archive(url, root, monkeypatch, layout, day, business_ids=(), datasets=tuple(DATASETS), allow_shrink=False):
    monkeypatch.setenv("POS_EXPORTS_ARCHIVE_LAYOUT", layout)
    return dg.materialize(
        [daily_archive],
        selection=[dg.AssetKey(f"{d}_archive") for d in datasets],
        partition_key=day.isoformat(),
        resources={
            "pos_database": PosDatabase(url=url),
            "storage": StorageResource(root=str(root)),
            "clock": ClockResource.at(NOW),
        },
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
            resources={"storage": StorageResource(root=str(root)), "clock": ClockResource.at(NOW)},
            raise_on_error=False,
        )
        assert result.success
        files[root] = {p.relative_to(root): p.read_bytes() for p in (root / "exports").rglob("*.csv")}
    folders, tables = files.values()
    assert len(folders) >= len(active(both)) * len(DATASETS) and folders == tables


def test_an_export_on_its_own_reads_the_records_once_and_each_table_day_once(both, tmp_path, monkeypatch):
    # outside any run (the CLI, an on-demand run): one business's daily export, every dataset and format
    roots = [shutil.copytree(root, tmp_path / root.name) for root in both]  # the exports land in the copies
    reads: list[str] = []
    scan, records = delta._fragment_table, delta.records
    monkeypatch.setattr(delta, "_fragment_table", lambda *a, **k: reads.append(a[2].path) or scan(*a, **k))
    monkeypatch.setattr(delta, "records", lambda s: reads.append("records") or records(s))
    entries = {}
    for root in roots:
        store = LocalStorage(root)
        business = next(b for b in load_businesses(store) if b.id == 2)
        _, entries[root] = export_period(
            store, business, period_for("daily", END.isoformat()), list(DATASETS), ["xlsx", "csv", "pdf"]
        )
    assert reads.count("records") == 2  # once per export (the folders one finds no table), not per day looked up
    files = [r for r in reads if r != "records"]
    tables = [t.name for d in DATASETS.values() for t in d.tables]
    assert len(files) == len(set(files)) >= len(tables)  # each table-day's file decoded once for every pass
    folders, tables_ = ([(e.name, e.sha256) for e in entries[root]] for root in roots)
    assert len(folders) > 3 * len(DATASETS) and folders == tables_  # the same bytes as from the folders


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
    with shared_days(), pytest.raises(ArchiveCorrupt, match=f"{path.name}.*cannot be read"):  # as in a run
        read_table(store, "sales", "payments", 1, [END])


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


def test_delta_archive_on_s3_reads_back_what_the_folder_archive_holds(demo_url, both, s3_storage_url, monkeypatch):
    url = s3_storage_url
    assert archive(demo_url, url, monkeypatch, "delta", END, datasets=("sales",)).success
    s3 = open_storage(url)
    assert s3.table_options()["AWS_ALLOW_HTTP"] == "true"
    assert any(k.startswith("archive/tables/sales/_delta_log/") for k in s3.list("archive/tables/"))
    folders = LocalStorage(both[0])
    for business in (1, 7, BUSINESSES):
        for table in DATASETS["sales"].tables:
            got = read_table(s3, "sales", table.name, business, [END])
            assert got.equals(read_table(folders, "sales", table.name, business, [END])), (business, table.name)


def _csv_exports(root) -> dict:
    shutil.rmtree(root / "exports", ignore_errors=True)
    result = dg.materialize(
        [daily_exports],
        partition_key=END.isoformat(),
        run_config={"ops": {"daily_exports": {"config": {"render": "all", "formats": ["csv"]}}}},
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource.at(NOW)},
        raise_on_error=False,
    )
    assert result.success
    return {p.relative_to(root): p.read_bytes() for p in (root / "exports").rglob("*.csv")}


def test_migration_of_the_demo_archive_is_verified_resumable_and_exports_stay_identical(
    both, tmp_path, monkeypatch, capsys
):
    root = tmp_path / "store"
    shutil.copytree(both[0], root)
    monkeypatch.setenv("POS_EXPORTS_STORAGE", str(root))
    store = LocalStorage(root)
    before, exports = whole(store), _csv_exports(root)
    manifests = {k: load_manifest(store, k[0], k[1], k[2]) for k in {k[:3] for k in before}}
    # a migration stopped after its first dataset-day (killed, say) ...
    real = migrate.delta.record_all
    calls = []

    def stop_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(migrate.delta, "record_all", stop_after_one)
    assert cli.main(["archive", "migrate"]) == 1  # interrupted (Ctrl-C) after one dataset-day: "aborted"
    first_name, first_day = calls[0][1], calls[0][2]
    layouts = {k: archived(store, k[0], k[2], k[1]).get("layout", "folders") for k in manifests}
    assert {k for k, v in layouts.items() if v == "delta"} == {k for k in manifests if k[:2] == (first_name, first_day)}
    assert whole(store).keys() == before.keys()  # ... leaves every day readable, migrated or not
    monkeypatch.setattr(migrate.delta, "record_all", real)
    assert cli.main(["archive", "migrate"]) == 0  # ... and resumes
    out = capsys.readouterr().out
    assert f"{first_name} {first_day}: already migrated" in out and f"sales {END}: migrated" in out
    assert "verified row by row and sum by sum" in out
    after = whole(store)
    assert after.keys() == before.keys()
    for key, table in before.items():
        assert archived(store, key[0], key[2], key[1])["layout"] == "delta"
        assert after[key].equals(table), key  # every row
    for key, manifest in manifests.items():  # every sum
        rec = archived(store, key[0], key[2], key[1])
        assert {t["table"]: (t["rows"], t["sums"]) for t in rec["tables"]} == {
            t["table"]: (t["rows"], t["sums"]) for t in manifest["tables"]
        }
        assert load_manifest(store, *key) == manifest  # the folder files stay
    assert _csv_exports(root) == exports  # byte-identical
    assert cli.main(["archive", "migrate"]) == 0
    assert "migrated 0 business-day(s)" in capsys.readouterr().out  # idempotent


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_duckdb_lines_query_an_archived_day(both, monkeypatch, capsys):
    text = README.read_text()
    block = text.split("<!-- duckdb: run by pos_exports_tests/archive/test_delta.py -->\n```python\n", 1)[1]
    lines = block.split("```", 1)[0].strip().splitlines()
    assert len(lines) == 3
    monkeypatch.chdir(both[1].parent)
    code = "\n".join(lines).replace("var/exports", both[1].name).replace("2025-03-20", END.isoformat())
    exec(code, {})
    got = eval(capsys.readouterr().out)  # [(business_id, net), ...]
    folders = LocalStorage(both[0])  # the folder archive, summed in Python
    totals = {b: read_table(folders, "sales", "sales", b, [END]).column("total").to_pylist() for b in active(both)}
    assert got == [(b, sum(t, Decimal("0.00"))) for b, t in totals.items() if t] and len(got) > 5


def test_vacuum_is_a_dry_run_by_default_and_refuses_a_short_retention(demo_url, tmp_path, monkeypatch, capsys):
    root = tmp_path / "store"
    monkeypatch.setenv("POS_EXPORTS_STORAGE", str(root))
    assert archive(demo_url, root, monkeypatch, "delta", END, datasets=("sales",)).success
    assert archive(demo_url, root, monkeypatch, "delta", END, business_ids=[2], datasets=("sales",)).success
    files = sorted(p for p in root.rglob("*.parquet"))
    assert cli.main(["archive", "vacuum", "--table", "sales", "--keep-days", "7", "--yes"]) == 2  # a usage error
    assert "--keep-days: 7 is below the floor of 30 days; refused" in capsys.readouterr().err
    assert cli.main(["archive", "vacuum", "--table", "sales", "--keep-days", "30"]) == 0
    assert "dry run" in capsys.readouterr().out
    assert sorted(root.rglob("*.parquet")) == files  # nothing deleted
    assert DeltaTable(str(root / "archive/tables/sales"), version=0).to_pyarrow_dataset().count_rows() > 0


def test_repin_moves_records_to_the_latest_version_only_when_it_holds_their_rows(demo_url, tmp_path, monkeypatch):
    root, store = tmp_path / "store", LocalStorage(tmp_path / "store")
    assert archive(demo_url, root, monkeypatch, "delta", END, datasets=("sales",)).success
    assert archive(demo_url, root, monkeypatch, "delta", END, business_ids=[2], datasets=("sales",)).success
    rows = read_table(store, "sales", "sales", 1, [END])
    assert archived(store, "sales", 1, END)["tables"][0]["version"] == 0
    assert delta.repin(store, "sales", dt.datetime.now(dt.UTC)) == len(active_of(store)) - 1
    assert archived(store, "sales", 1, END)["tables"][0]["version"] == 1
    assert read_table(store, "sales", "sales", 1, [END]).equals(rows)
    sales = DATASETS["sales"].tables[0]
    delta.commit_rows(store, "sales", delta.delta_schema(sales), lambda: iter([]), delta._predicate(END, [1]))
    with pytest.raises(delta.ArchiveError, match="sales 2025-03-20 business 1; re-archive those"):
        delta.repin(store, "sales", dt.datetime.now(dt.UTC))  # the latest version lacks business 1's rows


def test_compact_brings_a_replaced_day_back_to_one_file_and_keeps_every_version(demo_url, tmp_path, monkeypatch):
    root, store = tmp_path / "store", LocalStorage(tmp_path / "store")
    monkeypatch.setenv("POS_EXPORTS_STORAGE", str(root))
    assert archive(demo_url, root, monkeypatch, "delta", END, datasets=("sales",)).success
    for business in (2, 3):
        assert archive(demo_url, root, monkeypatch, "delta", END, business_ids=[business], datasets=("sales",)).success
    uri = str(root / "archive/tables/sale_items")
    # another engine appended rows of a business the archive does not know: the day now has two files
    sale_items = DATASETS["sales"].tables[1]
    extra = DeltaTable(uri).to_pyarrow_dataset().to_table(filter=delta._day_filter(1, END)).slice(0, 1)
    write_deltalake(
        uri,
        extra.set_column(extra.schema.get_field_index("business_id"), "business_id", pa.array([999], pa.int64())),
        mode="append",
    )
    assert len(DeltaTable(uri).file_uris()) == 2 and sale_items.name == "sale_items"
    before = whole(store, [END])
    assert cli.main(["archive", "compact"]) == 0
    assert len(DeltaTable(uri).file_uris()) == 1
    assert DeltaTable(uri).to_pyarrow_dataset().count_rows(filter=delta._day_filter(999, END)) == 1
    ids = DeltaTable(uri).to_pyarrow_dataset().to_table(columns=["business_id"]).column("business_id").to_pylist()
    assert ids == sorted(ids)  # clustered on business_id again
    assert whole(store, [END]).keys() == before.keys()
    assert all(whole(store, [END])[k].equals(v) for k, v in before.items())
    latest = DeltaTable(uri).to_pyarrow_dataset().count_rows()
    assert DeltaTable(uri, version=0).to_pyarrow_dataset().count_rows() == latest - 1  # the old version, as it was
    [written] = DeltaTable(uri).file_uris()
    assert pq.ParquetFile(written).metadata.row_group(0).column(0).compression == "ZSTD"  # writer settings kept


def active_of(store) -> list[int]:
    return [b.id for b in load_businesses(store) if b.is_active]


def test_a_run_reads_each_table_day_once_and_slices_each_business_its_own_checked_rows(demo_url, tmp_path, monkeypatch):
    root, store = tmp_path / "store", LocalStorage(tmp_path / "store")
    assert archive(demo_url, root, monkeypatch, "delta", END, datasets=("sales",)).success
    # businesses 2 and 5 re-archived: their records name a newer version (whose day holds the others' rows
    # first, theirs after: not in business order), the other records the first version
    assert archive(demo_url, root, monkeypatch, "delta", END, business_ids=[2, 5], datasets=("sales",)).success
    ids = [b for b in range(1, BUSINESSES + 1) if archived(store, "sales", b, END) is not None]
    tables = DATASETS["sales"].tables
    latest = DeltaTable(str(root / "archive/tables/sales")).to_pyarrow_dataset().to_table().column("business_id")
    assert latest.to_pylist() != sorted(latest.to_pylist())  # the slices must not assume the file's order
    alone = {(b, t.name): read_table(store, "sales", t.name, b, [END]) for b in ids for t in tables}
    assert sum(t.num_rows for t in alone.values()) > 100 and alone[5, "sales"].num_rows > 0

    versions = {(t["table"], t["version"]) for b in ids for t in archived(store, "sales", b, END)["tables"]}
    assert len(versions) == 2 * len(tables)
    files = [len(DeltaTable(str(root / f"archive/tables/{name}"), version=v).file_uris()) for name, v in versions]
    reads: list[str] = []
    scan, records = delta._fragment_table, delta.records
    monkeypatch.setattr(delta, "_fragment_table", lambda *a, **k: reads.append(a[2].path) or scan(*a, **k))
    monkeypatch.setattr(delta, "records", lambda s: reads.append("records") or records(s))
    with shared_days():
        shared = {(b, t.name): read_table(store, "sales", t.name, b, [END]) for b in ids for t in tables}
    assert shared.keys() == alone.keys() and all(shared[k].equals(alone[k]) for k in alone)  # same rows, order
    assert reads.count("records") == 1  # once for the run, not once per lookup
    # each (table, version) of the day is read whole once, not once per business: the files of both versions
    assert len(reads) - 1 == len(set(reads) - {"records"}) == sum(files)

    reads.clear()
    with shared_days(budget=0):  # nothing fits: each business read on its own, same rows
        small = {(b, t.name): read_table(store, "sales", t.name, b, [END]) for b in ids for t in tables}
    assert all(small[k].equals(alone[k]) for k in alone) and len(reads) - 1 >= len(ids) * len(tables)

    rec = archived(store, "sales", 5, END)
    forged = {
        **rec,
        "tables": [{**t, "sums": {"amount": "0.01"}} if t["table"] == "refunds" else t for t in rec["tables"]],
    }
    with shared_days(), pytest.raises(ArchiveCorrupt, match="refunds rows of business 5 .* the reconciliation record"):
        delta.read_record_table(store, forged, tables[3], shared=delta.DayReads(read.SHARED_READ_BYTES))


def test_shared_reads_drop_the_row_groups_a_run_has_passed_and_keep_within_their_budget(
    demo_url, tmp_path, monkeypatch
):
    monkeypatch.setattr(delta, "ROW_GROUP_ROWS", 40)  # several row groups per table-day, as at fleet scale
    root, store = tmp_path / "store", LocalStorage(tmp_path / "store")
    assert archive(demo_url, root, monkeypatch, "delta", END, datasets=("sales",)).success
    groups = pq.ParquetFile(next((root / "archive/tables/sale_items").rglob("*.parquet"))).num_row_groups
    assert groups > 3
    ids = [b for b in range(1, BUSINESSES + 1) if archived(store, "sales", b, END) is not None]
    tables = DATASETS["sales"].tables
    alone = {(b, t.name): read_table(store, "sales", t.name, b, [END]) for b in ids for t in tables}
    reads: list[str] = []
    scan = delta._fragment_table
    monkeypatch.setattr(delta, "_fragment_table", lambda *a, **k: reads.append(a[2].row_groups[0].id) or scan(*a, **k))
    for budget in (read.SHARED_READ_BYTES, 20_000):
        reads.clear()
        with shared_days(budget):
            kept = read._DAYS.get()
            for b in ids:
                for t in tables:
                    assert read_table(store, "sales", t.name, b, [END]).equals(alone[b, t.name]), (b, t.name)
                    assert kept.used <= budget and all(g.last >= b for g in kept.groups.values())
                    assert kept.used == sum(g.rows.nbytes for g in kept.groups.values())
        if budget == read.SHARED_READ_BYTES:  # everything fits: each row group of each table decoded once
            files = [pq.ParquetFile(p) for t in tables for p in (root / f"archive/tables/{t.name}").rglob("*.parquet")]
            assert len(reads) == sum(f.num_row_groups for f in files)
        else:  # past the budget a row group is decoded for the business that needs it: more reads, same rows
            assert len(reads) > sum(f.num_row_groups for f in files)
