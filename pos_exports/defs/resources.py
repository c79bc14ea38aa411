"""The Dagster resources that wrap the POS source and the storage."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg

from pos_exports import config
from pos_exports.redact import redact_url
from pos_exports.source.database import PosReader, connect
from pos_exports.storage import Storage, open_storage


class PosDatabase(dg.ConfigurableResource):
    """The POS database, read-only (`POS_DATABASE_URL`: postgresql://... or sqlite:///...)."""

    url: str

    @contextlib.contextmanager
    def open(self) -> Iterator[PosReader]:
        with connect(self.url) as reader:
            yield reader

    @property
    def display_url(self) -> str:
        return redact_url(self.url)


class StorageResource(dg.ConfigurableResource):
    """Where the archive and exports are written (`POS_EXPORTS_STORAGE`: a folder or s3://bucket/prefix)."""

    root: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every step of every job has this resource: a bad setting fails the step before its body runs.
        try:
            config.settings()
        except config.SettingsError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None

    def get(self) -> Storage:
        return open_storage(self.root)
