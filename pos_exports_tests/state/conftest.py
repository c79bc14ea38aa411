"""The state database's tests use the delivery tests' databases (SQLite and PostgreSQL)."""

from pos_exports_tests.delivery.conftest import state_url  # noqa: F401 (a fixture)
