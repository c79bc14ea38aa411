"""The datasets a delivery went without (`deliveries.missing`), and the archive index by (dataset, day).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("missing", sa.JSON(), nullable=True))
    op.create_index("archive_index_by_day", "archive_index", ["dataset", "day", "business_id"])


def downgrade() -> None:
    raise NotImplementedError("the state database is never downgraded (restore a backup instead)")
