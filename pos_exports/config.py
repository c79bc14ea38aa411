"""The project's settings: every environment variable it reads, typed and validated as a whole.

`settings()` reads the environment once (per distinct environment: tests that change a variable get
a fresh read) and validates every variable together, so a bad value stops the CLI, the code location
and each run before any work, with one line per bad variable naming it and what it accepts. The
values of secret-bearing variables (URLs with passwords) are never echoed.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pos_exports.core.urls import ENCODE_HINT, needs_encoding

SECRET = frozenset(
    {
        "POS_DATABASE_URL",
        "POS_EXPORTS_SMTP_URL",
        "POS_EXPORTS_STATE_URL",
        "POS_EXPORTS_LINK_SECRET",
        "POS_EXPORTS_SECRET_KEY",
    }
)
_DB_URLS = "postgresql://user:password@host:port/dbname or sqlite:///path/to/pos.db"


class SettingsError(ValueError):
    """Bad settings: one line per variable, naming it and what it accepts (never a secret's value)."""


def _setting(env: str, default: Any, expects: str, default_text: str | None = None, **constraints: Any) -> Any:
    """A field read from `env`; `expects` and the default are what an error message says it accepts."""
    shown = default_text or ("" if default is None else str(default))
    return Field(
        default,
        validation_alias=env,
        description=f"{expects}{f', default {shown}' if shown else ''}",
        **constraints,
    )


class Settings(BaseSettings):
    """Every environment variable of the project (README: Interface points). Empty counts as unset."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, str_strip_whitespace=True)

    home: Path | None = _setting("POS_EXPORTS_HOME", None, "a folder", "this checkout")
    database_url: str | None = _setting("POS_DATABASE_URL", None, _DB_URLS, "the demo SQLite database")
    storage: str | None = _setting(
        "POS_EXPORTS_STORAGE", None, "a local folder or s3://bucket/prefix", "var/exports under the project home"
    )
    aws_endpoint_url: str | None = _setting(
        "AWS_ENDPOINT_URL", None, "http(s)://host:port of an S3-compatible server", "AWS itself"
    )
    start_date: dt.date | None = _setting(
        "POS_EXPORTS_START_DATE",
        None,
        "a date YYYY-MM-DD",
        "the start of the POS retention window at the first deployment",
    )
    retention_days: int = _setting("POS_RETENTION_DAYS", 90, "a whole number of days, at least 1", ge=1)
    state_url: str | None = _setting(
        "POS_EXPORTS_STATE_URL",
        None,
        "a SQLAlchemy URL postgresql://user:password@host:port/dbname or sqlite:///path/to/state.db",
        "SQLite $DAGSTER_HOME/pos_exports_state.db",
    )
    api_auth_failures_per_minute: int = _setting(
        "POS_EXPORTS_API_AUTH_FAILURES_PER_MINUTE", 10, "a whole number, at least 1 (then 429)", ge=1
    )
    api_presign_seconds: int = _setting(
        "POS_EXPORTS_API_PRESIGN_SECONDS", 300, "seconds an S3 download link lives, 1-3600", ge=1, le=3600
    )
    dagster_home: Path | None = _setting("DAGSTER_HOME", None, "a folder", "var/dagster_home under the project home")
    smtp_url: str | None = _setting(
        "POS_EXPORTS_SMTP_URL",
        None,
        "smtp://, smtp+starttls:// or smtps://user:password@host:port, options starttls, timeout, from, cafile",
        "none (.eml files in the outbox)",
    )
    data_team_email: Annotated[tuple[str, ...], NoDecode] = _setting(
        "POS_EXPORTS_DATA_TEAM_EMAIL", (), "comma-separated email addresses", "none"
    )
    email_max_mb: float = _setting(
        "POS_EXPORTS_EMAIL_MAX_MB", 20, "a positive number of megabytes", gt=0, allow_inf_nan=False
    )
    export_max_age_days: int = _setting(
        "POS_EXPORTS_EXPORT_MAX_AGE_DAYS", 30, "a whole number of days, at least 1", ge=1
    )
    retry_delay_seconds: float = _setting(
        "POS_EXPORTS_RETRY_DELAY_SECONDS", 15, "a number of seconds, 0 or more", ge=0, allow_inf_nan=False
    )
    catchup_max_runs: int = _setting("POS_EXPORTS_CATCHUP_MAX_RUNS", 3, "a whole number, 0 or more", ge=0)
    delivery_max_attempts: int = _setting(
        "POS_EXPORTS_DELIVERY_MAX_ATTEMPTS", 5, "a whole number of attempts, at least 1", ge=1
    )
    max_runs_per_tick: int = _setting(
        "POS_EXPORTS_MAX_RUNS_PER_TICK", 50, "a whole number of runs per tick, at least 1", ge=1
    )
    delivery_batch_size: int = _setting(
        "POS_EXPORTS_DELIVERY_BATCH_SIZE", 100, "a whole number of deliveries per batch run, at least 1", ge=1
    )
    archive_layout: Literal["folders", "delta"] = _setting(
        "POS_EXPORTS_ARCHIVE_LAYOUT",
        "delta",
        "folders (a folder per business-day) or delta (one Delta Lake table per archived table)",
    )
    shards: int = _setting(
        "POS_EXPORTS_SHARDS", 1, "a whole number of shards (runs per archive/export partition), at least 1", ge=1
    )

    link_secret: SecretStr | None = _setting(
        "POS_EXPORTS_LINK_SECRET",
        None,
        "a random secret of at least 32 characters (openssl rand -hex 32) that signs the emails' links",
        "none",
        min_length=32,
    )
    public_url: str | None = _setting(
        "POS_EXPORTS_PUBLIC_URL",
        None,
        "the https:// address of the service (pos_exports.service) as recipients reach it",
        "none: emails carry no download or one-click unsubscribe link",
    )
    secret_key: SecretStr | None = _setting(
        "POS_EXPORTS_SECRET_KEY",
        None,
        "a random secret of at least 32 characters (openssl rand -hex 32) that encrypts stored secrets "
        "(file passwords, webhook secrets); keep earlier keys after it, comma-separated, while rotating",
        "none: subscriptions cannot hold secrets",
        min_length=32,
    )
    dagster_url: str | None = _setting(
        "POS_EXPORTS_DAGSTER_URL",
        None,
        "the http(s)://host:port of the Dagster webserver that the API's trigger launches runs through",
        "none: the API launches on this machine's Dagster instance (DAGSTER_HOME)",
    )
    link_days: int = _setting(
        "POS_EXPORTS_LINK_DAYS", 30, "a whole number of days, at least 1, that emailed links keep working", ge=1
    )

    @field_validator("start_date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError("is not a date") from None
        return value

    @field_validator("database_url", "state_url", "smtp_url", mode="before")
    @classmethod
    def _encoded(cls, value: Any) -> Any:
        """A password with an unencoded `# / ? @` would be cut (and shown) by every URL parser: say so first."""
        if isinstance(value, str) and needs_encoding(value):
            raise ValueError(f"the user name or password {ENCODE_HINT}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        from pos_exports.core.urls import UrlError, parse_database_url

        if value:
            try:
                parse_database_url(value)
            except UrlError:
                raise ValueError("is not a usable database URL") from None
        return value

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, value: str | None) -> str | None:
        import sqlalchemy as sa

        if value:
            try:
                backend = sa.engine.make_url(value).get_backend_name()
            except (sa.exc.ArgumentError, ValueError):
                raise ValueError("is not a valid SQLAlchemy URL") from None
            if backend not in ("postgresql", "sqlite"):
                raise ValueError("names a database other than PostgreSQL or SQLite")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        from pos_exports.core.urls import SMTP_URL_ENV, mask, parse_smtp_url

        if value:
            try:
                parse_smtp_url(value)
            except ValueError as exc:  # its messages name the problem; drop the (masked) URL they end with
                problem = str(exc).replace(f": {mask(value)}", "").removeprefix(SMTP_URL_ENV).lstrip(": ")
                raise ValueError(problem) from None
        return value

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str | None) -> str | None:
        if value and value.startswith("s3://") and not value[len("s3://") :].partition("/")[0]:
            raise ValueError("names no bucket")
        return value

    @field_validator("aws_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value:
            try:
                parts = urlsplit(value)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError("is not an http(s) URL")
        return value

    @field_validator("dagster_url")
    @classmethod
    def _dagster_url(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value:
            try:
                parts = urlsplit(value)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
            except ValueError:
                ok = False
            if not ok or parts.path.strip("/") or parts.query or parts.fragment or parts.username:
                raise ValueError("is not an http(s)://host:port address (no path, query or credentials)")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        from urllib.parse import urlsplit

        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
                raise ValueError("is not an http(s) address without query")
            if info.data.get("link_secret") is None:  # declared above: validated first
                raise ValueError("needs POS_EXPORTS_LINK_SECRET (at least 32 characters) to sign its links")
        return value.rstrip("/") if value else value

    @field_validator("data_team_email", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        from pos_exports.core.addresses import address_problem

        if isinstance(value, str):
            value = tuple(a.strip() for a in value.split(",") if a.strip())
            for address in value:
                if address_problem(address, public=False) is not None:  # the rule `delivery.email` applies too
                    raise ValueError(f"holds {address!r}, which is not a plain email address")
        return value


ENV_NAMES = tuple(f.validation_alias for f in Settings.model_fields.values())

_PROBLEMS = {
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "float_parsing": "is not a number",
    "finite_number": "is not a finite number",
    "date_parsing": "is not a date",
    "date_from_datetime_parsing": "is not a date",
    "path_type": "is not a path",
    "literal_error": "is not one of the accepted values",
}


def describe_errors(exc: ValidationError) -> str:
    """One line per bad variable: `NAME: 'value' problem (expected ..., default ...)`; secrets not shown."""
    fields = {f.validation_alias: f for f in Settings.model_fields.values()}
    lines = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "settings"
        ctx = error.get("ctx") or {}
        if error["type"] == "value_error":
            problem = str(ctx.get("error", error["msg"]))
        elif error["type"] == "too_short":
            problem = f"is shorter than {ctx.get('min_length')} characters"
        elif error["type"] in ("greater_than_equal", "greater_than"):
            problem = f"must be {'at least' if 'ge' in ctx else 'more than'} {ctx.get('ge', ctx.get('gt')):g}"
        else:
            problem = _PROBLEMS.get(error["type"], error["msg"][:1].lower() + error["msg"][1:])
        value = "" if name in SECRET else f"{error['input']!r} "
        expects = fields[name].description if name in fields else ""
        lines.append(f"{name}: {value}{problem}" + (f" (expected {expects})" if expects else ""))
    return "\n".join(lines)


@lru_cache(maxsize=8)
def _load(environment: tuple[str | None, ...]) -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


def default(field: str) -> Any:
    """A setting's default (for modules that name it in signatures and help texts)."""
    return Settings.model_fields[field].default


def settings() -> Settings:
    """The validated settings; SettingsError (one line per bad variable) if any variable is bad."""
    return _load(tuple(os.environ.get(name) for name in ENV_NAMES))


reset = _load.cache_clear  # for tests that want a fresh read of an unchanged environment


def project_home() -> Path:
    """The project folder: `POS_EXPORTS_HOME`, else the checkout this package lives in, else the cwd."""
    if env := settings().home:
        return env.resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists():
        return checkout
    return Path.cwd()


def demo_database_path() -> Path:
    return project_home() / "var" / "demo" / "pos_demo.sqlite"


def database_url() -> str:
    """`POS_DATABASE_URL`, or the embedded demo SQLite database (created on first use)."""
    return settings().database_url or f"sqlite:///{demo_database_path()}"


def storage_root() -> str:
    """`POS_EXPORTS_STORAGE`: a local folder (default `var/exports`) or `s3://bucket/prefix`."""
    return settings().storage or str(project_home() / "var" / "exports")


def retention_window_start(today: dt.date, retention_days: int) -> dt.date:
    """The oldest day the POS still holds on `today` (it keeps `retention_days` days, today included)."""
    return today - dt.timedelta(days=retention_days - 1)
