"""The storage interface and its local-folder implementation.

Writes are atomic: a file is produced under a temporary name and published only when complete
(`os.replace` locally), so a half-written file never appears at its final key.

A temporary name says which process writes it (`.{name}.{host}-{pid}-{random}.tmp`), so that the
temporary files of a killed run can be swept by a later one without touching a live run's: a temp
file is abandoned when its writer is a dead process of this host, or when it is older than
`TEMP_MAX_AGE` (a writer on another host, or a name without a writer).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from pos_exports.core.clock import utc_now

TEMP_MAX_AGE = dt.timedelta(hours=24)  # far longer than any write takes
HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"
_WRITER = re.compile(r"\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[a-z0-9_]+(\.tmp)?$")


def temp_prefix(name: str) -> str:
    """The start of a temporary name made by this process (mkstemp / mkdtemp add a random part)."""
    return f"{name}.{HOST}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def abandoned(name: str, modified: dt.datetime, now: dt.datetime, max_age: dt.timedelta = TEMP_MAX_AGE) -> bool:
    """Whether the temporary file or folder `name` (last modified at `modified`) belongs to no live run."""
    if now - modified > max_age:
        return True
    writer = _WRITER.search(name)
    return bool(writer and writer["host"] == HOST and not _alive(int(writer["pid"])))


def sweep_folder(folder: Path, pattern: str, *, recursive: bool = False, now: dt.datetime | None = None) -> list[Path]:
    """Delete the abandoned temporary files (or folders) matching `pattern` in `folder`; return them."""
    now = now or utc_now()
    swept = []
    for path in folder.rglob(pattern) if recursive else folder.glob(pattern):
        try:
            modified = dt.datetime.fromtimestamp(path.lstat().st_mtime, dt.UTC)
        except FileNotFoundError:  # swept by someone else meanwhile
            continue
        if abandoned(path.name, modified, now):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            swept.append(path)
    return swept


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_TEMP_TOKEN = secrets.token_hex(4)
_TEMP_COUNT = itertools.count()


def _new_temp(final: Path) -> Path:
    """A new, empty temporary file beside `final`, named as `temp_prefix` says (this process's random token and a
    counter make it unique; O_EXCL would refuse a name someone holds). Cheaper than `tempfile.mkstemp`."""
    while True:
        tmp = final.with_name(f"{temp_prefix(f'.{final.name}')}{_TEMP_TOKEN}{next(_TEMP_COUNT):x}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return tmp
        except FileExistsError:
            continue


class Storage(Protocol):
    """What the archive and the exports need of a storage; keys are `/`-separated paths relative to its root.

    `LocalStorage` and `S3Storage` implement it (and inherit `list` and `write_bytes`); any object with these
    methods is a storage (tests wrap one to count its calls)."""

    root: str

    @contextlib.contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        """Yield a local temporary path to write; publish it at `key` only if the block succeeds."""
        ...

    def read_bytes(self, key: str) -> bytes: ...

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A local path holding the file at `key` (the file itself locally, a temporary download on S3)."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, sorted."""
        return sorted(self.sizes(prefix))

    def sizes(self, prefix: str) -> dict[str, int]:
        """Every key under `prefix` with its size in bytes (one listing)."""
        ...

    def sweep_temp(self, prefix: str) -> list[str]:
        """Delete the temporary files that killed runs left under `prefix` (never a live run's); return them."""
        ...

    def delete(self, key: str) -> None: ...

    def uri(self, key: str) -> str:
        """Where a user can open the file."""
        ...

    def table_options(self) -> dict[str, str] | None:
        """The `storage_options` a Delta Lake table under this storage needs (None: a local path)."""
        return None

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.staged(key) as tmp:
            tmp.write_bytes(data)


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = str(Path(root).resolve())
        # Folders made and swept by this storage's first write to each (later writes to them go straight on).
        self._ready: set[Path] = set()

    def path(self, key: str) -> Path:
        return Path(self.root, *key.split("/"))

    @contextlib.contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        final = self.path(key)
        if final.parent not in self._ready:  # once per folder: an export writes ~10 files to each
            self._prepare(final.parent)
        try:
            tmp = _new_temp(final)
        except FileNotFoundError:  # the folder was removed since
            self._prepare(final.parent)
            tmp = _new_temp(final)
        try:
            yield tmp
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _prepare(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        sweep_folder(folder, ".*.tmp")  # a killed run's temp files in the folder this write goes to
        self._ready.add(folder)

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"not in storage: {self.uri(key)}")
        yield path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def sizes(self, prefix: str) -> dict[str, int]:
        base = self.path(prefix)
        if not base.exists():
            return {}
        root = Path(self.root)
        out = {}
        for p in base.rglob("*"):
            if not p.name.endswith(".tmp") and p.is_file():
                with contextlib.suppress(FileNotFoundError):  # a temp file renamed or swept meanwhile
                    out[p.relative_to(root).as_posix()] = p.stat().st_size
        return out

    def sweep_temp(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        if not base.exists():
            return []
        root = Path(self.root)
        return [p.relative_to(root).as_posix() for p in sweep_folder(base, ".*.tmp", recursive=True)]

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return str(self.path(key))


def open_storage(root: str) -> Storage:
    """A storage for `POS_EXPORTS_STORAGE`: a local folder, or `s3://bucket/prefix`."""
    if root.startswith("s3://"):
        from pos_exports.storage.s3 import S3Storage

        return S3Storage.from_url(root)
    return LocalStorage(root)
