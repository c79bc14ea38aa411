"""The state database's Alembic migrations: what they build equals the model, and databases of today upgrade."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pos_exports import state
from pos_exports.core.clock import utc_now
from pos_exports.state.migrations import schema_0001


def _revision(eng: sa.Engine) -> str | None:
    with eng.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _differences(eng: sa.Engine) -> list:
    with eng.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), state.metadata)


def _old_deliveries(eng: sa.Engine, table, rows: dict[str, dict]) -> None:
    """Ledger rows of one delivery written as an older version did: recipient -> the columns that differ."""
    base = {"subscription_id": 1, "business_id": 1, "period_kind": "daily", "period_key": "2026-11-29"}
    base |= {"attempts": 2, "created_at": dt.datetime(2026, 11, 30, 7, tzinfo=dt.UTC)}
    with eng.begin() as conn:
        conn.execute(table.insert(), [{**base, "recipient": r, **values} for r, values in rows.items()])


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


def test_revision_0004_types_the_errors_of_a_database_at_0003(state_url):
    """A database at 0003 holding failed rows whose kind was only a `temporary: ` prefix: the upgrade keeps every
    row and its text, and types each failed row's error (transient from the prefix, permanent otherwise)."""
    eng = sa.create_engine(state_url.replace("postgresql://", "postgresql+psycopg2://"))
    with eng.begin() as conn:
        command.upgrade(state._alembic(conn), "0003")
    rows = {  # recipient: (status, error)
        "a@x.com": ("failed", "temporary: 451 4.3.0 try later"),
        "b@x.com": ("failed", "rejected: 550 5.1.1 no such user"),
        "c@x.com": ("failed", "ArchiveMissing: sales 2026-11-29"),
        "d@x.com": ("failed", "gave up after 5 attempts: temporary: 421 busy"),
        "e@x.com": ("emailed", None),
        "f@x.com": ("unknown", "unknown: the connection dropped after DATA"),
        "g@x.com": ("skipped", "skipped: no data in the period (only_if_data)"),
    }
    _old_deliveries(eng, schema_0001.deliveries, {r: {"status": s, "error": e} for r, (s, e) in rows.items()})
    assert _revision(eng) == "0003"
    assert state.migrate(eng) == "upgraded"
    assert _revision(eng) == state.head_revision() and _differences(eng) == []
    with eng.connect() as conn:
        found = {r.recipient: (r.status, r.error, r.error_kind) for r in conn.execute(sa.select(state.deliveries))}
    kinds = {"a@x.com": "transient", "b@x.com": "permanent", "c@x.com": "permanent", "d@x.com": "permanent"}
    assert found == {r: (status, error, kinds.get(r)) for r, (status, error) in rows.items()}
    from pos_exports.delivery import ledger

    assert [r["recipient"] for r in ledger.retryable(eng, max_attempts=5)] == ["a@x.com"]
    eng.dispose()


def test_revision_0006_flags_the_refused_recipients_of_a_database_at_0004(state_url):
    """A database at 0004 whose refused recipients were known only by a `rejected: ` prefix of their error: the
    upgrade keeps every row and its text and sets `rejected` on exactly the failed ones with that prefix, and
    the ledger still keeps them from a re-run unless asked (the text is no longer read)."""
    from pos_exports.delivery import ledger

    eng = sa.create_engine(state_url.replace("postgresql://", "postgresql+psycopg2://"))
    with eng.begin() as conn:
        command.upgrade(state._alembic(conn), "0004")
    now = dt.datetime(2026, 11, 30, 7, tzinfo=dt.UTC)
    rows = {  # recipient: (status, error, error_kind)
        "a@x.com": ("failed", "rejected: 550 5.1.1 no such user", "permanent"),
        "b@x.com": ("failed", "temporary: 451 4.3.0 try later", "transient"),
        "c@x.com": ("failed", "failed: 554 5.7.1 message refused", "permanent"),
        "d@x.com": ("failed", "render exploded: rejected: 550 in a quoted reply", "permanent"),
        "e@x.com": ("emailed", None, None),
        "f@x.com": ("skipped", "rejected: not a failure, so not a refusal", None),
    }
    deliveries_0004 = sa.table(
        "deliveries",
        *(sa.column(c) for c in ("subscription_id", "business_id", "period_kind", "period_key")),
        *(sa.column(c) for c in ("recipient", "status", "error", "error_kind", "attempts", "created_at")),
    )
    columns = ("status", "error", "error_kind")
    _old_deliveries(eng, deliveries_0004, {r: dict(zip(columns, v, strict=True)) for r, v in rows.items()})
    assert _revision(eng) == "0004"
    assert state.migrate(eng) == "upgraded"
    assert _revision(eng) == state.head_revision() and _differences(eng) == []
    with eng.connect() as conn:
        found = {
            r.recipient: (r.status, r.error, r.error_kind, r.rejected)
            for r in conn.execute(sa.select(state.deliveries))
        }
    assert found == {r: (*values, r == "a@x.com") for r, values in rows.items()}
    assert state.migrate(eng) == "current"  # idempotent
    reopened = ledger.open_rows(eng, 1, 1, "daily", "2026-11-29", list(rows), "run-2", now=now)
    assert ledger.pending_recipients(reopened, now=now) == ["b@x.com", "c@x.com", "d@x.com"]
    assert ledger.pending_recipients(reopened, include_rejected=True, now=now) == [
        "a@x.com",
        "b@x.com",
        "c@x.com",
        "d@x.com",
    ]
    eng.dispose()


def test_revision_0005_adds_the_api_tokens_to_a_database_at_0004_with_its_rows(state_url):
    """A database at 0004 with a subscription and ledger rows: 0005 adds an empty `api_tokens` and changes no row;
    at head the tokens work (created, authenticated, stamped, revoked) beside the old rows."""
    from pos_exports.operations import tokens

    eng = sa.create_engine(state_url.replace("postgresql://", "postgresql+psycopg2://"))
    with eng.begin() as conn:
        command.upgrade(state._alembic(conn), "0004")
    now = dt.datetime(2026, 11, 30, 7, tzinfo=dt.UTC)
    with eng.begin() as conn:
        conn.execute(
            schema_0001.subscriptions.insert().values(
                business_id=1, name="Daily", datasets=["sales"], formats=["csv"], frequency="daily", hour=7,
                minute=0, recipients=["owner@shop.example", "b@x.com"], subject_template="s", message_template="m",
                filters={}, only_if_data=False, is_active=True, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    deliveries_0004 = sa.table(
        "deliveries",
        *(sa.column(c) for c in ("subscription_id", "business_id", "period_kind", "period_key", "recipient")),
        *(sa.column(c) for c in ("status", "error", "error_kind", "attempts", "created_at", "message_id")),
    )
    _old_deliveries(
        eng,
        deliveries_0004,
        {
            "owner@shop.example": {"status": "emailed", "error": None, "error_kind": None, "message_id": "<m@x>"},
            "b@x.com": {
                "status": "failed",
                "error": "temporary: 451 later",
                "error_kind": "transient",
                "message_id": None,
            },
        },
    )

    def rows() -> dict[str, list]:
        with eng.connect() as conn:
            return {
                name: [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY id")).mappings()]
                for name in ("subscriptions", "deliveries")
            }

    before = rows()
    assert len(before["subscriptions"]) == 1 and len(before["deliveries"]) == 2
    with eng.begin() as conn:
        command.upgrade(state._alembic(conn), "0005")
    assert _revision(eng) == "0005"
    assert rows() == before
    with eng.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("api_tokens")}
        assert conn.execute(sa.text("SELECT COUNT(*) FROM api_tokens")).scalar() == 0
    assert columns == {c.name for c in state.api_tokens.columns}
    assert state.migrate(eng) == "upgraded" and _differences(eng) == []
    token, secret = tokens.create(eng, 1, read_only=True, now=utc_now())
    used = tokens.authenticate(eng, secret, now=utc_now())
    assert used is not None and used.read_only and used.business_id == 1 and used.last_used_at is not None
    assert tokens.revoke(eng, token.id, now=utc_now()) and tokens.authenticate(eng, secret, now=utc_now()) is None
    after = rows()
    assert after["subscriptions"] == before["subscriptions"]
    assert [(r["recipient"], r["status"], r["error"], r["message_id"]) for r in after["deliveries"]] == [
        (r["recipient"], r["status"], r["error"], r["message_id"]) for r in before["deliveries"]
    ]  # 0006 adds its `rejected` flag beside them
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


KILLER = """
import os, signal, sys
import pytest
import sqlalchemy as sa
from pos_exports import state
eng = sa.create_engine(sys.argv[1])
@sa.event.listens_for(eng, "after_cursor_execute")
def kill(conn, cursor, statement, *args):
    if " ".join(statement.split()).startswith(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 right after this statement of the migration ran
state.migrate(eng)
"""


@pytest.mark.parametrize(
    "after",
    [
        "ALTER TABLE deliveries ADD COLUMN error_kind",  # the column added, nothing typed, revision 0003
        "UPDATE deliveries SET error_kind",  # half the rows typed
        "UPDATE alembic_version SET version_num='0004'",  # everything done but the commit
    ],
)
def test_a_sqlite_migration_killed_midway_is_done_whole_by_the_next_start(tmp_path, after):
    """kill -9 during the upgrade from 0003 leaves the database as it was (SQLite runs its DDL inside the
    migration's transaction), so the next process to start upgrades it with every row, instead of refusing it
    for a column that is already there."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'state.db'}"
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        command.upgrade(state._alembic(conn), "0003")
        for recipient, error in (("a@x.com", "temporary: 451 later"), ("b@x.com", "rejected: 550 no such user")):
            conn.execute(
                schema_0001.deliveries.insert().values(
                    subscription_id=1,
                    business_id=1,
                    period_kind="daily",
                    period_key="2026-11-29",
                    recipient=recipient,
                    status="failed",
                    error=error,
                    attempts=1,
                    created_at=dt.datetime(2026, 11, 30, 7, tzinfo=dt.UTC),
                )
            )
    killed = subprocess.run([sys.executable, "-c", KILLER, url, after], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr  # it did die at that statement
    assert _revision(eng) == "0003"
    with eng.connect() as conn:
        assert "error_kind" not in {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
    eng.dispose()

    again = state.engine(url)  # the next start: migrated on first use
    assert _revision(again) == state.head_revision() and _differences(again) == []
    with again.connect() as conn:
        kinds = dict(conn.execute(sa.select(state.deliveries.c.recipient, state.deliveries.c.error_kind)).all())
    assert kinds == {"a@x.com": "transient", "b@x.com": "permanent"}
    again.dispose()
