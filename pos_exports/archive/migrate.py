"""`pos-exports archive migrate`: the folder archive converted into the Delta tables, verified.

Dataset-day by dataset-day (oldest first): the business-days that have a folder manifest and no Delta
record yet are committed per table in one transaction, read back at the committed version and compared
with the folder files row by row (both sorted on the primary key) and sum by sum (the manifest's); only
then are their records written (and the index). The folder files stay where they are: until a
business-day is recorded, readers keep reading its folder; a migration stopped anywhere resumes where it
stopped (a data commit without its record is replaced on the next attempt).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pos_exports.archive import delta
from pos_exports.archive.extract import MARKER, ArchiveError, parse_manifest
from pos_exports.archive.parquet import ROW_GROUP_ROWS, ArchiveCorrupt, open_verified
from pos_exports.archive.read import read_table
from pos_exports.archive.tables import DATASETS, Table
from pos_exports.storage import Storage


class MigrationError(ArchiveError):
    """A business-day whose Delta rows differ from its folder files (nothing recorded for it)."""


def folder_days(storage: Storage) -> dict[tuple[str, dt.date], dict[int, dict]]:
    """Every folder manifest on storage by (dataset, day), then business id (one listing)."""
    found: dict[tuple[str, dt.date], dict[int, dict]] = defaultdict(dict)
    for key in storage.list("archive/"):
        if key.startswith(delta.TABLES + "/") or not key.endswith("/" + MARKER):
            continue
        parts = dict(p.split("=", 1) for p in key.split("/") if "=" in p)
        dataset, day, business_id = key.split("/")[1], dt.date.fromisoformat(parts["date"]), int(parts["business_id"])
        if dataset in DATASETS:
            found[dataset, day][business_id] = parse_manifest(
                storage.read_bytes(key), storage.uri(key), dataset, day, business_id
            )
    return dict(sorted(found.items(), key=lambda item: (item[0][1], item[0][0])))


def _folder_batches(
    storage: Storage, manifests: dict[int, dict], table: Table, day: dt.date
) -> Iterator[pa.RecordBatch]:
    for business_id, manifest in sorted(manifests.items()):
        entry = next((t for t in manifest["tables"] if t["table"] == table.name), None)
        if entry is None:
            raise MigrationError(
                f"the manifest of {manifest.get('dataset')} {day} business {business_id} names no {table.name}"
            )
        with open_verified(storage, entry["key"], entry["bytes"], entry["sha256"]) as data:
            for batch in pq.ParquetFile(pa.BufferReader(data)).iter_batches(batch_size=ROW_GROUP_ROWS):
                yield delta._with_partition(batch, table, business_id, day)


def migrate(storage: Storage, progress: Callable[[str], None] = lambda _: None) -> int:
    """Convert every folder business-day not yet in the Delta tables; returns how many were migrated."""
    migrated = 0
    for (name, day), manifests in folder_days(storage).items():
        dataset = DATASETS[name]
        done = delta.records(storage)
        pending = {b: m for b, m in manifests.items() if (name, b, day) not in done}
        if not pending:
            progress(f"{name} {day}: already migrated ({len(manifests)} business-day(s))")
            continue
        ids = sorted(pending)
        versions = {
            table.name: delta.commit_rows(
                storage,
                table.name,
                delta.delta_schema(table),
                lambda table=table, pending=pending, day=day: _folder_batches(storage, pending, table, day),
                delta._predicate(day, ids),
            )
            for table in dataset.tables
        }
        documents = []
        for business_id in ids:
            manifest = pending[business_id]
            document = {
                "layout": "delta",
                "dataset": name,
                "kind": dataset.kind,
                "date": day.isoformat(),
                "business_id": business_id,
                "timezone": manifest.get("timezone"),
                "window_utc": manifest.get("window_utc"),
                "captured_at": manifest.get("captured_at"),
                "recorded_at": dt.datetime.now(dt.UTC).isoformat(),
                "reconciled": manifest.get("reconciled", True),
                "migrated_from": manifest.get("generation") or "first layout",
                "tables": [
                    {
                        "table": t["table"],
                        "key": delta.table_key(t["table"]),
                        "version": versions[t["table"]],
                        "rows": t["rows"],
                        "bytes": t.get("bytes"),
                        "sums": t.get("sums", {}),
                        "non_members": t.get("non_members", []),
                    }
                    for t in manifest["tables"]
                ],
                "previous": delta._history(manifest),
            }
            _verify(storage, document, dataset.tables)
            documents.append(document)
        delta.record_all(storage, name, day, documents, dt.datetime.now(dt.UTC))
        migrated += len(documents)
        progress(
            f"{name} {day}: migrated {len(documents)} business-day(s), "
            f"{sum(t['rows'] for d in documents for t in d['tables'])} rows, verified row by row and sum by sum"
        )
    return migrated


def _verify(storage: Storage, document: dict, tables: tuple[Table, ...]) -> None:
    """The Delta rows of the business-day equal its folder files, row by row (sorted on the key); the
    sums equal the manifest's (read_record_table checks them). MigrationError naming the table otherwise."""
    business_id, day = document["business_id"], dt.date.fromisoformat(document["date"])
    for table in tables:
        try:
            got = delta.read_record_table(storage, document, table)
        except ArchiveCorrupt as exc:
            raise MigrationError(f"{document['dataset']} {day} business {business_id}: {exc}") from None
        want = read_table(storage, document["dataset"], table.name, business_id, [day])
        if want.num_rows > 1:
            want = want.take(pc.sort_indices(want, [(k, "ascending") for k in table.key]))
        if not got.equals(want.cast(got.schema)):
            raise MigrationError(
                f"{document['dataset']} {day} business {business_id}: the {table.name} rows in the Delta table differ "
                "from the folder files; nothing recorded for it (the folders stay what readers read)"
            )
