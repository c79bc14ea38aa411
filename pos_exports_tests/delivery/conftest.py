"""Fixtures of the delivery tests: a state database on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from pos_exports.delivery import state


@pytest.fixture(scope="session")
def delivery_pg_url(pg_server_url) -> str:
    """The session's PostgreSQL server (see the root conftest)."""
    return pg_server_url


def _fresh_pg_database(server_url: str) -> str:
    import psycopg2

    name = f"delivery_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg2", path=f"/{name}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path) -> str:
    """A fresh, empty state database URL on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return _fresh_pg_database(request.getfixturevalue("delivery_pg_url"))


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
