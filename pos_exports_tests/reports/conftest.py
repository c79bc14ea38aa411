"""One archive of the report fixture for the whole test session (built with the real archive code)."""

from __future__ import annotations

import pytest

from pos_exports_tests.reports.fixture_data import build_archive


@pytest.fixture(scope="session")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    return build_archive(root / "pos.sqlite", root / "store")


@pytest.fixture(scope="session")
def storage(archive):
    return archive[0]


@pytest.fixture(scope="session")
def accra(archive):
    return archive[1][1]


@pytest.fixture(scope="session")
def new_york(archive):
    return archive[1][2]
