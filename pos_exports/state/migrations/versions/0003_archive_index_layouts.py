"""The archive index knows each business-day's layout (folders or Delta tables), the Delta versions that
hold it and its reconciled totals.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archive_index") as batch:
        batch.add_column(sa.Column("layout", sa.Text(), nullable=True))
        batch.add_column(sa.Column("versions", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("totals", sa.JSON(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the state database is never downgraded (restore a backup instead)")
