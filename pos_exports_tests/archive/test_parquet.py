"""Atomic, typed Parquet writes."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pos_exports.archive.parquet import ArchiveDataError, cents_to_money, write_parquet
from pos_exports.archive.tables import PAYMENTS
from pos_exports.storage.base import LocalStorage


def _batch(ids, amounts):
    return pa.RecordBatch.from_pydict(
        {
            "id": ids,
            "business_id": [1] * len(ids),
            "sale_id": ids,
            "receipt_number": ["R"] * len(ids),
            "method": ["cash"] * len(ids),
            "amount": amounts,
            "created_at": ["2025-03-09T10:00:00+02:00"] * len(ids),
        }
    )


def test_cents_become_exact_decimals():
    money = cents_to_money(pa.array([1, -5, 123456789, None], pa.int64())).to_pylist()
    assert money == [Decimal("0.01"), Decimal("-0.05"), Decimal("1234567.89"), None]


def test_failure_mid_write_leaves_no_file_at_the_final_path(tmp_path):
    storage = LocalStorage(tmp_path)

    def batches():
        yield _batch([1, 2], [100, 200])
        raise ConnectionError("connection to the POS lost")

    with pytest.raises(ConnectionError):
        with storage.staged("archive/x/payments.parquet") as tmp:
            write_parquet(tmp, PAYMENTS, batches())
    assert not storage.exists("archive/x/payments.parquet")
    assert list((tmp_path / "archive" / "x").iterdir()) == []


def test_existing_file_survives_a_failed_rewrite(tmp_path):
    storage = LocalStorage(tmp_path)
    with storage.staged("p.parquet") as tmp:
        write_parquet(tmp, PAYMENTS, [_batch([1], [100])])
    before = storage.read_bytes("p.parquet")
    with pytest.raises(ArchiveDataError, match="amount"):
        with storage.staged("p.parquet") as tmp:
            write_parquet(tmp, PAYMENTS, [_batch([2], ["not money"])])
    assert storage.read_bytes("p.parquet") == before


def test_batching_does_not_change_the_bytes(tmp_path):
    rows = list(range(1, 1001))
    write_parquet(tmp_path / "a.parquet", PAYMENTS, [_batch(rows, rows)])
    write_parquet(
        tmp_path / "b.parquet", PAYMENTS, [_batch(rows[i : i + 7], rows[i : i + 7]) for i in range(0, 1000, 7)]
    )
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.num_rows == 1000 and table.column("created_at").type == pa.timestamp("us", tz="UTC")
