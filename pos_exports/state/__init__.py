"""The project's state database: subscriptions, notification settings and the delivery ledger.

Its schema changes through Alembic migrations (`pos_exports/state/migrations/`), applied automatically
by `migrate` when a process first uses the database.

`POS_EXPORTS_STATE_URL` (SQLAlchemy URL): SQLite under the Dagster home by default
(`$DAGSTER_HOME/pos_exports_state.db`), PostgreSQL in production (`postgresql://...`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from pos_exports import config
from pos_exports.core.clock import utc_now
from pos_exports.redact import needs_encoding, redact_url, scrub
from pos_exports.state.migrations import schema_0001

STATE_URL_ENV = "POS_EXPORTS_STATE_URL"
MIGRATIONS = str(resources.files("pos_exports.state") / "migrations")  # Alembic's script location


class StateDatabaseError(sa.exc.SQLAlchemyError):
    """The state database cannot be used (bad URL, unreachable); the message never shows the password."""


metadata = sa.MetaData()

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("business_id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("datasets", sa.JSON, nullable=False),  # ["sales", "customers"]
    sa.Column("formats", sa.JSON, nullable=False),  # ["xlsx", "pdf"]
    sa.Column("frequency", sa.Text, nullable=False),  # daily | weekly | monthly
    sa.Column("hour", sa.Integer, nullable=False),
    sa.Column("minute", sa.Integer, nullable=False),
    sa.Column("day_of_week", sa.Integer),  # weekly: 0 = Monday .. 6 = Sunday
    sa.Column("day_of_month", sa.Text),  # monthly: "1".."28" or "last"
    sa.Column("nth_weekday", sa.Text),  # monthly alternative: "2nd tuesday", "last friday"
    sa.Column("timezone", sa.Text),  # NULL: the business's own zone
    sa.Column("recipients", sa.JSON, nullable=False),
    sa.Column("subject_template", sa.Text, nullable=False),
    sa.Column("message_template", sa.Text, nullable=False),
    sa.Column("filters", sa.JSON, nullable=False),
    sa.Column("only_if_data", sa.Boolean, nullable=False, default=False),
    sa.Column("is_active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("business_id", "name", name="subscriptions_business_name"),
    sqlite_autoincrement=True,  # never reuse a removed subscription's id (the ledger keys on it)
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

# One row per (subscription, period, recipient); statuses in `pos_exports.delivery.ledger`.
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
    sa.Column("files", sa.JSON),  # [{"name", "dataset", "format", "bytes", "sha256", "uri"}]
    sa.Column("bytes", sa.BigInteger),
    # What the subscription asks for but the delivery could not include: [{"dataset", "day", "reason"}]
    # (a snapshot never captured: it will never exist, so the period is delivered without it).
    sa.Column("missing", sa.JSON),
    sa.Column("error", sa.Text),
    # A failed row's kind of error (`core.errors.ErrorKind`: transient | permanent; NULL unless failed): what the
    # retry sensor, the alerts and the statistics decide by (the error text is for people).
    sa.Column("error_kind", sa.Text),
    # The server refused this recipient for good (5xx to RCPT): a failed row not sent again unless asked
    # (`ledger.is_sendable`, `include_rejected`). Its error reads `rejected: ...` for people; this flag decides.
    sa.Column("rejected", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("traceback", sa.Text),
    sa.Column("run_id", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("emailed_at", sa.DateTime(timezone=True)),
    # The claim before the SMTP transaction: when, and which process ("host pid") holds it.
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("claimant", sa.Text),
    sa.UniqueConstraint("subscription_id", "period_key", "recipient", name="deliveries_once"),
    sqlite_autoincrement=True,
)


# Notifications (failure alerts, success notices, weekly summaries): queued first, then sent, so an
# alert whose own sending fails stays `pending` and is retried instead of being lost.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.Text, nullable=False),  # failure | success | summary
    sa.Column("business_id", sa.BigInteger),
    sa.Column("recipients", sa.JSON, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # pending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sqlite_autoincrement=True,
)

# Each failed run is alerted once, whichever sensor sees it first (its alerts are queued in the same
# transaction as this row).
alerted_runs = sa.Table(
    "alerted_runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=False),
)


# What was reported once (a lost snapshot, a subscription that cannot be evaluated), by key, so that
# a sensor evaluated every few minutes tells the data team once, not at every tick.
reported = sa.Table(
    "reported",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
)


# What the archive holds, one row per archived business-day: a cache of the manifests on storage, written
# right after each manifest (never before), so it may lag storage but never claims more than it holds.
# Coverage, catch-up and readiness read it instead of listing storage; `pos-exports archive reindex`
# rebuilds it from the manifests.
archive_index = sa.Table(
    "archive_index",
    metadata,
    sa.Column("dataset", sa.Text, primary_key=True),
    sa.Column("business_id", sa.BigInteger, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("generation", sa.Text),  # None: the first, flat layout
    sa.Column("kind", sa.Text),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("manifest_sha256", sa.Text, nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("layout", sa.Text),  # folders | delta (None: written before the Delta layout existed = folders)
    sa.Column("versions", sa.JSON),  # delta: {table: the Delta version holding the business-day}
    sa.Column("totals", sa.JSON),  # {table: {"rows": n, "sums": {column: "1.23"}}}
    # Coverage counts a day's businesses per (dataset, day): a covering index for that range scan (the
    # primary key leads with business_id after the dataset).
    sa.Index("archive_index_by_day", "dataset", "day", "business_id"),
)


# Tokens of the HTTP API (`pos_exports.service`): only the SHA-256 of the secret is stored (it is shown once, at
# creation). `business_id` NULL: a data-team token, acting on any business.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("token_sha256", sa.Text, nullable=False, unique=True),
    sa.Column("business_id", sa.BigInteger),
    sa.Column("read_only", sa.Boolean, nullable=False, default=False),
    sa.Column("label", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sqlite_autoincrement=True,
)


def state_url() -> str:
    if url := config.settings().state_url:
        return url
    home = Path(config.settings().dagster_home or config.project_home() / "var" / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'pos_exports_state.db'}"


def engine(url: str | None = None) -> sa.Engine:
    """The state database engine (`url`, else `POS_EXPORTS_STATE_URL`), its tables created on first use."""
    return _engine(url or state_url())


# Facts fixed at the first deployment and kept afterwards (`first_partition`: the archive calendar's start).
deployment = sa.Table(
    "deployment",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)


def first_partition(default: dt.date, eng: sa.Engine | None = None) -> dt.date:
    """The archive's first partition as recorded at the first deployment; records `default` if none is."""
    eng = eng or engine()
    query = sa.select(deployment.c.value).where(deployment.c.name == "first_partition")
    with eng.connect() as conn:
        value = conn.execute(query).scalar()
    if value is None:
        try:
            with eng.begin() as conn:
                conn.execute(
                    sa.insert(deployment).values(
                        name="first_partition", value=default.isoformat(), recorded_at=utc_now()
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another process recorded it first: its date is the one every process uses
        with eng.connect() as conn:
            value = conn.execute(query).scalar_one()
    return dt.date.fromisoformat(value)


def archive_start(today: dt.date, eng: sa.Engine | None = None) -> dt.date:
    """First partition of the daily archive: `POS_EXPORTS_START_DATE`, else the start of the POS's retention
    window on `today` at the first deployment, recorded in the state database so that every later load of the
    code location (any process, any day) has the same partitions."""
    s = config.settings()
    if s.start_date:
        return s.start_date
    return first_partition(config.retention_window_start(today, s.retention_days), eng)


@lru_cache(maxsize=8)
def _engine(url: str) -> sa.Engine:
    shown = redact_url(url)
    if needs_encoding(url):
        raise StateDatabaseError(f"{STATE_URL_ENV} {shown}: the user name or password {config.ENCODE_HINT}")
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    try:
        # SQLite: wait for another process's write (a migration, a ledger claim) rather than fail after 5 s
        eng = sa.create_engine(
            url, future=True, **({"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {})
        )
    except (sa.exc.ArgumentError, ValueError) as exc:  # SQLAlchemy's parse error quotes the whole URL
        raise StateDatabaseError(f"{STATE_URL_ENV} {shown} is not a usable SQLAlchemy URL: {scrub(exc)}") from None
    except ImportError as exc:
        raise StateDatabaseError(f"{STATE_URL_ENV} {shown}: the driver is not installed: {scrub(exc)}") from None
    try:
        for attempt in range(3):
            try:
                migrate(eng)
                break
            except sa.exc.DBAPIError:  # another process (webserver, daemon) migrated it at the same moment
                if attempt == 2:
                    raise
    except sa.exc.SQLAlchemyError as exc:
        detail = scrub(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StateDatabaseError(
            f"cannot use the state database {shown}: {detail[0] if detail else type(exc).__name__}"
        ) from None
    return eng


def _alembic(conn: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["connection"] = conn
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The latest migration (`pos_exports/state/migrations/versions/`)."""
    return ScriptDirectory(MIGRATIONS).get_current_head()


def migrate(eng: sa.Engine) -> str:
    """Bring the state database to the latest migration, in one transaction; returns what it did.

    Idempotent and run by every process on first use. An empty database gets the current tables and is
    stamped as migrated (what the migrations would build, checked by a test); a database made before
    migrations existed is first brought to revision 0001 (`_before_migrations`), then upgraded like any other.
    """
    with _migration_lock(eng), _one_transaction(eng) as conn:
        if conn.dialect.name == "postgresql":  # one migrating process at a time, the others wait
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(72630001)"))
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head_revision():
            return "current"
        cfg = _alembic(conn)
        if current is None and not sa.inspect(conn).has_table("deliveries"):
            metadata.create_all(conn)
            command.stamp(cfg, "head")
            return "created"
        if current is None:
            _before_migrations(conn)
            command.stamp(cfg, "0001")
        command.upgrade(cfg, "head")
        return "upgraded"


@contextlib.contextmanager
def _one_transaction(eng: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that holds the migration's DDL too. SQLite's Python driver opens its implicit transaction
    only before INSERT/UPDATE/DELETE and runs an ALTER or CREATE on its own, so a process killed midway would
    leave a column added by a revision not recorded, and every later start would refuse the database
    ("duplicate column"): there the transaction is opened explicitly (BEGIN IMMEDIATE) and the driver's own
    handling restored before it ends."""
    with eng.begin() as conn:
        if conn.dialect.name != "sqlite":
            yield conn
            return
        driver = conn.connection.driver_connection
        level = driver.isolation_level
        driver.isolation_level = None  # no implicit transaction: ours is the only one
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
        finally:
            driver.isolation_level = level  # a pooled connection behaves as before; COMMIT/ROLLBACK follow


@contextlib.contextmanager
def _migration_lock(eng: sa.Engine) -> Iterator[None]:
    """SQLite: an exclusive lock file beside the database for the time of a migration (its CREATE TABLEs are
    visible to other processes before the version is stamped, so they must not look meanwhile)."""
    path = eng.url.database if eng.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _before_migrations(conn: sa.Connection) -> None:
    """A state database made before migrations: bring it to revision 0001 (what `_upgrade` used to do)."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
    for column in ("claimed_at", "claimant"):
        if column not in have:
            kind = schema_0001.metadata.tables["deliveries"].c[column].type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE deliveries ADD COLUMN {column} {kind}"))
    # Earlier versions recorded an only_if_data skip as `failed` with a `skipped: ...` error.
    old = schema_0001.metadata.tables["deliveries"]
    conn.execute(
        old.update().where(old.c.status == "failed", old.c.error.startswith("skipped:")).values(status="skipped")
    )
    schema_0001.metadata.create_all(conn)  # the tables it lacks, as they were at 0001 (alerts, archive_index, ...)
