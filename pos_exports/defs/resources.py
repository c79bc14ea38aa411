"""The Dagster resources: the POS source, the storage, and the clock every sensor, op and check reads."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from pos_exports import config
from pos_exports.core.clock import utc_now
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


class ClockResource(dg.ConfigurableResource):
    """What time it is for a sensor, an op or a check: the UTC clock, or `frozen_at` (an ISO instant with its
    offset) for a test or a replay of a past tick. Passed as a resource so that nothing patches a clock."""

    frozen_at: str | None = Field(default=None, description="An ISO instant to use as now (tests); empty = UTC now.")

    def now(self) -> dt.datetime:
        if self.frozen_at:
            now = dt.datetime.fromisoformat(self.frozen_at)
            if now.tzinfo is None:
                raise ValueError(f"frozen_at: {self.frozen_at!r} has no UTC offset (e.g. 2025-03-10T06:00:00+00:00)")
            return now
        return utc_now()

    @classmethod
    def at(cls, now: dt.datetime) -> ClockResource:
        """A clock stopped at `now`."""
        return cls(frozen_at=now.isoformat())
