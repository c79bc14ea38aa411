"""The files one delivery emailed, for a download (`pos-exports history --download`, the emailed download link):
copied from storage, or rendered again from the archive when cleanup has deleted them (`exports.rerender`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pos_exports.archive.read import load_businesses
from pos_exports.delivery import subscriptions
from pos_exports.exports.rerender import RerenderError, rerender
from pos_exports.reports.period import period_for
from pos_exports.storage import Storage


@dataclass
class Fetched:
    paths: list[Path] = field(default_factory=list)  # in the order of the delivery's files
    rerendered: list[str] = field(default_factory=list)  # names rendered again from the archive
    changed: list[str] = field(default_factory=list)  # names whose stored copy differs from the one emailed
    problems: list[str] = field(default_factory=list)  # "name: why", one line each


def storage_key(storage: Storage, uri: str) -> str | None:
    """The storage key of a file's recorded uri (`storage.uri(key)`), None when it is not in this storage."""
    base = storage.uri("x")[:-1]  # the uri of the root, with its separator
    if uri.startswith(base):
        return uri[len(base) :].replace("\\", "/")
    return None


class FileGone(LookupError):
    """The delivered file is no longer in storage (or never was in this one); `str(exc)` is one line."""


@dataclass(frozen=True)
class DeliveredFile:
    name: str  # a plain file name, never a path of the ledger's choosing
    key: str  # its storage key
    sha256: str | None  # as emailed
    size: int | None


def delivered_file(storage: Storage, row: Mapping[str, Any], name: str) -> DeliveredFile:
    """The file `name` of the ledger row `row`, checked to be in `storage`; FileGone (one line) otherwise.

    A file that is gone is for `fetch_files` to render again (the API does so on FileGone).
    """
    entry = next((f for f in row.get("files") or [] if Path(f["name"]).name == name), None)
    if entry is None:
        raise FileGone(f"delivery {row['id']} has no file named {name!r}")
    key = storage_key(storage, entry.get("uri") or "")
    if key is None:
        raise FileGone(f"{name}: {entry.get('uri')} is not in the storage {storage.root}")
    if not storage.exists(key):
        raise FileGone(f"{name} is no longer in storage (removed by the export cleanup); it was emailed as sent")
    return DeliveredFile(Path(entry["name"]).name, key, entry.get("sha256"), entry.get("bytes"))


def fetch_files(eng: sa.Engine, storage: Storage, row: Mapping, target: Path, now: dt.datetime) -> Fetched:
    """Put the files of the ledger row `row` (a `deliveries` row) into the folder `target`.

    A file still in storage is copied (`changed` when it differs from the SHA-256 the ledger recorded); one that
    is gone is rendered again from the archive, with the filters of its subscription when it was a filtered
    render, and its SHA-256 checked against the ledger's (`problems` says why when it cannot be).
    """
    out = Fetched()
    target.mkdir(parents=True, exist_ok=True)
    gone: list[dict] = []
    for f in row["files"] or []:
        name = Path(f["name"]).name  # never a path of the ledger's choosing
        key = storage_key(storage, f.get("uri") or "")
        if key is None:
            out.problems.append(f"{name}: {f.get('uri')} is not in the storage {storage.root} (set --storage)")
        elif storage.exists(key):
            destination = target / name
            with storage.local_copy(key) as path:
                shutil.copyfile(path, destination)
            if f.get("sha256") and hashlib.sha256(destination.read_bytes()).hexdigest() != f["sha256"]:
                out.changed.append(name)
            out.paths.append(destination)
        else:
            gone.append({**f, "name": name})
    try:  # together: each dataset's report is built once
        out.paths += _rerendered(eng, storage, row, gone, target, now) if gone else []
        out.rerendered += [f["name"] for f in gone]
    except _FAILURES:
        for f in gone:  # one at a time, to say which: a file that cannot be restored does not withhold the others
            try:
                out.paths += _rerendered(eng, storage, row, [f], target, now)
                out.rerendered.append(f["name"])
            except _FAILURES as exc:
                out.problems.append(f"{f['name']}: no longer in storage, and {_lower(exc)}")
    order = [Path(f["name"]).name for f in row["files"] or []]
    out.paths.sort(key=lambda p: order.index(p.name))
    return out


_FAILURES = (RerenderError, LookupError, ValueError)  # the archive lacks the period, or it changed since


def _rerendered(eng, storage: Storage, row: Mapping, files: list[dict], target: Path, now) -> list[Path]:
    businesses = {b.id: b for b in load_businesses(storage)}
    business = businesses.get(row["business_id"])
    if business is None:
        raise RerenderError(f"business {row['business_id']} is not in the archive's business list")
    filters = None
    if any("/subscriptions/" in (f.get("uri") or "").replace("\\", "/") for f in files):  # filtered (deliver._files)
        sub = subscriptions.get(eng, row["subscription_id"])
        if sub is None:
            raise RerenderError(f"its subscription {row['subscription_id']} (and its filters) no longer exists")
        filters = {d: v for d in sub.datasets if (v := subscriptions.filters_for(sub, d))}
    period = period_for(row["period_kind"], row["period_key"])
    return rerender(storage, business, period, files, target, filters=filters, now=now)


def _lower(exc: BaseException) -> str:
    text = str(exc).split(": ", 1)[-1] if isinstance(exc, RerenderError) else f"{type(exc).__name__}: {exc}"
    return text[:1].lower() + text[1:]
