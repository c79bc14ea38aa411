"""A planted password never leaves the environment: not in Dagster's storage, the UI, the files or the CLI.

The same password (with `#`, `/` and `?`) is planted in POS_DATABASE_URL, POS_EXPORTS_STATE_URL and
POS_EXPORTS_SMTP_URL (percent-encoded, and unencoded for the failing runs) and an AWS secret key in
AWS_SECRET_ACCESS_KEY. After failing and succeeding archive and delivery runs (the CLI as a
subprocess), a failure alert and GraphQL queries of a real code server, every byte written anywhere
is searched for any piece of either secret.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
import zlib
from pathlib import Path
from urllib.parse import quote, urlsplit

import boto3
import dagster as dg
import psycopg2
import pytest
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from pos_exports.defs.alerts import failure_alert_sensor
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports_tests.fixtures import DAY, load_postgres

PROJECT = Path(__file__).resolve().parents[2]
PASSWORD = "Kx9Tq2#Wm4Rz8/Pv6Lb3?Hn5Jd7"
AWS_SECRET = "Aq3Zr7#Bt5Yw1/Cu8Xv4?Dn6Mp2"
# Any piece of either secret: a parser that splits inside a password echoes pieces, not the whole.
PIECES = ("Kx9Tq2", "Wm4Rz8", "Pv6Lb3", "Hn5Jd7", "Aq3Zr7", "Bt5Yw1", "Cu8Xv4", "Dn6Mp2")
ENCODED = quote(PASSWORD, safe="")


def leaks(data: bytes | str) -> list[str]:
    data = data.encode() if isinstance(data, str) else data
    return [p for p in PIECES if p.encode() in data]


def _cells(path: Path) -> list[bytes]:
    """Every cell of every table of a SQLite file, zlib-compressed ones (Dagster's snapshots) inflated."""
    out: list[bytes] = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    data = value if isinstance(value, bytes) else str(value).encode()
                    try:
                        data = zlib.decompress(data)
                    except zlib.error:
                        pass
                    out.append(data)
    finally:
        conn.close()
    return out


def scan_tree(root: Path) -> dict[str, list[str]]:
    """Files under `root` holding a piece of a secret: raw bytes, and SQLite files cell by cell."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = set(leaks(data))
        if data.startswith(b"SQLite format 3"):
            for cell in _cells(path):
                hits.update(leaks(cell))
        if hits:
            found[str(path.relative_to(root))] = sorted(hits)
    return found


def scan_pg(url: str) -> list[str]:
    """Pieces of a secret in any row of any table of a PostgreSQL database."""
    hits: set[str] = set()
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            for (table,) in cur.fetchall():
                cur.execute(f'SELECT * FROM "{table}"')
                for row in cur.fetchall():
                    hits.update(leaks(repr(row)))
    finally:
        conn.close()
    return sorted(hits)


@pytest.fixture
def planted(pg_server_url, new_pg_database):
    """A login role whose password is PASSWORD, a POS database it reads and a state database it owns."""
    role = f"pos_ro_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(pg_server_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (PASSWORD,))
    pos_admin, state_admin = new_pg_database(), new_pg_database()
    load_postgres(pos_admin)
    with admin.cursor() as cur:
        cur.execute(f"ALTER DATABASE {urlsplit(state_admin).path.strip('/')} OWNER TO {role}")
    admin.close()
    for url, sql in (
        (pos_admin, f"GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
        (state_admin, f"ALTER SCHEMA public OWNER TO {role}"),
    ):
        conn = psycopg2.connect(url)
        with conn, conn.cursor() as cur:
            cur.execute(sql)
        conn.close()

    def as_role(admin_url: str, password: str) -> str:
        parts = urlsplit(admin_url)
        netloc = f"{role}:{password}@{parts.netloc.rpartition('@')[2]}"
        return parts._replace(netloc=netloc).geturl()

    return {
        "pos": as_role(pos_admin, ENCODED),
        "pos_raw": as_role(pos_admin, PASSWORD),
        "state": as_role(state_admin, ENCODED),
        "state_raw": as_role(state_admin, PASSWORD),
        "state_admin": state_admin,
    }


def test_planted_secrets_are_found_nowhere(tmp_path, planted, smtp_server, s3_storage_url, monkeypatch):
    home, store = tmp_path / "dagster_home", tmp_path / "store"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
    bucket = s3_storage_url.split("/")[2]
    smtp_url = smtp_server.url(userinfo=f"exports:{ENCODED}@", query="from=exports@pos.example")
    smtp_raw = smtp_server.url(userinfo=f"exports:{PASSWORD}@", query="from=exports@pos.example")
    env = {
        "DAGSTER_HOME": str(home),
        "POS_EXPORTS_HOME": str(tmp_path),
        "POS_EXPORTS_STORAGE": str(store),
        "POS_DATABASE_URL": planted["pos"],
        "POS_EXPORTS_STATE_URL": planted["state"],
        "POS_EXPORTS_SMTP_URL": smtp_url,
        "POS_EXPORTS_DATA_TEAM_EMAIL": "data-team@pos.example",
        "POS_EXPORTS_RETRY_DELAY_SECONDS": "0",
        "AWS_ACCESS_KEY_ID": "AKIAPLANTEDKEYID",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    outputs: list[str] = []

    def cli(*args: str, ok: bool, **overrides: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "pos_exports.cli", *args],
            env={**os.environ, **overrides},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = result.stdout + result.stderr
        outputs.append(output)
        assert (result.returncode == 0) is ok, output
        return output

    # POS database: unencoded password (refused, saying so), unreachable server, then a good run.
    said = cli("archive", "--date", DAY, ok=False, POS_DATABASE_URL=planted["pos_raw"])
    assert "POS_DATABASE_URL" in said and "must be percent-encoded" in said
    unreachable = planted["pos"].split("@")[0] + "@127.0.0.1:1/pos"
    assert "cannot connect to the POS database" in cli("archive", "--date", DAY, ok=False, POS_DATABASE_URL=unreachable)
    cli("archive", "--date", DAY, "--dataset", "sales", ok=True)  # a past day: event datasets only
    # S3 with the planted secret key: a good run, and one into a bucket that does not exist.
    cli("archive", "--date", DAY, "--dataset", "sales", ok=True, POS_EXPORTS_STORAGE=s3_storage_url)
    cli("archive", "--date", DAY, "--dataset", "sales", ok=False, POS_EXPORTS_STORAGE="s3://no-such-bucket-h3/x")

    # State database: an unencoded password is refused (saying so); then subscriptions work through it.
    said = cli("subscriptions", "list", ok=False, POS_EXPORTS_STATE_URL=planted["state_raw"])
    assert "POS_EXPORTS_STATE_URL" in said and "must be percent-encoded" in said
    (tmp_path / "subs.yaml").write_text(
        "subscriptions:\n"
        "  - {business_id: 1, name: Daily sales, datasets: [sales], formats: [csv], frequency: daily,"
        ' at: "07:00", recipients: [owner@kofi.example]}\n'
    )
    cli("subscriptions", "import", str(tmp_path / "subs.yaml"), ok=True)
    # SMTP: an unencoded password is refused (saying so) before any run; the encoded one logs in and sends.
    said = cli("subscriptions", "trigger", "1", "--period", DAY, ok=False, POS_EXPORTS_SMTP_URL=smtp_raw)
    assert "must be percent-encoded" in said
    cli("subscriptions", "trigger", "1", "--period", DAY, ok=True)
    assert smtp_server.handler.logins == [("exports", PASSWORD)]  # the real password did reach the server
    assert [r.rcpt_tos for r in smtp_server.handler.received] == [["owner@kofi.example"]]

    # Failure alerts for every failed run (to the outbox: no SMTP server for them).
    monkeypatch.delenv("POS_EXPORTS_SMTP_URL")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        # The unencoded URLs are refused by the settings check before any run; the unreachable database and
        # the missing bucket fail their runs.
        assert len(failed) == 2
        for run in failed:
            [event] = [
                e.dagster_event
                for e in instance.all_logs(run.run_id)
                if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
            ]
            context = dg.build_run_status_sensor_context(
                sensor_name="failure_alert_sensor",
                dagster_event=event,
                dagster_instance=instance,
                dagster_run=run,
                resources={"storage": StorageResource(root=str(store)), "clock": ClockResource()},
            ).for_run_failure()
            failure_alert_sensor(context)
        alerts = sorted((store / "outbox").glob("*.eml"))
        assert len(alerts) >= 2 and "cannot connect to the POS database" in "".join(p.read_text() for p in alerts)

        # The UI: a real code server (subprocess, with the planted environment) answering GraphQL.
        monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_url)
        answers = graphql_answers(instance, [r.run_id for r in instance.get_runs()])
    resources = {r["name"]: r for r in answers[0]["data"]["allTopLevelResourceDetailsOrError"]["results"]}
    assert {"key": "url", "value": "POS_DATABASE_URL", "type": "ENV_VAR"} in resources["pos_database"][
        "configuredValues"
    ]

    assert not leaks("\n".join(outputs)), "CLI output"
    assert not leaks(json.dumps(answers)), "GraphQL answers"
    assert not [leaks(r.data) for r in smtp_server.handler.received if leaks(r.data)], "what the SMTP server got"
    assert scan_tree(tmp_path) == {}  # Dagster home (run and event storage, compute logs), storage, outbox
    assert scan_pg(planted["state_admin"]) == []  # the state database: ledger, alerts, subscriptions
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys and not [k for k in keys if leaks(s3.get_object(Bucket=bucket, Key=k)["Body"].read())]


RESOURCES = """
query ($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    __typename
    ... on ResourceDetailsList { results { name description configFields { name defaultValueAsJson }
      configuredValues { key value type } } }
  }
  utilizedEnvVarsOrError(repositorySelector: $selector) { __typename ... on EnvVarWithConsumersList {
    results { envVarName } } }
}
"""
RUN = """
query ($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { runId status runConfigYaml jobName tags { key value }
    pipelineSnapshotId } }
  logsForRun(runId: $runId) { __typename ... on EventConnection { events {
    __typename
    ... on MessageEvent { message }
    ... on ExecutionStepFailureEvent { error { message stack causes { message stack } } }
    ... on RunFailureEvent { pipelineFailureError: error { message } }
    ... on MaterializationEvent { metadataEntries { label ... on TextMetadataEntry { text }
      ... on MarkdownMetadataEntry { mdStr } ... on JsonMetadataEntry { jsonString } } }
  } } }
}
"""
SNAPSHOT = """
query ($id: String!) {
  pipelineSnapshotOrError(snapshotId: $id) { __typename ... on PipelineSnapshot { modes { resources { name
    configField { defaultValueAsJson configType { __typename ... on CompositeConfigType {
      fields { name defaultValueAsJson } } } } } } } }
}
"""


def graphql_answers(instance: dg.DagsterInstance, run_ids: list[str]) -> list[dict]:
    """What the UI would be told about the resources and every run."""
    with define_out_of_process_context(str(PROJECT / "workspace.yaml"), None, instance) as context:
        [location] = context.code_location_names
        repository = context.get_code_location(location).get_repository_names()[0]
        selector = {"repositoryLocationName": location, "repositoryName": repository}
        answers = [execute_dagster_graphql(context, RESOURCES, {"selector": selector})]
        for run_id in run_ids:
            answer = execute_dagster_graphql(context, RUN, {"runId": run_id})
            answers.append(answer)
            snapshot_id = answer.data["runOrError"]["pipelineSnapshotId"]
            answers.append(execute_dagster_graphql(context, SNAPSHOT, {"id": snapshot_id}))
    out = [{"data": a.data, "errors": [str(e) for e in a.errors or []]} for a in answers]
    assert not [a["errors"] for a in out if a["errors"]], out
    return out
