"""Where things are: the interface points of DESIGN.md, read from the environment."""

from __future__ import annotations

import os
from pathlib import Path


def project_home() -> Path:
    """The project folder: `POS_EXPORTS_HOME`, else the checkout this package lives in, else the cwd."""
    if env := os.environ.get("POS_EXPORTS_HOME"):
        return Path(env).resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists():
        return checkout
    return Path.cwd()


def demo_database_path() -> Path:
    return project_home() / "var" / "demo" / "pos_demo.sqlite"


def database_url() -> str:
    """`POS_DATABASE_URL`, or the embedded demo SQLite database (created on first use)."""
    return os.environ.get("POS_DATABASE_URL") or f"sqlite:///{demo_database_path()}"


def storage_root() -> str:
    """`POS_EXPORTS_STORAGE`: a local folder (default `var/exports`) or `s3://bucket/prefix`."""
    return os.environ.get("POS_EXPORTS_STORAGE") or str(project_home() / "var" / "exports")


def archive_start_date() -> str:
    """First partition of the daily archive (`POS_EXPORTS_START_DATE`, YYYY-MM-DD)."""
    return os.environ.get("POS_EXPORTS_START_DATE", "2025-01-01")
