"""Files rendered again from the archive: a file cleanup deleted, or one nobody subscribes to (issue 12: the period
assets render only what someone reads), byte for byte what the period export wrote.

The same report builder and renderer as `produce.export_period` (`reports.BUILDERS`, `render.render_files`), and
every renderer is deterministic (CSV; XLSX with its creation date fixed to the period's end; PDF in reportlab's
invariant mode, dated the same), so an unchanged archive gives the same bytes. A manifest or ledger entry's
SHA-256 is checked: a file that cannot be made identical again (the archive was re-archived since, or the
filters changed) raises `RerenderMismatch` instead of handing out different data under the same name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

from pos_exports.archive.read import shared_reads
from pos_exports.render import render_files
from pos_exports.reports import BUILDERS
from pos_exports.reports.period import Period
from pos_exports.source.database import Business
from pos_exports.storage import Storage
from pos_exports.storage.base import sha256_file


class RerenderError(Exception):
    """A file that cannot be rendered again (one line, naming the file)."""


class RerenderMismatch(RerenderError):
    """The file rendered again differs from the one recorded (its SHA-256)."""


def rerender(
    storage: Storage,
    business: Business,
    period: Period,
    entries: Sequence[Mapping],
    target: Path,
    *,
    filters: dict[str, dict] | None = None,
    now: dt.datetime | None = None,
) -> list[Path]:
    """Render the files `entries` name (manifest or ledger entries: `name`, `dataset`, `format`, and `sha256` to
    check when known) again from the archive into the folder `target`, each dataset's report built once.

    Returns the paths, in the order of `entries`. Raises RerenderMismatch when a file's SHA-256 differs from its
    entry's (that file is removed), RerenderError when the entry names no file its format makes.
    """
    target.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    datasets = list(dict.fromkeys(e["dataset"] for e in entries))
    with shared_reads():  # each business-day file is read once for every format
        for dataset in datasets:
            report = BUILDERS[dataset](storage, business, period, (filters or {}).get(dataset), now=now)
            for entry in (e for e in entries if e["dataset"] == dataset):
                writers = dict(render_files(report, entry["format"]))
                name = Path(entry["name"]).name  # never a path of the entry's choosing
                if name not in writers:
                    raise RerenderError(f"{name}: not a file that the {entry['format']} export of {dataset} makes")
                path = target / name
                writers[name](path)
                paths[entry["name"]] = path
                _check(path, entry)
    return [paths[e["name"]] for e in entries]


def _check(path: Path, entry: Mapping) -> None:
    expected = entry.get("sha256")
    if expected and sha256_file(path) != expected:
        path.unlink()
        raise RerenderMismatch(
            f"{path.name}: rendered again from the archive, it differs from the file recorded (SHA-256 "
            f"{expected[:12]}...): the archive has changed since, so it cannot be restored as it was"
        )
