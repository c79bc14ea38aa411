"""Where the archive and the exports live: a local folder or S3, behind one small interface."""

from pos_exports.storage.base import Storage, open_storage

__all__ = ["Storage", "open_storage"]
