"""Cleanup of old exports: rendered files are re-creatable from the archive, so they are kept only a while.

`cleanup_exports` deletes every export folder whose period ended more than `max_age_days` ago
(`POS_EXPORTS_EXPORT_MAX_AGE_DAYS`, default 30): a folder's age is taken from its manifest's
`period.last_day`; a folder without a manifest is judged by the period key in its path when it parses
(`daily/2025-03-09`, `weekly/2025-03-03`, `monthly/2025-03`, `on_demand/{kind}-{key}-{run}`), else it
is skipped and reported. Folders it knows:

- `exports/{business}/{daily|weekly|monthly}/{key}/`
- `exports/{business}/on_demand/{kind}-{key}-{run id}/`
- `exports/{business}/subscriptions/{subscription}/{kind}/{key}/`

Only keys under `exports/` are ever deleted (asserted): never the archive (`archive/`, the only copy
of purged POS rows) nor the outbox. Within a folder the manifest is deleted last, so an interrupted
cleanup leaves a folder that the next one still judges correctly. A delivery asked again for a
deleted period renders it again from the archive.

Dagster wiring: `pos_exports.defs.cleanup` (`cleanup_job`, `cleanup_schedule` daily 03:30 UTC).
"""

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from pos_exports import config
from pos_exports.exports.manifest import MANIFEST
from pos_exports.reports.period import period_for
from pos_exports.storage import Storage
from pos_exports.storage.base import LocalStorage

MAX_AGE_ENV = "POS_EXPORTS_EXPORT_MAX_AGE_DAYS"
DEFAULT_MAX_AGE_DAYS = config.default("export_max_age_days")
EXPORTS = "exports/"
PERIOD_KINDS = ("daily", "weekly", "monthly")


def default_max_age_days() -> int:
    return config.settings().export_max_age_days


@dataclass
class CleanupReport:
    count: int = 0  # files deleted (or that would be, in a dry run)
    bytes: int = 0
    folders: list[str] = field(default_factory=list)  # folders deleted (or that would be)
    keys: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "folder: why" for folders that could not be judged
    kept: int = 0  # folders still young enough
    dry_run: bool = True


def folder_of(key: str) -> tuple[str | None, str]:
    """The export folder a key belongs to and the period spec in its path: (folder, "kind:key"),
    or (None, why) for a key outside the known layout."""
    parts = key.split("/")
    if len(parts) < 5 or parts[0] != "exports":
        return None, "not in a known export folder"
    _, business, kind = parts[:3]
    if not business.isdigit():
        return None, "not in a known export folder"
    if kind in PERIOD_KINDS:
        return "/".join(parts[:4]), f"{kind}:{parts[3]}"
    if kind == "on_demand":
        name = parts[3]
        spec = None
        if "-" in name:
            period_kind, rest = name.split("-", 1)
            spec = f"{period_kind}:{rest.rsplit('-', 1)[0]}" if "-" in rest else None
        return "/".join(parts[:4]), spec or f"?:{name}"
    if kind == "subscriptions" and len(parts) >= 7:
        return "/".join(parts[:6]), f"{parts[4]}:{parts[5]}"
    return None, "not in a known export folder"


def _last_day_from_path(spec: str) -> dt.date | None:
    kind, _, key = spec.partition(":")
    try:
        return period_for(kind, key).last_day
    except ValueError:
        return None


def _last_day(storage: Storage, folder: str, spec: str) -> tuple[dt.date | None, str]:
    manifest_key = f"{folder}/{MANIFEST}"
    if storage.exists(manifest_key):
        try:
            return dt.date.fromisoformat(json.loads(storage.read_bytes(manifest_key))["period"]["last_day"]), ""
        except (ValueError, KeyError, TypeError) as exc:
            day = _last_day_from_path(spec)
            return day, "" if day else f"unreadable manifest ({type(exc).__name__}: {exc}) and no period in the path"
    day = _last_day_from_path(spec)
    return day, "" if day else "no manifest and no period in the path"


def cleanup_exports(
    storage: Storage, today: dt.date, max_age_days: int = DEFAULT_MAX_AGE_DAYS, dry_run: bool = True
) -> CleanupReport:
    """Delete (or, in a dry run, only list) the export folders whose period ended more than `max_age_days`
    before `today`. Never touches anything outside `exports/`."""
    if max_age_days < 0:
        raise ValueError(f"max_age_days must be >= 0, got {max_age_days}")
    report = CleanupReport(dry_run=dry_run)
    cutoff = today - dt.timedelta(days=max_age_days)  # a period whose last day is before this is old enough
    folders: dict[str, list[str]] = {}
    specs: dict[str, str] = {}
    skipped: set[str] = set()
    for key in storage.list(EXPORTS):
        folder, spec = folder_of(key)
        if folder is None:
            skipped.add(f"{key}: {spec}")
            continue
        folders.setdefault(folder, []).append(key)
        specs[folder] = spec
    for folder in sorted(folders):
        last, why = _last_day(storage, folder, specs[folder])
        if last is None:
            skipped.add(f"{folder}: {why}")
            continue
        if last >= cutoff:
            report.kept += 1
            continue
        keys = sorted(folders[folder], key=lambda k: (k.endswith("/" + MANIFEST), k))  # the manifest last
        for key in keys:
            assert key.startswith(EXPORTS) and not key.startswith(("archive/", "outbox/")), key
            size = storage.size(key)
            if not dry_run:
                storage.delete(key)
            report.count += 1
            report.bytes += size
            report.keys.append(key)
        report.folders.append(folder)
        if not dry_run:
            _prune_empty(storage, folder)
    report.skipped = sorted(skipped)
    return report


def _prune_empty(storage: Storage, folder: str) -> None:
    """Remove the emptied local directories of `folder` and its empty parents (never `exports/` itself)."""
    if not isinstance(storage, LocalStorage):
        return
    root = storage.path("exports").resolve()
    path = storage.path(folder)
    if path.is_dir():
        for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            _rmdir(sub)
        _rmdir(path)
    parent: Path = path.parent
    while parent.resolve() != root and root in parent.resolve().parents:
        if not _rmdir(parent):
            break
        parent = parent.parent


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()  # only succeeds when empty (a leftover *.tmp of a running render keeps it)
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# The CLI


def run_cleanup(today: dt.date, dry_run: bool, max_age_days: int | None = None, storage: Storage | None = None) -> int:
    """CLI: clean up (or list, with `dry_run`) old exports in `POS_EXPORTS_STORAGE`; prints what it did."""
    from pos_exports import config as settings
    from pos_exports.storage import open_storage

    days = default_max_age_days() if max_age_days is None else max_age_days
    store = storage or open_storage(settings.storage_root())
    report = cleanup_exports(store, today, days, dry_run)
    verb = "would delete" if dry_run else "deleted"
    for folder in report.folders:
        print(f"{verb} {store.uri(folder)}")
    for item in report.skipped:
        print(f"skipped {item}")
    print(f"{verb} {report.count} file(s), {report.bytes} bytes in {len(report.folders)} folder(s); {report.kept} kept")
    return 0
