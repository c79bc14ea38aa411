"""Alembic environment of the state database: always run from `pos_exports.state.migrate`, which hands
over the connection (no alembic.ini, no URL here, so no secret ever passes through Alembic's configuration)."""

from __future__ import annotations

from alembic import context

from pos_exports.state import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
