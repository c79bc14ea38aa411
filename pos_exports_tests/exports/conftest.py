"""An archive of the hand-built fixture for the week of Monday 2025-03-03, made by the real archive code."""

from __future__ import annotations

import datetime as dt

import pytest

from pos_exports.archive.extract import archive_business_day
from pos_exports.archive.read import save_businesses
from pos_exports.archive.tables import DATASETS
from pos_exports.periods import day_window
from pos_exports.source.database import connect, list_businesses
from pos_exports.storage import Storage
from pos_exports_tests.fixtures import load_sqlite

WEEK = [dt.date(2025, 3, 3) + dt.timedelta(days=i) for i in range(7)]


def archive_week(url: str, storage: Storage) -> None:
    with connect(url) as reader:
        businesses = list_businesses(reader)
        save_businesses(storage, businesses)
        for business in (b for b in businesses if b.is_active):
            for day in WEEK:
                for ds in DATASETS.values():
                    if ds.kind == "snapshot" and day != WEEK[-1]:
                        continue
                    now = day_window(day, business.timezone).end + dt.timedelta(hours=1)
                    archive_business_day(reader, storage, ds, business, day, now=now)


@pytest.fixture
def archived_root(tmp_path):
    """A local storage root holding the week's archive; returns its path."""
    from pos_exports.storage.base import LocalStorage

    root = tmp_path / "store"
    archive_week(load_sqlite(tmp_path / "pos.sqlite"), LocalStorage(root))
    return root
