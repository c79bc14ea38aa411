"""The files a delivery emailed, as the ledger records them (`deliveries.files`), read back from storage.

`delivered_file` is the one way to the bytes of one delivered file (the CLI's `history --download` and the
API's download): when the file is gone from storage it raises FileGone with a one-line reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pos_exports.delivery.downloads import storage_key
from pos_exports.storage import Storage


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

    The seam for a re-render of a cleaned-up file: it goes here, in one call, before FileGone is raised.
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


@contextlib.contextmanager
def local_path(storage: Storage, file: DeliveredFile) -> Iterator[Path]:
    """A local path holding the file's bytes for the time of the block (the file itself on local storage)."""
    with storage.local_copy(file.key) as path:
        yield path
