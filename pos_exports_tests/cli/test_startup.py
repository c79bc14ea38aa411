"""`pos-exports --help` (and every command's `--help`) imports none of the heavy libraries; a failed run
prints its cause in one or two lines, and `--verbose` adds the trace."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from pos_exports.cli import cli, failure_cause, main

HEAVY = ("dagster", "sqlalchemy", "pyarrow", "reportlab")


def _commands(group, path=()):
    """Every command path of the click tree: ("archive", "run"), ("subscriptions", "add"), ..."""
    for name, command in group.commands.items():
        yield (*path, name)
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))


HELPS = [[], *[list(path) for path in _commands(cli)]]


def test_every_help_imports_no_heavy_library():
    """In a fresh interpreter: import the CLI, run each `--help`, then look at sys.modules."""
    script = (
        "import json, sys, contextlib, io\n"
        "from pos_exports.cli import main\n"
        f"codes = []\n"
        f"for path in {HELPS!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        codes.append(main([*path, '--help']))\n"
        f"print(json.dumps([codes, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    codes, imported = json.loads(proc.stdout)
    assert codes == [0] * len(HELPS)
    assert imported == []


def test_the_command_tree(capsys):
    names = {" ".join(path) for path in HELPS if path}
    for name in (
        "demo", "archive", "archive run", "archive reindex", "export", "retention", "cleanup", "trigger",
        "resend", "subscriptions", "subscriptions add", "subscriptions trigger", "history", "stats",
        "upcoming", "overdue",
    ):  # fmt: skip
        assert name in names
    assert main(["archive", "--help"]) == 0
    assert "archive --date 2025-03-09" in capsys.readouterr().out  # the short form is documented


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["archive", "--date", "2025-02-30"], "error: Invalid value for '--date': "),
        (["archive", "run", "--date", "x"], "error: Invalid value for '--date': "),
        (["archive", "--date", "2025-03-09", "--to", "2025-03-08"], "error: Invalid value for --to: must not be"),
        (
            ["archive", "--date", "2025-03-09", "--dataset", "nope"],
            "error: Invalid value for '--dataset': 'nope' is not one of 'sales', 'customers'",
        ),
        (["archive", "--to", "2025-03-09"], "error: Missing option '--date'"),
        (["export", "--business-id", "1", "--format", "doc"], "error: Invalid value for '--format': 'doc'"),
        (["nope"], "error: No such command 'nope'."),
    ],
)
def test_a_usage_mistake_is_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(message) and err.count("\n") == 1, err
    assert "--help`)" in err  # says where to look


def _failure(raise_error, retries: int = 0):
    """The step failure of a real one-op job that raises what `raise_error()` raises."""
    import dagster as dg

    @dg.op(retry_policy=dg.RetryPolicy(max_retries=retries) if retries else None)
    def step():
        raise_error()

    @dg.job
    def failing():
        step()

    result = failing.execute_in_process(raise_on_error=False)
    [failure] = result.get_step_failure_events()
    return failure.step_failure_data.error


def test_a_failure_cause_skips_dagsters_wrappers_and_scrubs():
    import dagster as dg

    from pos_exports.source.database import PosSourceError

    def unreachable():
        raise PosSourceError("cannot connect to postgresql://u:hunter2@db.example/x")

    assert failure_cause(_failure(unreachable, retries=1)) == (
        "PosSourceError: cannot connect to postgresql://u:***@db.example/x"
    )

    def described():
        raise dg.Failure(description="the archive of 2025-03-10 is not there", allow_retries=False)

    assert failure_cause(_failure(described)) == "the archive of 2025-03-10 is not there"

    def long():
        raise ValueError("one\ntwo\nthree")

    assert failure_cause(_failure(long)) == "ValueError: one\ntwo ..."

    def dotted():
        raise OSError("cannot reach db.example: refused")

    assert failure_cause(_failure(dotted)) == "OSError: cannot reach db.example: refused"


def test_a_failed_run_prints_its_cause_and_verbose_adds_the_trace(tmp_path, monkeypatch, capfd):
    from pos_exports import definitions
    from pos_exports_tests.fixtures import DAY

    for name, value in {
        "POS_DATABASE_URL": f"sqlite:///{tmp_path / 'no-such-pos.sqlite'}",  # the run cannot read the POS
        "POS_EXPORTS_STORAGE": str(tmp_path / "store"),
        "POS_EXPORTS_START_DATE": DAY,
        "DAGSTER_HOME": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(definitions, "defs", definitions.build_defs())  # resources read the env above
    argv = ["archive", "--date", DAY, "--dataset", "sales"]
    assert main(argv) == 1
    out, err = capfd.readouterr()
    [line] = [line for line in err.splitlines() if line.startswith("FAILED")]
    assert line.startswith("FAILED: daily_archive: POS_DATABASE_URL ") and "no-such-pos.sqlite" in line, err
    assert "Stack Trace" not in err and "Traceback" not in err and "max_retries" not in err + out
    assert f"FAILED ({DAY}..{DAY})" in out
    assert main(["--verbose", *argv]) == 1
    assert "Stack Trace" in capfd.readouterr().err


def test_a_day_before_the_first_partition_is_refused_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert main(["archive", "--date", "2000-01-03", "--dataset", "sales"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Invalid value for --date: 2000-01-03 is before the first day of the archive, ")
    assert "(POS_EXPORTS_START_DATE)" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no run was stored


def test_archive_run_prints_a_progress_line_per_dataset_day(tmp_path, monkeypatch, capsys):
    import re

    from pos_exports import definitions
    from pos_exports_tests.fixtures import DAY, load_sqlite

    for name, value in {
        "POS_DATABASE_URL": load_sqlite(tmp_path / "pos.sqlite"),
        "POS_EXPORTS_STORAGE": str(tmp_path / "store"),
        "POS_EXPORTS_START_DATE": DAY,
        "DAGSTER_HOME": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(definitions, "defs", definitions.build_defs())  # resources read the env above
    days = [DAY, (dt.date.fromisoformat(DAY) + dt.timedelta(days=1)).isoformat()]
    assert main(["archive", "run", "--date", days[0], "--to", days[1], "--dataset", "sales"]) == 0
    out = capsys.readouterr().out
    progress = re.findall(r"^  sales (\S+): \d+ business\(es\), (\d+) rows", out, re.MULTILINE)
    assert [day for day, _ in progress] == days  # one line per day, in order, printed while the run goes
    [total] = re.findall(r"^  sales_archive +rows= *(\d+)", out, re.MULTILINE)  # the run's materializations
    assert sum(int(rows) for _, rows in progress) == int(total) > 0
    assert out.index(f"  sales {days[1]}:") < out.index("run ")  # before the run's summary
