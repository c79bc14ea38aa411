"""One archive of the report fixture for the whole test session (built with the real archive code)."""

from __future__ import annotations

import pytest

from pos_exports_tests.reports.fixture_data import build_archive


@pytest.fixture(scope="session")
def reports_root(tmp_path_factory):
    return tmp_path_factory.mktemp("reports")


@pytest.fixture(scope="session")
def archive(reports_root):
    return build_archive(reports_root / "pos.sqlite", reports_root / "store")


@pytest.fixture(scope="session")
def pos_sqlite(archive, reports_root):
    """The fixture POS database the archive was made from (for figures computed independently, in SQL)."""
    return reports_root / "pos.sqlite"


@pytest.fixture(scope="session")
def storage(archive):
    return archive[0]


@pytest.fixture(scope="session")
def accra(archive):
    return archive[1][1]


@pytest.fixture(scope="session")
def new_york(archive):
    return archive[1][2]
