"""The state database's Alembic migrations: what they build equals the model, and databases of today upgrade."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pos_exports import state
from pos_exports.state.migrations import schema_0001


def _revision(eng: sa.Engine) -> str | None:
    with eng.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _differences(eng: sa.Engine) -> list:
    with eng.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), state.metadata)


def test_the_migrations_build_exactly_the_current_model(state_url):
    """An empty database taken through every migration (not `create_all`) has the model's tables, columns
    and constraints: the shortcut `migrate` takes for an empty database builds the same thing."""
    eng = sa.create_engine(state_url.replace("postgresql://", "postgresql+psycopg2://"))
    with eng.begin() as conn:
        command.upgrade(state._alembic(conn), "head")
    assert _revision(eng) == state.head_revision()
    assert _differences(eng) == []
    assert state.migrate(eng) == "current"  # idempotent
    eng.dispose()


def test_a_new_database_is_created_and_stamped(state_url):
    eng = sa.create_engine(state_url.replace("postgresql://", "postgresql+psycopg2://"))
    assert state.migrate(eng) == "created"
    assert _revision(eng) == state.head_revision() and _differences(eng) == []
    assert state.migrate(eng) == "current"
    eng.dispose()


def test_a_database_as_shipped_today_is_upgraded_with_its_rows(state_url):
    """The schema that shipped before migrations (created by `create_all`, no `alembic_version`), with a
    subscription and a ledger row in it: the first use upgrades it in place and keeps both rows."""
    eng = sa.create_engine(state_url.replace("postgresql://", "postgresql+psycopg2://"))
    schema_0001.metadata.create_all(eng)
    now = dt.datetime(2026, 11, 30, 7, tzinfo=dt.UTC)
    with eng.begin() as conn:
        conn.execute(
            schema_0001.subscriptions.insert().values(
                business_id=1,
                name="Daily",
                datasets=["sales"],
                formats=["csv"],
                frequency="daily",
                hour=7,
                minute=0,
                recipients=["owner@shop.example"],
                subject_template="s",
                message_template="m",
                filters={},
                only_if_data=False,
                is_active=True,
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            schema_0001.deliveries.insert().values(
                subscription_id=1,
                business_id=1,
                period_kind="daily",
                period_key="2026-11-29",
                recipient="owner@shop.example",
                status="emailed",
                attempts=1,
                message_id="<m@x>",
                created_at=now,
            )
        )
    assert _revision(eng) is None
    assert state.migrate(eng) == "upgraded"
    assert _revision(eng) == state.head_revision() and _differences(eng) == []
    with eng.connect() as conn:
        assert conn.execute(sa.select(state.subscriptions.c.name)).scalars().all() == ["Daily"]
        row = conn.execute(sa.select(state.deliveries)).mappings().one()
    assert (row["status"], row["message_id"], row["period_key"]) == ("emailed", "<m@x>", "2026-11-29")
    eng.dispose()


def test_processes_starting_together_migrate_once(tmp_path):
    """Several processes using a new database at the same moment (webserver, daemon, runs) all succeed."""
    import subprocess
    import sys

    url, runs = f"sqlite:///{tmp_path / 'state.db'}", 6
    code = "import sys; from pos_exports import state; state.engine(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, url]) for _ in range(runs)]
    assert [p.wait() for p in procs] == [0] * runs
    eng = sa.create_engine(url)
    assert _revision(eng) == state.head_revision() and _differences(eng) == []
