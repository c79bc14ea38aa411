"""A failed delivery's kind of error as a column (`deliveries.error_kind`: transient | permanent), no longer a
prefix of its error text; existing failed rows are back-filled from that prefix.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The prefix earlier versions wrote on a transient error (and the only thing that made a row retryable).
OLD_TRANSIENT_PREFIX = "temporary: "


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("error_kind", sa.Text(), nullable=True))
    deliveries = sa.table(
        "deliveries", sa.column("status", sa.Text), sa.column("error", sa.Text), sa.column("error_kind", sa.Text)
    )
    transient = sa.func.coalesce(deliveries.c.error, "").startswith(OLD_TRANSIENT_PREFIX)
    failed = deliveries.c.status == "failed"
    op.execute(deliveries.update().where(failed, transient).values(error_kind="transient"))
    op.execute(deliveries.update().where(failed, sa.not_(transient)).values(error_kind="permanent"))


def downgrade() -> None:
    raise NotImplementedError("the state database is never downgraded (restore a backup instead)")
