"""The `subscriptions` command group, run through the `pos-exports` click CLI (`pos_exports.cli.main`)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from pos_exports.cli import main
from pos_exports.cli import subscriptions as subscriptions_cli
from pos_exports.delivery import subscriptions as subs
from pos_exports_tests.fixtures import load_sqlite

DEMO = Path(subs.__file__).with_name("demo_subscriptions.yaml")
ZONES = {1: "Africa/Accra", 2: "America/New_York", 3: "Asia/Tokyo", 4: "Europe/Warsaw", 5: "Asia/Dubai"}
NOW = "2025-03-05T12:00:00+00:00"  # a Wednesday


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """cli(*argv) -> (exit code, stdout, stderr) against a fresh SQLite state database."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setattr(subscriptions_cli, "load_business_timezones", lambda pos_url=None: dict(ZONES))

    def call(*argv: str) -> tuple[int, str, str]:
        code = main(["subscriptions", *argv, "--state-url", url, "--now", NOW])
        out, err = capsys.readouterr()
        return code, out, err

    call.url = url
    return call


ADD = [
    "add",
    "--business-id", "2",
    "--name", "Weekly summary",
    "--dataset", "sales", "--dataset", "customers",
    "--format", "xlsx", "--format", "pdf",
    "--frequency", "weekly", "--day-of-week", "monday", "--at", "07:00",
    "--recipient", "owner@bodega.example", "--recipient", "manager@bodega.example",
    "--filter", "customer_type=wholesale",
]  # fmt: skip


def test_add_show_update_pause_resume_remove(cli):
    code, out, err = cli(*ADD)
    assert (code, err) == (0, "")
    assert "added subscription 1 (business 2, 'Weekly summary', weekly on monday at 07:00)" in out
    assert "recipients:    owner@bodega.example, manager@bodega.example" in out
    assert "filters:       customer_type=wholesale" in out
    # the next Monday after Wednesday 2025-03-05 is 03-10, after the US switch to EDT
    assert "next fires:    2025-03-10 07:00 EDT (2025-03-10 11:00 UTC) -> weekly 2025-03-03" in out

    code, out, err = cli("update", "1", "--at", "08:15", "--only-if-data", "--subject", "{business_name} weekly")
    assert code == 0 and "weekly on monday at 08:15" in out and "only if data:  yes" in out
    assert "subject:       {business_name} weekly" in out

    code, out, _ = cli("update", "1", "--frequency", "monthly", "--nth-weekday", "last friday", "--no-filters")
    assert code == 0 and "monthly on the last friday at 08:15" in out and "filters:       none" in out
    assert "2025-03-28 08:15 EDT (2025-03-28 12:15 UTC) -> monthly 2025-02" in out

    assert cli("pause", "1")[:2] == (
        0,
        "paused subscription 1 (business 2, 'Weekly summary', monthly on the last friday at 08:15)\n",
    )
    code, out, _ = cli("show", "1")
    assert "status:        paused" in out and "next fires:    none (paused)" in out
    assert cli("resume", "1")[0] == 0
    assert "status:        active" in cli("show", "1")[1]
    code, out, _ = cli("remove", "1")
    assert code == 0 and out.startswith("removed subscription 1")
    assert cli("show", "1")[1:] == ("", "error: id: no subscription with id 1\n")


def test_list_prints_a_readable_table(cli):
    assert cli("list")[:2] == (0, "no subscriptions yet\n")
    code, out, err = cli("import", str(DEMO))
    assert code == 0, err
    assert "9 subscription(s) (9 added, 0 updated), 2 notification setting(s)" in out
    assert "[paused]" in out

    code, out, err = cli("list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID", "BUSINESS", "NAME", "WHEN", "TIME", "ZONE", "DATASETS", "FORMATS", "TO", "ACTIVE", "NEXT", "FIRE"
    ]  # fmt: skip
    assert set(lines[1]) <= {"-", " "}
    weekly = next(line for line in lines if "Weekly summary" in line)
    assert "weekly on monday at 07:00" in weekly and "America/New_York*" in weekly
    assert "sales,customers,inventory" in weekly and "xlsx,pdf" in weekly
    assert weekly.split()[-5:] == ["2", "yes", "2025-03-10", "07:00", "EDT"]  # 2 recipients, active, next fire
    london = next(line for line in lines if "head office" in line)
    assert "Europe/London " in london and london.endswith("2025-03-10 08:00 GMT")
    paused = next(line for line in lines if "paused for the" in line)
    assert paused.split()[-3:] == ["no", "-", "(paused)"]
    second_tuesday = next(line for line in lines if "Second Tuesday" in line)
    assert second_tuesday.endswith("2025-03-11 09:30 JST")
    assert lines[-1] == "* the business's own time zone"

    code, out, _ = cli("list", "--business-id", "3", "--active")
    assert code == 0 and len(out.splitlines()) == 2 + 2 + 1  # header, rule, two rows, footnote
    code, out, _ = cli("list", "--paused")
    assert len(out.splitlines()) == 2 + 1 + 1

    # re-import: everything is updated in place
    assert "(0 added, 9 updated)" in cli("import", str(DEMO))[1]


def test_export_reads_back(cli, tmp_path):
    cli("import", str(DEMO))
    code, out, _ = cli("export", "--business-id", "2")
    assert code == 0 and out.startswith("subscriptions:\n") and "Weekly summary" in out and "Kofi" not in out
    path = tmp_path / "b2.yaml"
    path.write_text(out, encoding="utf-8")
    assert "(0 added, 2 updated), 1 notification setting(s)" in cli("import", str(path))[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--recipient", "owner@bodega.example\r\nBcc: x@y.example"],
            "error: recipients: 'owner@bodega.example\\r\\nBcc",
        ),
        (["--recipient", "a@b.com, c@d.com"], "error: recipients: 'a@b.com, c@d.com' is not a valid email address"),
        (["--recipient", "Name <a@b.com>"], "error: recipients: 'Name <a@b.com>' is not a valid email address"),
        (["--day-of-month", "29"], "error: day_of_month: does not apply to a weekly subscription"),
        (["--subject", "{business_name} {secret}"], "error: subject_template: unknown placeholder {secret}"),
        (["--filter", "stock_status=low_stock"], "error: filters: 'stock_status' filters the inventory dataset"),
        (["--filter", "colour=red"], "error: filters: unknown filter 'colour'"),
        (["--filter", "customer_type"], "error: filters: 'customer_type' is not key=value"),
        (["--timezone", "Europe/Atlantis"], "error: timezone: 'Europe/Atlantis' is not an IANA time zone"),
        (["--at", "7h"], "error: at: '7h' is not a time of day"),
        (["--business-id", "9"], "error: business_id: no business with id 9"),
    ],
)
def test_add_errors_are_clean(cli, argv, message):
    code, out, err = cli(*ADD, *argv)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
    assert cli("list")[1] == "no subscriptions yet\n"


def test_other_errors_are_clean(cli, tmp_path):
    cli(*ADD)
    assert cli(*ADD)[1:] == ("", "error: name: business 2 already has a subscription named 'Weekly summary' (id 1)\n")
    assert cli("update", "1")[2] == "error: options: nothing to change: give at least one option (see --help)\n"
    assert cli("update", "1", "--business-id", "3")[2].startswith("error: business_id: a subscription cannot move")
    assert cli("update", "1", "--frequency", "monthly")[2].startswith(
        "error: day_of_month: a monthly subscription needs"
    )
    assert cli("update", "1", "--frequency", "monthly", "--nth-weekday", "5th monday")[2].startswith(
        "error: nth_weekday: '5th monday' is not valid"
    )
    assert cli("pause", "x")[2] == "error: id: 'x' is not a number\n"
    assert cli("remove", "42")[2] == "error: id: no subscription with id 42\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "subscriptions:\n  - {business_id: 2, name: X, datasets: [sales], formats: [csv], frequency: daily}\n"
    )
    code, out, err = cli("import", str(bad))
    assert (
        (code, out) == (2, "")
        and err
        == "error: subscriptions[0] ('X'): hour: required: the local hour 0-23 at which to send (or at: 'HH:MM')\n"
    )
    assert cli("import", str(tmp_path / "missing.yaml"))[2].startswith("error: file: cannot read")
    assert [s.name for s in subs.find(subs.state.engine(cli.url))] == ["Weekly summary"]


def test_settings(cli):
    code, out, _ = cli("settings", "2")
    assert code == 0 and out.splitlines()[0] == "notification settings of business 2 (defaults, nothing stored)"
    assert (
        "notify on success:   no" in out
        and "notify on failure:   yes" in out
        and "from name:           POS Exports" in out
    )
    code, out, _ = cli(
        "settings", "2", "--notify-success", "--no-notify-failure", "--recipient", "owner@bodega.example",
        "--failure-recipient", "it@bodega.example", "--from-name", "Bodega exports",
        "--reply-to", "owner@bodega.example",
    )  # fmt: skip
    assert code == 0 and out.startswith("saved\nnotification settings of business 2 (stored)")
    assert "notify on success:   yes" in out and "notify on failure:   no" in out
    assert "default recipients:  owner@bodega.example" in out and "failure recipients:  it@bodega.example" in out
    assert "reply-to:            owner@bodega.example" in out
    code, out, _ = cli("settings", "2", "--no-recipients", "--reply-to", "")
    assert "default recipients:  (none)" in out and "reply-to:            (none)" in out
    assert "failure recipients:  it@bodega.example" in out  # untouched
    assert cli("settings", "2", "--reply-to", "a@b.com;c@d.com")[2].startswith("error: reply_to: 'a@b.com;c@d.com'")
    assert cli("settings", "2", "--from-name", "x\nBcc: y@z.com")[2].startswith("error: from_name:")
    assert cli("settings", "9", "--notify-success")[2] == "error: business_id: no business with id 9\n"


def test_click_wiring(capsys):
    assert main(["subscriptions"]) == 2  # no subcommand: the group's help, on stderr
    assert "Commands:" in capsys.readouterr().err
    assert main(["subscriptions", "--help"]) == 0
    help_text = capsys.readouterr().out
    for name in ("add", "list", "show", "update", "pause", "resume", "remove", "import", "settings", "trigger"):
        assert name in help_text


def test_a_registered_command_plugs_in(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(subscriptions_cli.group, "commands", dict(subscriptions_cli.group.commands))
    seen = []

    def handler(args, ctx):
        seen.append((args.id, ctx.state_url))
        raise subs.SubscriptionError("period", "not ready yet")

    subscriptions_cli.register_command("trigger", "deliver now", [click.Argument(["id"])], handler)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["subscriptions", "trigger", "3", "--state-url", url]) == 2
    assert seen == [("3", url)] and capsys.readouterr().err == "error: period: not ready yet\n"


def test_business_time_zones_come_from_the_pos_database(tmp_path, monkeypatch):
    monkeypatch.delenv("POS_DATABASE_URL", raising=False)
    monkeypatch.setenv("POS_EXPORTS_HOME", str(tmp_path))  # no demo database there: nothing to read
    assert subscriptions_cli.load_business_timezones() is None
    url = load_sqlite(tmp_path / "pos.sqlite")
    zones = subscriptions_cli.load_business_timezones(url)
    assert zones and all(isinstance(k, int) and "/" in v or v == "UTC" for k, v in zones.items())
    monkeypatch.setenv("POS_DATABASE_URL", url)
    assert subscriptions_cli.load_business_timezones() == zones
    with pytest.raises(subs.SubscriptionError, match="^pos_url: "):
        subscriptions_cli.load_business_timezones(f"sqlite:///{tmp_path / 'nope.sqlite'}")


def test_an_unusable_state_database_is_a_clean_error(capsys):
    assert main(["subscriptions", "list", "--state-url", "postgresql://u:secret@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: state_url: cannot use postgresql://u:***@127.0.0.1:1/x: ") and "secret" not in err
