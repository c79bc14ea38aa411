"""An archive of the hand-built fixture for the week of Monday 2025-03-03, made by the real archive code; the demo's
exports of one day."""

from __future__ import annotations

import datetime as dt

import pytest

from pos_exports.archive.extract import archive_business_day
from pos_exports.archive.read import save_businesses
from pos_exports.archive.tables import DATASETS
from pos_exports.core.catalog import FORMATS
from pos_exports.exports.produce import export_period
from pos_exports.periods import day_window
from pos_exports.reports.period import period_for
from pos_exports.source.database import connect, list_businesses
from pos_exports.source.demo import DemoSpec, build_sqlite
from pos_exports.storage import Storage
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.fixtures import load_sqlite

DEMO_DAY = dt.date(2026, 11, 30)
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
    root = tmp_path / "store"
    archive_week(load_sqlite(tmp_path / "pos.sqlite"), LocalStorage(root))
    return root


@pytest.fixture(scope="package")
def demo(tmp_path_factory):
    """The demo POS (its fixed businesses, two days), the last day archived and exported in every format,
    as `make demo` does; (storage, {business id: export folder})."""
    root = tmp_path_factory.mktemp("demo-exports")
    build_sqlite(root / "pos.sqlite", DemoSpec(end_date=DEMO_DAY, days=2))
    storage = LocalStorage(root / "store")
    with connect(f"sqlite:///{root / 'pos.sqlite'}") as reader:
        businesses = list_businesses(reader)
        save_businesses(storage, businesses)
        active = [b for b in businesses if b.is_active]
        for business in active:
            now = day_window(DEMO_DAY, business.timezone).end + dt.timedelta(hours=1)
            for dataset in DATASETS.values():
                archive_business_day(reader, storage, dataset, business, DEMO_DAY, now=now)
    folders = {}
    for business in active:
        period = period_for("daily", DEMO_DAY.isoformat())
        folder, _ = export_period(storage, business, period, list(DATASETS), list(FORMATS))
        folders[business.id] = storage.path(folder)
    return storage, folders
