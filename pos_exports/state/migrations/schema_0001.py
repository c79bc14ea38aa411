"""The state database's tables as they shipped on 2026-12-01 (revision 0001), frozen here: revision 0001 creates
them, and a database made before migrations gets the ones it lacks. Never edit this file; change the schema
with a new revision (and `pos_exports/state/__init__.py`, the current model)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("business_id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("datasets", sa.JSON, nullable=False),
    sa.Column("formats", sa.JSON, nullable=False),
    sa.Column("frequency", sa.Text, nullable=False),
    sa.Column("hour", sa.Integer, nullable=False),
    sa.Column("minute", sa.Integer, nullable=False),
    sa.Column("day_of_week", sa.Integer),
    sa.Column("day_of_month", sa.Text),
    sa.Column("nth_weekday", sa.Text),
    sa.Column("timezone", sa.Text),
    sa.Column("recipients", sa.JSON, nullable=False),
    sa.Column("subject_template", sa.Text, nullable=False),
    sa.Column("message_template", sa.Text, nullable=False),
    sa.Column("filters", sa.JSON, nullable=False),
    sa.Column("only_if_data", sa.Boolean, nullable=False, default=False),
    sa.Column("is_active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("business_id", "name", name="subscriptions_business_name"),
    sqlite_autoincrement=True,
)

notification_settings = sa.Table(
    "notification_settings",
    metadata,
    sa.Column("business_id", sa.BigInteger, primary_key=True),
    sa.Column("notify_success", sa.Boolean, nullable=False, default=False),
    sa.Column("notify_failure", sa.Boolean, nullable=False, default=True),
    sa.Column("default_recipients", sa.JSON, nullable=False),
    sa.Column("failure_recipients", sa.JSON, nullable=False),
    sa.Column("from_name", sa.Text, nullable=False),
    sa.Column("reply_to", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscription_id", sa.Integer, nullable=False),
    sa.Column("business_id", sa.BigInteger, nullable=False),
    sa.Column("period_kind", sa.Text, nullable=False),
    sa.Column("period_key", sa.Text, nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("smtp_response", sa.Text),
    sa.Column("message_id", sa.Text),
    sa.Column("files", sa.JSON),
    sa.Column("bytes", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Column("traceback", sa.Text),
    sa.Column("run_id", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("emailed_at", sa.DateTime(timezone=True)),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("claimant", sa.Text),
    sa.UniqueConstraint("subscription_id", "period_key", "recipient", name="deliveries_once"),
    sqlite_autoincrement=True,
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("business_id", sa.BigInteger),
    sa.Column("recipients", sa.JSON, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sqlite_autoincrement=True,
)

alerted_runs = sa.Table(
    "alerted_runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=False),
)

reported = sa.Table(
    "reported",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
)

archive_index = sa.Table(
    "archive_index",
    metadata,
    sa.Column("dataset", sa.Text, primary_key=True),
    sa.Column("business_id", sa.BigInteger, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("generation", sa.Text),
    sa.Column("kind", sa.Text),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("manifest_sha256", sa.Text, nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
)

deployment = sa.Table(
    "deployment",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)
