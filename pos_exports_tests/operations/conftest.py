"""Fixtures of the operations and wiring tests: a state database, a settable ledger clock, archives made by the real
archive code or bare reconciliation markers."""

import datetime as dt
import json
import shutil

import pytest

from pos_exports.archive import index
from pos_exports.archive.extract import archive_business_day, marker_key
from pos_exports.archive.read import save_businesses
from pos_exports.archive.tables import DATASETS
from pos_exports.periods import day_window
from pos_exports.source.database import Business, connect, list_businesses
from pos_exports.state import engine
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.exports.conftest import archived_root  # noqa: F401 (a fixture)
from pos_exports_tests.fixtures import load_sqlite

UTC = dt.UTC
# 3..10 March 2025: every dataset of every active business, each captured 1 h after its day ended.
ARCHIVED_DAYS = [dt.date(2025, 3, 3) + dt.timedelta(days=i) for i in range(8)]


def archive_days(url: str, storage: LocalStorage, days: list[dt.date]) -> None:
    with connect(url) as reader:
        businesses = list_businesses(reader)
        save_businesses(storage, businesses)
        for business in (b for b in businesses if b.is_active):
            for day in days:
                for ds in DATASETS.values():
                    now = day_window(day, business.timezone).end + dt.timedelta(hours=1)
                    archive_business_day(reader, storage, ds, business, day, now=now)


@pytest.fixture(scope="session")
def base_archive(tmp_path_factory):
    """(POS database URL, storage root) of the real archive of ARCHIVED_DAYS; copy it before changing it."""
    base = tmp_path_factory.mktemp("automation")
    url = load_sqlite(base / "pos.sqlite")
    root = base / "store"
    archive_days(url, LocalStorage(root), ARCHIVED_DAYS)
    return url, root


@pytest.fixture
def archive_copy(base_archive, tmp_path):
    """A private copy of the base archive: (POS database URL, storage root)."""
    url, root = base_archive
    mine = tmp_path / "store"
    shutil.copytree(root, mine)
    reindex_all(mine)
    return url, mine


def reindex_all(root) -> None:
    """Index the archive under `root` in the test's state database (after a test changed it on disk)."""
    index.reindex(LocalStorage(root), engine())


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A fresh state database (subscriptions, ledger, alerts) named by POS_EXPORTS_STATE_URL."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", url)
    return engine(url)


MARKER_BUSINESSES = [
    Business(1, "Accra Shop", "Africa/Accra", "GHS", True),
    Business(2, "Tokyo Shop", "Asia/Tokyo", "JPY", True),
    Business(3, "Closed Shop", "UTC", "USD", False),
]


def write_marker(storage: LocalStorage, dataset: str, day: dt.date, business_id: int) -> None:
    """A minimal `_reconciliation.json`: what the archive writes last, once the business-day is reconciled."""
    document = {"dataset": dataset, "date": day.isoformat(), "business_id": business_id, "reconciled": True}
    storage.write_bytes(marker_key(dataset, day, business_id), json.dumps(document).encode())


@pytest.fixture
def marker_archive(tmp_path):
    """A factory: markers for every dataset of the active MARKER_BUSINESSES on `days` (minus `missing`)."""

    def make(days: list[dt.date], missing: set[tuple[str, dt.date, int]] = frozenset()) -> LocalStorage:
        storage = LocalStorage(tmp_path / "markers")
        save_businesses(storage, MARKER_BUSINESSES)
        for day in days:
            for dataset in DATASETS:
                for b in MARKER_BUSINESSES:
                    if b.is_active and (dataset, day, b.id) not in missing:
                        write_marker(storage, dataset, day, b.id)
        index.reindex(storage, engine())
        return storage

    return make


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


class Clock:
    """The time of the test's ledger writes, set by the test: each ledger call is passed `now=clock.now`."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def set(self, now: dt.datetime) -> None:
        self.now = now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture
def clock():
    return Clock(dt.datetime(2025, 3, 10, 7, 0, tzinfo=UTC))
