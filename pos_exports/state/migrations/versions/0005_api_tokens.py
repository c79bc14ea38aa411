"""The HTTP API's tokens (`api_tokens`): the SHA-256 of each secret, its business (NULL: data team), read-only flag.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("api_tokens"):  # idempotent: a database that already has it
        return
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_sha256", sa.Text, nullable=False, unique=True),
        sa.Column("business_id", sa.BigInteger),
        sa.Column("read_only", sa.Boolean, nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    raise NotImplementedError("the state database is never downgraded (restore a backup instead)")
