"""The archive index: one row per archived business-day in the state database (`archive_index`).

A cache of the manifests, written right after a manifest is published (a crash in between leaves the
index behind storage, never ahead: the next archive run or `pos-exports archive reindex` catches up).
Coverage, catch-up and delivery readiness ask it (one query) instead of listing or probing storage.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterable

import sqlalchemy as sa

from pos_exports.archive import delta
from pos_exports.archive.extract import MARKER, parse_manifest
from pos_exports.archive.parquet import ArchiveCorrupt
from pos_exports.state import archive_index
from pos_exports.storage import Storage

CRASH_HOOK_ENV = "POS_EXPORTS_TEST_CRASH_BEFORE_INDEX"  # tests only: kill -9 between record/manifest and index


def index_row(manifest: dict, data: bytes, published_at: dt.datetime) -> dict:
    tables = manifest.get("tables", [])
    return {
        "dataset": manifest["dataset"],
        "business_id": int(manifest["business_id"]),
        "day": dt.date.fromisoformat(manifest["date"]),
        "generation": manifest.get("generation"),
        "kind": manifest.get("kind"),
        "rows": sum(int(t.get("rows") or 0) for t in tables),
        "bytes": sum(int(t.get("bytes") or 0) for t in tables),
        "manifest_sha256": hashlib.sha256(data).hexdigest(),
        "published_at": published_at,
        "layout": manifest.get("layout", "folders"),
        "versions": {t["table"]: t["version"] for t in tables if "version" in t} or None,
        "totals": {t["table"]: {"rows": int(t.get("rows") or 0), "sums": t.get("sums", {})} for t in tables},
    }


def upsert(eng: sa.Engine, rows: list[dict]) -> None:
    """Insert or replace index rows (by dataset, business_id, day), in one transaction. Both layouts index
    through here, right after publishing (a folder manifest, or the Delta records)."""
    if not rows:
        return
    if os.environ.get(CRASH_HOOK_ENV):  # fault injection: die with the records published, the index not
        os.kill(os.getpid(), 9)
    keys = [(r["dataset"], r["business_id"], r["day"]) for r in rows]
    t = archive_index
    with eng.begin() as conn:
        for dataset, business_id, day in keys:
            conn.execute(t.delete().where(t.c.dataset == dataset, t.c.business_id == business_id, t.c.day == day))
        conn.execute(t.insert(), rows)


def record_published(eng: sa.Engine, manifest: dict, data: bytes, published_at: dt.datetime) -> None:
    """Index a manifest just published (called only after the manifest is on storage)."""
    upsert(eng, [index_row(manifest, data, published_at)])


def archived_days(
    eng: sa.Engine, dataset: str, business_ids: Iterable[int], days: Iterable[dt.date]
) -> set[tuple[int, dt.date]]:
    """The (business_id, day) of `dataset` the archive holds, among the given ones (one query, no storage)."""
    ids, wanted = sorted(set(business_ids)), sorted(set(days))
    if not ids or not wanted:
        return set()
    t = archive_index
    query = sa.select(t.c.business_id, t.c.day).where(
        t.c.dataset == dataset, t.c.day >= wanted[0], t.c.day <= wanted[-1], t.c.business_id.in_(ids)
    )
    with eng.connect() as conn:
        found = {(int(b), d) for b, d in conn.execute(query)}
    keep = set(wanted)
    return {(b, d) for b, d in found if d in keep}


def day_counts(
    eng: sa.Engine, datasets: Iterable[str], business_ids: Iterable[int], first: dt.date, last: dt.date
) -> dict[tuple[str, dt.date], int]:
    """How many of `business_ids` the index holds per (dataset, day) in `first..last` (one GROUP BY, no storage):
    a day whose count is every expected business needs no per-business look."""
    ids, names = sorted(set(business_ids)), sorted(set(datasets))
    if not ids or not names or last < first:
        return {}
    t = archive_index
    query = (
        sa.select(t.c.dataset, t.c.day, sa.func.count())
        .where(t.c.dataset.in_(names), t.c.day >= first, t.c.day <= last, t.c.business_id.in_(ids))
        .group_by(t.c.dataset, t.c.day)
    )
    with eng.connect() as conn:
        return {(name, day): int(n) for name, day, n in conn.execute(query)}


def business_ids_on(eng: sa.Engine, dataset: str, day: dt.date) -> set[int]:
    """The businesses whose `dataset` of `day` the index holds (one query, no storage)."""
    t = archive_index
    with eng.connect() as conn:
        return set(conn.execute(sa.select(t.c.business_id).where(t.c.dataset == dataset, t.c.day == day)).scalars())


def is_empty(eng: sa.Engine) -> bool:
    with eng.connect() as conn:
        return conn.execute(sa.select(archive_index.c.day).limit(1)).first() is None


def reindex(storage: Storage, eng: sa.Engine, progress: Callable[[str], None] = lambda _: None) -> int:
    """Rebuild the index from the manifests on storage (each read once), replacing it whole in one
    transaction (idempotent; rows of days storage no longer holds go). Returns the rows indexed."""
    rows: list[dict] = []
    last = None
    for key in storage.list("archive/"):
        if key.startswith(delta.TABLES + "/") or not key.endswith("/" + MARKER):
            continue
        parts = dict(p.split("=", 1) for p in key.split("/") if "=" in p)
        try:
            dataset, day, business_id = (
                key.split("/")[1],
                dt.date.fromisoformat(parts["date"]),
                int(parts["business_id"]),
            )
            data = storage.read_bytes(key)
            manifest = parse_manifest(data, storage.uri(key), dataset, day, business_id)
        except (ArchiveCorrupt, KeyError, ValueError) as exc:
            progress(f"skipped {storage.uri(key)}: {exc}")
            continue
        manifest = {**manifest, "dataset": dataset, "date": day.isoformat(), "business_id": business_id}
        rows.append(index_row(manifest, data, dt.datetime.now(dt.UTC)))
        if last is not None and last != (dataset, day):
            progress(f"indexed {last[0]} {last[1]}")
        last = (dataset, day)
    if last is not None:
        progress(f"indexed {last[0]} {last[1]}")
    found = delta.records(storage)  # a business-day in both layouts (migrated, re-archived): its record wins
    if found:
        rows = [r for r in rows if (r["dataset"], r["business_id"], r["day"]) not in found]
        now = dt.datetime.now(dt.UTC)
        rows += [index_row(r, delta.record_bytes(r), now) for r in found.values()]
        progress(f"indexed {len(found)} business-day(s) of the Delta tables")
    with eng.begin() as conn:
        conn.execute(archive_index.delete())
        for i in range(0, len(rows), 5000):
            conn.execute(archive_index.insert(), rows[i : i + 5000])
    return len(rows)
