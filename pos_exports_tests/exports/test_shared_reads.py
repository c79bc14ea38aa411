"""One export of a business-period reads each archived file once, whatever the sections and formats,
and writes the very bytes it writes when nothing is shared."""

from __future__ import annotations

from collections import Counter

from pos_exports.archive.read import load_businesses, shared_reads
from pos_exports.exports.produce import export_period
from pos_exports.reports.period import period_for
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.exports.names import export_files

DATASETS = ["sales", "customers", "inventory", "audit_log"]
FORMATS = ["xlsx", "csv", "pdf"]


class CountingStorage(LocalStorage):
    """Local storage that counts the opening of each file and each whole read (manifests)."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.opened: Counter = Counter()

    def local_copy(self, key):
        self.opened[key] += 1
        return super().local_copy(key)

    def read_bytes(self, key):
        self.opened[key] += 1
        return super().read_bytes(key)


def _export(storage, folder):
    business = next(b for b in load_businesses(storage) if b.id == 1)
    _, entries = export_period(storage, business, period_for("weekly", "2025-03-03"), DATASETS, FORMATS, folder=folder)
    return entries


def _archive_reads(storage: CountingStorage) -> Counter:
    return Counter({k: n for k, n in storage.opened.items() if k.startswith("archive/") and "businesses" not in k})


def test_each_archived_file_is_read_once_per_export_and_the_files_are_the_same(archived_root):
    shared = CountingStorage(archived_root)
    entries = _export(shared, "exports/1/a")
    reads = _archive_reads(shared)
    parquet = [k for k in reads if k.endswith(".parquet")]
    assert len(parquet) >= 7 * 3  # the week's sales, audit and movement files, and the snapshots
    assert set(reads.values()) == {1}, {k: n for k, n in reads.items() if n > 1}

    unshared = CountingStorage(archived_root)
    with shared_reads(budget=0):  # nothing may be kept: every pass reads the archive again
        again = _export(unshared, "exports/1/b")
    assert max(_archive_reads(unshared)[k] for k in parquet) > 1
    assert [(e.name, e.bytes, e.sha256, e.rows) for e in again] == [
        (e.name, e.bytes, e.sha256, e.rows) for e in entries
    ]
    assert len({(e.dataset, e.format) for e in entries}) == len(DATASETS) * len(FORMATS)
    assert {e.name for e in entries} == export_files(DATASETS, FORMATS)
