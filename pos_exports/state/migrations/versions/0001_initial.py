"""The state database as it shipped on 2026-12-01 (before migrations: `create_all` and a hand-written upgrade).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from pos_exports.state.migrations import schema_0001

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema_0001.metadata.create_all(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("the state database is never downgraded (restore a backup instead)")
