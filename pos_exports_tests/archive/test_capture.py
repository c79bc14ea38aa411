"""One rule for what snapshot can be captured (archive.capture), used by the archive, the retention guard and the
export messages: at a chosen instant, `pos-exports export` and `pos-exports retention` say the same thing."""

from __future__ import annotations

import datetime as dt

import pytest

from pos_exports import cli, definitions
from pos_exports.archive.capture import LOST, NOT_ENDED, OPEN, snapshot_capturable, snapshot_capture
from pos_exports.archive.extract import ArchiveError, archive_business_day, marker_key
from pos_exports.archive.read import save_businesses
from pos_exports.archive.tables import DATASETS
from pos_exports.defs.resources import ClockResource
from pos_exports.periods import day_window
from pos_exports.source.database import connect, list_businesses
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.fixtures import DAY, load_sqlite

UTC = dt.UTC
DAY_D = dt.date.fromisoformat(DAY)


def test_capture_window_is_half_open_from_the_end_of_the_local_day():
    # New York's 9 March 2025 (DST starts) ends at 04:00 UTC on the 10th; the window closes 48 h later.
    end = dt.datetime(2025, 3, 10, 4, tzinfo=UTC)
    window = snapshot_capture(DAY_D, "America/New_York")
    assert (window.opens, window.closes) == (end, end + dt.timedelta(hours=48))
    micro = dt.timedelta(microseconds=1)
    assert [window.state(t) for t in (end - micro, end, window.closes - micro, window.closes)] == [
        NOT_ENDED,
        OPEN,
        OPEN,
        LOST,
    ]
    assert snapshot_capturable(DAY_D, "America/New_York", window.closes - micro)
    assert not snapshot_capturable(DAY_D, "America/New_York", window.closes)
    assert window.hours_left(window.closes - dt.timedelta(hours=5, minutes=59)) == 5


def test_archive_refuses_exactly_when_the_retention_guard_says_lost(tmp_path):
    url = load_sqlite(tmp_path / "pos.sqlite")
    storage = LocalStorage(tmp_path / "store")
    with connect(url) as reader:
        business = {b.id: b for b in list_businesses(reader)}[1]
        closes = snapshot_capture(DAY_D, business.timezone).closes
        with pytest.raises(ArchiveError, match="never captured: lost"):  # main accepted this very instant
            archive_business_day(reader, storage, DATASETS["customers"], business, DAY_D, now=closes)
        assert not storage.exists(marker_key("customers", DAY_D, 1))
        archive_business_day(
            reader, storage, DATASETS["customers"], business, DAY_D, now=closes - dt.timedelta(microseconds=1)
        )
    assert storage.exists(marker_key("customers", DAY_D, 1))


_CLI_NOW: list[str] = []


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """The CLI on the hand-built fixture: every dataset of every active business archived for D and D+1, except
    the customers snapshot of D; returns a function that sets the instant both the export and retention see."""
    url = load_sqlite(tmp_path / "pos.sqlite")
    root = tmp_path / "store"
    storage = LocalStorage(root)
    with connect(url) as reader:
        businesses = list_businesses(reader)
        save_businesses(storage, businesses)
        for b in (b for b in businesses if b.is_active):
            for day in (DAY_D, DAY_D + dt.timedelta(days=1)):
                for ds in DATASETS.values():
                    if (ds.name, day) != ("customers", DAY_D):
                        now = day_window(day, b.timezone).end + dt.timedelta(hours=1)
                        archive_business_day(reader, storage, ds, b, day, now=now)
    for name, value in {
        "POS_DATABASE_URL": url,
        "POS_EXPORTS_STORAGE": str(root),
        "POS_EXPORTS_START_DATE": DAY,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.delenv("POS_RETENTION_DAYS", raising=False)
    monkeypatch.setattr(definitions, "defs", definitions.build_defs())  # resources read the env above

    def at(now: dt.datetime) -> None:
        # the instant the CLI reads (its hidden --now) and the one the code location's runs read (their clock)
        _CLI_NOW[:] = ["--now", now.isoformat()]
        monkeypatch.setattr(definitions, "defs", definitions.build_defs(ClockResource.at(now)))

    return at


def _export(capsys, business_id: int) -> tuple[int, str]:
    code = cli.main(
        [*_CLI_NOW, "export", "--business-id", str(business_id), "--period", "daily", DAY, "--dataset", "customers"]
    )
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _retention_rows(capsys, business_id: int) -> list[str]:
    """The rows of `pos-exports retention` about the customers snapshot of D of one business."""
    cli.main([*_CLI_NOW, "retention"])
    lines = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    return [
        "|".join(cells)
        for cells in lines
        if cells[2].strip().startswith(f"{business_id} ")
        and cells[3].strip() == "customers"
        and cells[4].strip().startswith(DAY)
    ]


def _retention_note(capsys, business_id: int) -> str:
    [row] = _retention_rows(capsys, business_id)
    return row


def test_export_and_retention_agree_inside_and_after_the_capture_window(cli_env, capsys):
    # 11 March 19:00 UTC: Accra's 9 March (ended 10 March 00:00 UTC) has 5 h left; Tokyo's ended 52 h ago.
    now = dt.datetime(2025, 3, 11, 19, tzinfo=UTC)
    cli_env(now)
    open_note = "can still be captured for 5 h (until 2025-03-12T00:00:00+00:00)"
    assert snapshot_capture(DAY_D, "Africa/Accra").note(now) == open_note
    code, message = _export(capsys, 1)
    assert code == 1
    assert open_note in message and "never captured" not in message
    assert f"pos-exports archive --date {DAY} --dataset customers --business-id 1" in message
    row = _retention_note(capsys, 1)
    assert "| error |" in row and open_note in row

    lost_note = snapshot_capture(DAY_D, "Asia/Tokyo").note(now)
    assert lost_note.startswith("never captured: lost") and "2025-03-11T15:00:00+00:00" in lost_note
    code, message = _export(capsys, 2)
    assert code == 1 and lost_note in message and "cannot be produced" in message
    assert "pos-exports archive" not in message  # nothing to run: it is gone
    row = _retention_note(capsys, 2)
    assert "| lost |" in row and lost_note in row

    # After Accra's window: both say lost.
    later = dt.datetime(2025, 3, 12, 1, tzinfo=UTC)
    cli_env(later)
    lost_note = snapshot_capture(DAY_D, "Africa/Accra").note(later)
    code, message = _export(capsys, 1)
    assert code == 1 and lost_note in message and "can still be captured" not in message
    row = _retention_note(capsys, 1)
    assert "| lost |" in row and lost_note in row


def test_the_command_the_export_names_captures_the_snapshot(cli_env, capsys):
    # 12 March 01:00 UTC: New York's 9 March ended at 04:00 UTC on the 10th, so 3 h are left.
    now = dt.datetime(2025, 3, 12, 1, tzinfo=UTC)
    cli_env(now)
    code, message = _export(capsys, 3)
    assert code == 1 and "can still be captured for 3 h" in message
    command = message.split("`")[1]
    assert command == f"pos-exports archive --date {DAY} --dataset customers --business-id 3"
    assert cli.main([*_CLI_NOW, *command.split()[1:]]) == 0
    capsys.readouterr()
    code, message = _export(capsys, 3)
    assert code == 0, message
    assert _retention_rows(capsys, 3) == []  # captured: no gap left
