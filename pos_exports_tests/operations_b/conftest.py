"""Fixtures of the operations tests: a SQLite state database, a settable ledger clock, the archive and SMTP."""

from __future__ import annotations

import datetime as dt

import pytest

from pos_exports.delivery import ledger
from pos_exports.delivery.state import engine
from pos_exports_tests.delivery_email.conftest import smtp_server  # noqa: F401 (a fixture)
from pos_exports_tests.exports.conftest import archived_root  # noqa: F401 (a fixture)

UTC = dt.UTC


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A fresh SQLite state database, also the one `engine()` (Dagster runs) and the CLI use."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", url)
    return engine(url)


class Clock:
    """The ledger's clock, set by the test: every ledger timestamp is `clock.now`."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def set(self, now: dt.datetime) -> None:
        self.now = now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock(dt.datetime(2025, 3, 10, 7, 0, tzinfo=UTC))
    monkeypatch.setattr(ledger, "_now", lambda: c.now)
    return c
