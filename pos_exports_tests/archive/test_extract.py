"""The archive of the hand-built fixture, on SQLite and a real PostgreSQL, against hand-worked figures."""

from __future__ import annotations

import datetime as dt

import pytest

from pos_exports.archive.extract import ArchiveError, archive_business_day, marker_key
from pos_exports.archive.read import read_table, table_file
from pos_exports.archive.tables import DATASETS
from pos_exports.periods import day_window
from pos_exports.source.database import connect, list_businesses
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.fixtures import DAY, EXPECTED, SALE_IDS

DAY_D = dt.date.fromisoformat(DAY)


def _archive(url, storage, dataset, business_id, *, now=None):
    with connect(url) as reader:
        business = {b.id: b for b in list_businesses(reader)}[business_id]
        now = now or day_window(DAY_D, business.timezone).end + dt.timedelta(hours=1)
        return archive_business_day(reader, storage, DATASETS[dataset], business, DAY_D, now=now)


def _read(storage, dataset, business_id, table):
    return read_table(storage, dataset, table, business_id, [DAY_D])


@pytest.mark.parametrize("business_id", [1, 2, 3])
def test_event_datasets_match_hand_worked_figures(fixture_db, tmp_path, business_id):
    storage = LocalStorage(tmp_path / "store")
    for dataset in ("sales", "audit_log"):
        _archive(fixture_db, storage, dataset, business_id)
    for table, (rows, sums) in EXPECTED[business_id].items():
        dataset = {
            "audit_logs": "audit_log",
            "customers": None,
            "credit_transactions": None,
            "inventory": None,
            "stock_movements": None,
        }.get(table, "sales")
        if dataset is None:
            continue
        data = _read(storage, dataset, business_id, table)
        assert data.num_rows == rows, table
        for column, total in sums.items():
            assert sum(data.column(column).to_pylist(), start=total * 0) == total, (table, column)
    sales = _read(storage, "sales", business_id, "sales")
    assert sales.column("id").to_pylist() == SALE_IDS[business_id]
    assert set(sales.column("business_id").to_pylist()) == {business_id}


@pytest.mark.parametrize("business_id", [1, 2])
def test_snapshot_datasets_match_hand_worked_figures(fixture_db, tmp_path, business_id):
    storage = LocalStorage(tmp_path / "store")
    _archive(fixture_db, storage, "customers", business_id)
    _archive(fixture_db, storage, "inventory", business_id)
    for table, dataset in (
        ("customers", "customers"),
        ("credit_transactions", "customers"),
        ("inventory", "inventory"),
        ("stock_movements", "inventory"),
    ):
        rows, sums = EXPECTED[business_id][table]
        data = _read(storage, dataset, business_id, table)
        assert data.num_rows == rows, table
        for column, total in sums.items():
            assert sum(data.column(column).to_pylist(), start=total * 0) == total, (table, column)


def test_types_are_exact_and_instants_utc(fixture_db, tmp_path):
    storage = LocalStorage(tmp_path / "store")
    _archive(fixture_db, storage, "sales", 2)
    sales = _read(storage, "sales", 2, "sales")
    assert str(sales.schema.field("total").type) == "decimal128(18, 2)"
    assert str(sales.schema.field("completed_at").type) == "timestamp[us, tz=UTC]"
    first = sales.to_pylist()[0]
    # 2025-03-09T00:30+09:00 is 2025-03-08T15:30Z: the Tokyo day starts on the previous UTC date.
    assert first["completed_at"] == dt.datetime(2025, 3, 8, 15, 30, tzinfo=dt.UTC)
    assert first["total"].as_tuple().exponent == -2


def test_shared_names_do_not_cross_businesses(fixture_db, tmp_path):
    storage = LocalStorage(tmp_path / "store")
    for business_id in (1, 2):
        _archive(fixture_db, storage, "customers", business_id)
        _archive(fixture_db, storage, "inventory", business_id)
        _archive(fixture_db, storage, "sales", business_id)
    assert _read(storage, "customers", 1, "customers").column("id").to_pylist() == [1001]
    assert _read(storage, "customers", 2, "customers").column("id").to_pylist() == [2001]
    inv1 = _read(storage, "inventory", 1, "inventory").to_pylist()
    inv2 = _read(storage, "inventory", 2, "inventory").to_pylist()
    assert {(r["storefront_id"], r["product_id"]) for r in inv1} == {(11, 1), (12, 1)}
    assert {(r["storefront_id"], r["product_id"]) for r in inv2} == {(21, 21)}
    items1 = _read(storage, "sales", 1, "sale_items").to_pylist()
    assert {r["product_id"] for r in items1} == {1, 2}


def test_dst_day_is_23_hours_and_east_day_spans_two_utc_dates():
    ny = day_window(DAY_D, "America/New_York")
    assert ny.hours == 23
    assert ny.start == dt.datetime(2025, 3, 9, 5, tzinfo=dt.UTC)
    tokyo = day_window(DAY_D, "Asia/Tokyo")
    assert (tokyo.start.date(), tokyo.end.date()) == (dt.date(2025, 3, 8), dt.date(2025, 3, 9))


def test_rerun_gives_identical_parquet_bytes(fixture_db, tmp_path):
    storage = LocalStorage(tmp_path / "store")
    _archive(fixture_db, storage, "sales", 1)
    first_key = table_file(storage, "sales", 1, DAY_D, "sale_items")
    _archive(fixture_db, storage, "sales", 1)
    second_key = table_file(storage, "sales", 1, DAY_D, "sale_items")
    assert second_key != first_key  # a new generation, with the same bytes
    assert storage.read_bytes(second_key) == storage.read_bytes(first_key)


def test_past_snapshot_never_captured_is_refused(fixture_db, tmp_path):
    storage = LocalStorage(tmp_path / "store")
    late = dt.datetime(2025, 3, 20, tzinfo=dt.UTC)
    with pytest.raises(ArchiveError, match="never captured"):
        _archive(fixture_db, storage, "customers", 1, now=late)
    assert not storage.exists(marker_key("customers", DAY_D, 1))
    # A snapshot captured in time is kept, not overwritten with today's state.
    _archive(fixture_db, storage, "customers", 1)
    kept = _archive(fixture_db, storage, "customers", 1, now=late)
    assert kept.kept_existing and kept.rows == 4


def test_day_not_ended_is_refused(fixture_db, tmp_path):
    storage = LocalStorage(tmp_path / "store")
    with pytest.raises(ArchiveError, match="has not ended"):
        _archive(fixture_db, storage, "sales", 3, now=dt.datetime(2025, 3, 10, 3, tzinfo=dt.UTC))
