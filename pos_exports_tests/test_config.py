"""Settings: every variable validated before any work (CLI, code location, runs); the first partition
is the POS's retention window at the first deployment, the same for every later process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pos_exports import config
from pos_exports.defs.archive import daily_archive
from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource
from pos_exports_tests.fixtures import DAY, load_sqlite

BIN = Path(sys.executable).parent

BAD = {
    "POS_EXPORTS_EMAIL_MAX_MB": (
        "abc",
        "POS_EXPORTS_EMAIL_MAX_MB: 'abc' is not a number (expected a positive number of megabytes, default 20)",
    ),
    "POS_EXPORTS_START_DATE": (
        "notadate",
        "POS_EXPORTS_START_DATE: 'notadate' is not a date (expected a date YYYY-MM-DD, "
        "default the start of the POS retention window at the first deployment)",
    ),
    "POS_RETENTION_DAYS": (
        "abc",
        "POS_RETENTION_DAYS: 'abc' is not a whole number (expected a whole number of days, at least 1, default 90)",
    ),
    "POS_EXPORTS_RETRY_DELAY_SECONDS": (
        "abc",
        "POS_EXPORTS_RETRY_DELAY_SECONDS: 'abc' is not a number (expected a number of seconds, 0 or more, default 15)",
    ),
}


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A clean environment for a subprocess: none of the project's variables but those given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POS_", "DAGSTER_HOME", "AWS_ENDPOINT_URL"))}
    env.update(
        POS_EXPORTS_HOME=str(tmp_path / "home"),
        POS_EXPORTS_STORAGE=str(tmp_path / "store"),
        POS_EXPORTS_STATE_URL=f"sqlite:///{tmp_path / 'state.db'}",
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
        POS_EXPORTS_START_DATE="2025-01-01",
    )
    env.update(overrides)
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    return env


def _written(tmp_path: Path) -> list[Path]:
    """Everything the project could have written: storage, state database, Dagster home, project home."""
    paths = [tmp_path / "store", tmp_path / "state.db", tmp_path / "dagster_home", tmp_path / "home"]
    return [f for p in paths if p.exists() for f in ([p] if p.is_file() else p.rglob("*"))]


@pytest.mark.parametrize("name", list(BAD))
def test_cli_refuses_a_bad_setting_in_one_line_before_any_work(tmp_path, name):
    url = load_sqlite(tmp_path / "pos.sqlite")
    value, message = BAD[name]
    env = _env(tmp_path, POS_DATABASE_URL=url, **{name: value})
    proc = subprocess.run(
        [str(BIN / "pos-exports"), "archive", "--date", DAY, "--dataset", "sales"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [message]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert _written(tmp_path) == []


def test_cli_names_a_bad_secret_bearing_url_without_showing_it(tmp_path):
    env = _env(
        tmp_path,
        POS_DATABASE_URL="mysql://pos:s3cr%23t@db.example/pos",
        POS_EXPORTS_SMTP_URL="smtp://mailer:s3cr%23t@mail.example:99999",
        POS_EXPORTS_STATE_URL="oracle://state:s3cr%23t@state.example/db",
    )
    proc = subprocess.run(
        [str(BIN / "pos-exports"), "subscriptions", "list"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [
        "POS_DATABASE_URL",
        "POS_EXPORTS_STATE_URL",
        "POS_EXPORTS_SMTP_URL",
    ]
    assert lines[0].startswith("POS_DATABASE_URL: is not a usable database URL (expected postgresql://")
    assert "invalid port" in lines[2]
    assert "s3cr" not in proc.stderr and "example" not in proc.stderr and "Traceback" not in proc.stderr
    assert _written(tmp_path) == []


def test_loading_the_code_location_with_a_bad_setting_gives_the_same_line(tmp_path):
    value, message = BAD["POS_EXPORTS_EMAIL_MAX_MB"]
    env = _env(tmp_path, POS_EXPORTS_EMAIL_MAX_MB=value)
    proc = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-m", "pos_exports.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert f"pos_exports.config.SettingsError: {message}" in (proc.stdout + proc.stderr).splitlines()
    assert not (tmp_path / "state.db").exists() and not (tmp_path / "store").exists()


def test_a_run_with_a_bad_setting_fails_once_before_writing(tmp_path, monkeypatch):
    url = load_sqlite(tmp_path / "pos.sqlite")
    value, message = BAD["POS_EXPORTS_EMAIL_MAX_MB"]
    monkeypatch.setenv("POS_EXPORTS_EMAIL_MAX_MB", value)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [daily_archive],
            selection=[dg.AssetKey("sales_archive")],
            partition_key=DAY,
            resources={
                "pos_database": PosDatabase(url=url),
                "storage": StorageResource(root=str(tmp_path / "store")),
                "clock": ClockResource(),
            },
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    # The storage resource (every step has it) refuses to start: the step's body never runs, nothing retries.
    [refused] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert refused.event_specific_data.error.message.strip().split(": ", 1)[1] == message  # after "...Failure: "
    assert not [e for e in result.all_events if e.event_type_value in ("STEP_START", "STEP_UP_FOR_RETRY")]
    assert not (tmp_path / "store").exists()


def test_every_bad_variable_gets_its_own_line(monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_CATCHUP_MAX_RUNS", "-1")
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", "team@pos.example, not an address")
    monkeypatch.setenv("POS_EXPORTS_STORAGE", "s3:///prefix")
    with pytest.raises(config.SettingsError) as raised:
        config.settings()
    assert str(raised.value).splitlines() == [
        "POS_EXPORTS_STORAGE: 's3:///prefix' names no bucket (expected a local folder or s3://bucket/prefix, "
        "default var/exports under the project home)",
        "POS_EXPORTS_DATA_TEAM_EMAIL: 'team@pos.example, not an address' holds 'not an address', which is not a "
        "plain email address (expected comma-separated email addresses, default none)",
        "POS_EXPORTS_CATCHUP_MAX_RUNS: '-1' must be at least 0 (expected a whole number, 0 or more, default 3)",
    ]
    monkeypatch.setenv("POS_EXPORTS_CATCHUP_MAX_RUNS", " 7 ")
    monkeypatch.delenv("POS_EXPORTS_DATA_TEAM_EMAIL")
    monkeypatch.setenv("POS_EXPORTS_STORAGE", "")  # empty counts as unset
    assert config.settings().catchup_max_runs == 7
    assert config.storage_root() == str(config.project_home() / "var" / "exports")


def test_the_link_settings_refuse_a_short_secret_without_showing_it_and_a_url_without_a_secret(monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_LINK_SECRET", "tooshort-s3cr")
    monkeypatch.setenv("POS_EXPORTS_PUBLIC_URL", "https://exports.pos.example/")
    with pytest.raises(config.SettingsError) as raised:
        config.settings()
    lines = str(raised.value).splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["POS_EXPORTS_LINK_SECRET", "POS_EXPORTS_PUBLIC_URL"]
    assert lines[0].startswith("POS_EXPORTS_LINK_SECRET: is shorter than 32 characters (expected a random secret")
    assert lines[1].startswith(
        "POS_EXPORTS_PUBLIC_URL: 'https://exports.pos.example/' needs POS_EXPORTS_LINK_SECRET (at least 32 characters)"
    )
    assert "s3cr" not in str(raised.value)
    monkeypatch.setenv("POS_EXPORTS_PUBLIC_URL", "exports.pos.example")
    monkeypatch.setenv("POS_EXPORTS_LINK_SECRET", "k" * 32)
    with pytest.raises(config.SettingsError, match=r"^POS_EXPORTS_PUBLIC_URL: 'exports.pos.example' is not an http"):
        config.settings()
    monkeypatch.setenv("POS_EXPORTS_PUBLIC_URL", "https://exports.pos.example/")
    settings = config.settings()
    assert settings.public_url == "https://exports.pos.example" and settings.link_days == 30
    assert "k" * 32 not in repr(settings)


# ------------------------------------------------------------------------------------------ first partition

_FIRST_KEYS = """
import datetime as dt, sys
from pos_exports import state
state.archive_start(dt.datetime.fromisoformat(sys.argv[1]).date())  # what loading the code location on that day does
from pos_exports.definitions import defs
from pos_exports.defs.archive import archive_partitions
from pos_exports.defs.exports import PARTITIONS
print(archive_partitions.get_first_partition_key(), PARTITIONS["weekly"].get_first_partition_key(),
      PARTITIONS["monthly"].get_first_partition_key())
"""


def _first_keys(env: dict[str, str], now: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _FIRST_KEYS, now], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _keys(proc: subprocess.Popen) -> list[str]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out.split()


def test_first_partition_is_the_retention_window_at_first_deployment_and_stays(tmp_path):
    env = _env(tmp_path)
    del env["POS_EXPORTS_START_DATE"]
    # First deployment: two processes load the code location at once (webserver and daemon), a day apart.
    a, b = _first_keys(env, "2026-12-01T23:59:00+00:00"), _first_keys(env, "2026-12-02T00:01:00+00:00")
    first, second = _keys(a), _keys(b)
    assert first == second
    # 90 days the POS holds, today included: 3 or 4 September 2026 (whichever process recorded it first)
    assert first[0] in ("2026-09-03", "2026-09-04")
    assert first[1:] == ["2026-09-07", "2026-10-01"]  # the first whole week (Monday) and month after it
    # Months later, a restart (a new process, a later now) keeps the same calendar.
    assert _keys(_first_keys(env, "2027-03-15T12:00:00+00:00")) == first
    # An explicit start date still wins, and does not change the recorded one.
    assert _keys(_first_keys({**env, "POS_EXPORTS_START_DATE": "2026-01-01"}, "2027-03-15T12:00:00+00:00"))[0] == (
        "2026-01-01"
    )
    assert _keys(_first_keys(env, "2027-04-01T12:00:00+00:00")) == first


def test_first_partition_follows_the_retention_days_of_the_first_deployment(tmp_path):
    env = _env(tmp_path, POS_RETENTION_DAYS="30")
    del env["POS_EXPORTS_START_DATE"]
    assert _keys(_first_keys(env, "2026-12-01T12:00:00+00:00"))[0] == "2026-11-02"
    assert _keys(_first_keys({**env, "POS_RETENTION_DAYS": "90"}, "2026-12-20T12:00:00+00:00"))[0] == "2026-11-02"
