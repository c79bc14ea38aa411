"""The storage interface and its local-folder implementation.

Writes are atomic: a file is produced under a temporary name and published only when complete
(`os.replace` locally), so a half-written file never appears at its final key.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Storage:
    """Keys are `/`-separated paths relative to the storage root."""

    root: str

    @contextlib.contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        """Yield a local temporary path to write; publish it at `key` only if the block succeeds."""
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A local path holding the file at `key` (the file itself locally, a temporary download on S3)."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def size(self, key: str) -> int:
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, sorted."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def uri(self, key: str) -> str:
        """Where a user can open the file."""
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.staged(key) as tmp:
            tmp.write_bytes(data)


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = str(Path(root).resolve())

    def path(self, key: str) -> Path:
        return Path(self.root, *key.split("/"))

    @contextlib.contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

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

    def list(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        if not base.exists():
            return []
        root = Path(self.root)
        return sorted(
            p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.endswith(".tmp")
        )

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
