"""Whether the server refused a recipient for good as a column (`deliveries.rejected`), no longer a `rejected: `
prefix of its error text; existing failed rows are back-filled from that prefix.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The prefix earlier versions wrote on a refused recipient's error (and the only thing that kept it from a re-run).
OLD_REJECTED_PREFIX = "rejected: "


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("deliveries")}
    if "rejected" not in columns:  # idempotent: a database whose column exists already keeps it as it is
        with op.batch_alter_table("deliveries") as batch:
            batch.add_column(sa.Column("rejected", sa.Boolean(), nullable=False, server_default=sa.false()))
    deliveries = sa.table(
        "deliveries", sa.column("status", sa.Text), sa.column("error", sa.Text), sa.column("rejected", sa.Boolean)
    )
    refused = sa.func.coalesce(deliveries.c.error, "").startswith(OLD_REJECTED_PREFIX)
    op.execute(deliveries.update().where(deliveries.c.status == "failed", refused).values(rejected=True))


def downgrade() -> None:
    raise NotImplementedError("the state database is never downgraded (restore a backup instead)")
