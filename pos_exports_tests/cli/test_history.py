"""`history`, `stats`, `upcoming`, `overdue` over a real delivery (delivery_job, a real SMTP server, the archive)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile

import pytest
import sqlalchemy as sa

from pos_exports import state as st
from pos_exports.archive.read import load_businesses
from pos_exports.cli import history as history_cli
from pos_exports.cli import main
from pos_exports.core.clock import utc_now
from pos_exports.defs.deliveries import delivery_job
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.delivery import ledger, subscriptions
from pos_exports.delivery.deliver import csv_zip
from pos_exports.operations.cleanup import cleanup_exports
from pos_exports.operations.stats import export_stats
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.exports.names import export_files

UTC = dt.UTC
FOLDER = "exports/1/weekly/2025-03-03"
NAMES = export_files(["sales", "customers"], ["xlsx", "csv"])  # a workbook and one CSV per table each
CSVS = {n for n in NAMES if n.endswith(".csv")}


def cli(*argv: str) -> int:
    assert argv[0] in history_cli.COMMANDS
    return main(list(argv))


@pytest.fixture
def delivered(archived_root, state, smtp_server, monkeypatch):
    """The week of 3 March of business 1 delivered to two recipients by a real delivery run."""
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query="from=exports@pos.example"))
    monkeypatch.setenv("POS_EXPORTS_STORAGE", str(archived_root))
    sub = subscriptions.add(
        state,
        {
            "business_id": 1,
            "name": "Weekly owner pack",
            "datasets": ["sales", "customers"],
            "formats": ["xlsx", "csv"],
            "frequency": "weekly",
            "day_of_week": "monday",
            "at": "07:00",
            "recipients": ["owner@kofi-shop.example", "accounts@kofi-shop.example"],
        },
        now=dt.datetime(2025, 3, 1, tzinfo=UTC),  # before its fires
    )
    result = delivery_job.execute_in_process(
        run_config={
            "ops": {
                "deliver_subscription": {
                    "config": {"subscription_id": sub.id, "period_kind": "weekly", "period_key": "2025-03-03"}
                }
            }
        },
        resources={"storage": StorageResource(root=str(archived_root)), "clock": ClockResource()},
    )
    assert result.success
    return sub


def test_history_lists_and_filters(delivered, state, capsys):
    assert cli("history") == 0
    out = capsys.readouterr().out
    rows = ledger.history(state)
    assert len(rows) == 2
    for r in rows:
        assert f"{r['id']} " in out and r["recipient"] in out
    assert "weekly 2025-03-03" in out and out.count("emailed") == 2 and "2 delivery row(s)" in out

    assert cli("history", "--business-id", "1", "--status", "emailed", "--limit", "1") == 0
    out = capsys.readouterr().out
    assert "1 of 2 delivery row(s)" in out and f"{rows[0]['id']} " in out
    assert cli("history", "--status", "failed") == 0
    assert "no deliveries match" in capsys.readouterr().out
    assert cli("history", "--subscription-id", str(delivered.id + 1)) == 0
    assert "no deliveries match" in capsys.readouterr().out
    assert cli("history", "--business-id", "2") == 0
    assert "no deliveries match" in capsys.readouterr().out
    assert cli("history", "--until", "2025-01-01") == 0
    assert "no deliveries match" in capsys.readouterr().out
    today = dt.datetime.now(UTC).date()
    assert cli("history", "--since", today.isoformat(), "--until", (today + dt.timedelta(days=1)).isoformat()) == 0
    assert "2 delivery row(s)" in capsys.readouterr().out


def test_download_returns_the_files_that_were_emailed(delivered, state, archived_root, smtp_server, tmp_path, capsys):
    row = ledger.history(state, subscription_id=delivered.id)[0]
    target = tmp_path / "download"
    assert cli("history", "--download", str(row["id"]), "--to", str(target)) == 0
    printed = capsys.readouterr().out.split()
    assert {p.rsplit("/", 1)[-1] for p in printed} == NAMES
    assert sorted(printed) == sorted(str((target / n).resolve()) for n in NAMES)
    [received] = smtp_server.handler.delivered_to(row["recipient"])  # one message per recipient
    attached = {part.get_filename(): part.get_payload(decode=True) for part in received.message.iter_attachments()}
    recorded = {f["name"]: f for f in row["files"]}
    zipped = {}  # the CSV tables travel in one zip per dataset
    for dataset in ("sales", "customers"):
        with zipfile.ZipFile(io.BytesIO(attached.pop(f"accra-shop_{dataset}_2025-03-03.csv.zip"))) as archive:
            zipped |= {m.filename: archive.read(m) for m in archive.infolist()}
    for name in NAMES:
        data = (target / name).read_bytes()
        stem, _, ext = name.partition(".")
        mailed = f"accra-shop_{stem}_2025-03-03.{ext}"  # the email names files for a Downloads folder
        sent = zipped[mailed] if name in CSVS else attached[mailed]
        assert data == (archived_root / FOLDER / name).read_bytes() == sent, name
        assert hashlib.sha256(data).hexdigest() == recorded[name]["sha256"]


def _mailed(smtp_server, recipient: str) -> dict[str, bytes]:
    """The bytes each stored file name had in the email `recipient` received (CSV tables out of their zips)."""
    [received] = smtp_server.handler.delivered_to(recipient)
    attached = {part.get_filename(): part.get_payload(decode=True) for part in received.message.iter_attachments()}
    zipped = {}
    for dataset in ("sales", "customers"):
        with zipfile.ZipFile(io.BytesIO(attached.pop(f"accra-shop_{dataset}_2025-03-03.csv.zip"))) as archive:
            zipped |= {m.filename: archive.read(m) for m in archive.infolist()}
    out = {}
    for name in NAMES:
        stem, _, ext = name.partition(".")
        mailed = f"accra-shop_{stem}_2025-03-03.{ext}"
        out[name] = zipped[mailed] if name in CSVS else attached[mailed]
    return out


def test_download_after_cleanup_renders_the_same_bytes_again(
    delivered, state, archived_root, smtp_server, tmp_path, capsys
):
    row = ledger.history(state, subscription_id=delivered.id)[0]
    report = cleanup_exports(LocalStorage(archived_root), dt.date(2025, 6, 1), max_age_days=30, dry_run=False)
    assert FOLDER in report.folders and not (archived_root / FOLDER).exists()  # the real cleanup deleted them
    target = tmp_path / "after-cleanup"
    assert cli("history", "--download", str(row["id"]), "--to", str(target)) == 0
    captured = capsys.readouterr()
    assert sorted(captured.out.split()) == sorted(str((target / n).resolve()) for n in NAMES)
    assert captured.err.count("rendered again from the archive") == len(NAMES)
    mailed = _mailed(smtp_server, row["recipient"])
    recorded = {f["name"]: f["sha256"] for f in row["files"]}
    for name in NAMES:
        data = (target / name).read_bytes()
        assert data == mailed[name], name  # byte for byte what was emailed: CSV, and the XLSX too
        assert hashlib.sha256(data).hexdigest() == recorded[name]
    assert not (archived_root / FOLDER).exists()  # a download does not bring back what cleanup deleted
    [received] = smtp_server.handler.delivered_to(row["recipient"])
    attached = {part.get_filename(): part.get_payload(decode=True) for part in received.message.iter_attachments()}
    business = {b.id: b for b in load_businesses(LocalStorage(archived_root))}[1]
    for dataset in ("sales", "customers"):  # the CSV tables rendered again zip into the very zip that was emailed
        members = [(n, target / n) for n in CSVS if n.split("-")[0].removesuffix(".csv") == dataset]
        again = csv_zip(business, "2025-03-03", dataset, members, tmp_path)
        assert again.read_bytes() == attached[f"accra-shop_{dataset}_2025-03-03.csv.zip"], dataset


def test_download_errors(delivered, state, archived_root, tmp_path, capsys):
    row = ledger.history(state, subscription_id=delivered.id)[0]
    assert cli("history", "--download", "999", "--to", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err == "error: download: no delivery with id 999\n"
    assert cli("history", "--download", str(row["id"])) == 2
    assert "error: --download needs --to DIR" in capsys.readouterr().err
    (archived_root / FOLDER / "sales.csv").unlink()  # retention removed a file ...
    files = [{**f, "sha256": "0" * 64} if f["name"] == "sales.csv" else f for f in row["files"]]
    with state.begin() as conn:  # ... and the archive changed since: rendering it again cannot give the same file
        conn.execute(sa.update(st.deliveries).where(st.deliveries.c.id == row["id"]).values(files=files))
    assert cli("history", "--download", str(row["id"]), "--to", str(tmp_path / "d")) == 2
    captured = capsys.readouterr()
    assert "error: download: sales.csv: no longer in storage, and rendered again from the archive, it differs" in (
        captured.err
    )
    assert "Traceback" not in captured.err and not (tmp_path / "d" / "sales.csv").exists()
    assert len(captured.out.split()) == len(NAMES) - 1  # the other files were copied
    assert cli("history", "--status", "sent") == 2
    assert capsys.readouterr().err.startswith("error: status: unknown status 'sent'")
    assert cli("history", "--since", "last week") == 2
    assert "error: since: 'last week' is not a date" in capsys.readouterr().err


def test_download_of_a_delivery_without_files(state, tmp_path, capsys, clock):
    rows = ledger.open_rows(state, 7, 1, "daily", "2025-03-09", ["a@shop.example"], "r", now=utc_now())
    ledger.mark_failed(state, [rows[0]["id"]], "ArchiveMissing: sales 2025-03-09 missing", now=utc_now())
    assert cli("history", "--storage", str(tmp_path), "--download", str(rows[0]["id"]), "--to", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "has no stored files (status failed (ArchiveMissing: sales 2025-03-09 missing))" in err


def test_stats_command_and_export_stats(delivered, state, archived_root, capsys):
    sizes = {n: (archived_root / FOLDER / n).stat().st_size for n in NAMES}
    total = sum(sizes.values())
    assert cli("stats", "--business-id", "1") == 0
    out = capsys.readouterr().out
    assert "emailed       2\n" in out and "failed        0\n" in out and "success rate  100.00%" in out
    assert f"({2 * total} bytes, {2 * len(NAMES)} files)" in out
    lines = [line.split() for line in out.splitlines()]
    n = str(len(NAMES))
    assert ["weekly", "1", n, str(total)] in lines and ["all", "1", n, str(total)] in lines
    csv_bytes = sum(sizes[c] for c in CSVS)
    assert ["csv", "2", "2", "0", "0", "100.00%", str(2 * len(CSVS)), str(2 * csv_bytes)] in [
        line[:8] for line in lines
    ]

    storage = LocalStorage(archived_root)
    produced = export_stats(storage, dt.date(2025, 3, 3), dt.date(2025, 3, 10))
    assert (produced["periods"], produced["files"], produced["bytes"]) == (1, len(NAMES), total)
    assert produced["by_kind"] == {"weekly": {"periods": 1, "files": len(NAMES), "bytes": total}}
    sales = {k: v for k, v in sizes.items() if k.startswith("sales")}
    assert produced["by_dataset"]["sales"] == {"files": len(sales), "bytes": sum(sales.values())}
    assert produced["by_format"]["csv"] == {"files": len(CSVS), "bytes": csv_bytes}
    assert produced["businesses"] == [1]
    assert export_stats(storage, dt.date(2025, 3, 10))["periods"] == 0  # the week ended on the 9th
    assert export_stats(storage, until=dt.date(2025, 3, 9))["periods"] == 0
    assert export_stats(storage, business_id=2)["periods"] == 0


def test_upcoming_and_overdue_commands(delivered, state, capsys):
    assert cli("upcoming", "--now", "2025-03-10T06:00:00+00:00") == 0
    out = capsys.readouterr().out
    assert "2025-03-10 07:00" in out and "2025-03-10 07:00 GMT" in out and "weekly 2025-03-03" in out
    # 10 March 07:00 fired for the week of 3 March, which the fixture delivered: nothing overdue.
    assert cli("overdue", "--now", "2025-03-10T08:00:00+00:00") == 0
    assert "nothing overdue" in capsys.readouterr().out
    # A week later the week of 10 March is due, and the archive does not hold it.
    assert cli("overdue", "--now", "2025-03-17T08:00:00+00:00") == 0
    out = capsys.readouterr().out
    assert "weekly 2025-03-10" in out and "waiting for archive" in out and "1 overdue" in out
    assert cli("overdue", "--now", "2025-03-17T08:00:00+00:00", "--lookback-days", "0") == 2
    assert "error: lookback_days: 0 must be 1 or more" in capsys.readouterr().err


def test_a_filtered_delivery_renders_again_with_its_subscriptions_filters(archived_root, state, tmp_path):
    from pos_exports.delivery.deliver import deliver
    from pos_exports.delivery.downloads import fetch_files
    from pos_exports_tests.delivery.test_store import weekly

    storage = LocalStorage(archived_root)
    business = {b.id: b for b in load_businesses(storage)}[1]
    wholesale = weekly(business_id=1, datasets=["customers"], formats=["csv", "pdf"], recipients=["a@kofi.example"])
    sub = subscriptions.add(state, subscriptions.validate(wholesale), now=utc_now())  # filters: customer_type wholesale
    outcome = deliver(
        state,
        storage,
        sub,
        business,
        "weekly",
        "2025-03-03",
        run_id="r1",
        smtp=None,
        outbox_dir=tmp_path,
        clock=utc_now,
    )
    assert outcome.status == "sent" and "/subscriptions/" in outcome.folder
    [row] = ledger.history(state, subscription_id=sub.id)
    stored = fetch_files(state, storage, row, tmp_path / "stored", now=utc_now())  # for comparison: the files as stored
    cleanup_exports(storage, dt.date(2025, 6, 1), max_age_days=30, dry_run=False)
    assert not (archived_root / outcome.folder).exists()
    fetched = fetch_files(state, storage, row, tmp_path / "again", now=utc_now())
    assert not fetched.problems and sorted(fetched.rerendered) == sorted(f["name"] for f in row["files"])
    for before, again in zip(stored.paths, fetched.paths, strict=True):
        assert before.read_bytes() == again.read_bytes(), before.name  # the filtered render, not the whole list
    subscriptions.update(
        state, sub.id, {"filters": {"customer_type": "retail"}}, now=utc_now()
    )  # the filters changed since
    changed = fetch_files(state, storage, row, tmp_path / "changed", now=utc_now())
    assert changed.paths == [] and len(changed.problems) == len(row["files"])
    assert all("it differs from the file recorded" in p for p in changed.problems)
