"""Period export assets in real Dagster runs: files, figures, manifest, determinism, S3."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import dagster as dg
import openpyxl
import pypdf
import pytest

from pos_exports.defs.exports import daily_exports, weekly_exports
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.storage import open_storage
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.exports.conftest import archive_week
from pos_exports_tests.exports.names import export_files
from pos_exports_tests.operations.conftest import reindex_all

FOLDER = "exports/1/weekly/2025-03-03"


def _materialize(assets, root, partition_key, selection=None, render="all"):
    return dg.materialize(
        assets,
        partition_key=partition_key,
        selection=selection,
        run_config={"ops": {a.node_def.name: {"config": {"render": render}} for a in assets}},
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource()},
        raise_on_error=False,
    )


def _summary_value(path, label):
    sheet = openpyxl.load_workbook(path)["Summary"]
    for row in sheet.iter_rows(values_only=True):
        cells = [c for c in row if c is not None]
        if cells and cells[0] == label:
            return cells[1]
    raise AssertionError(f"{label} not in the Summary sheet")


def _csv_value(path, label):
    """A figure of the dataset's summary CSV (`sales.csv` -> `sales-summary.csv`: Figure,Value)."""
    path = path.with_name(f"{path.stem}-summary.csv")
    text = path.read_bytes().decode("utf-8-sig")
    for row in csv.reader(io.StringIO(text)):
        if row and row[0] == label:
            return row[1]
    raise AssertionError(f"{label} not in {path.name}")


def test_weekly_exports_hold_hand_worked_figures(archived_root):
    result = _materialize([weekly_exports], archived_root, "2025-03-03")
    assert result.success
    folder = archived_root / FOLDER
    # Business 1, 3-9 Mar 2025: R-101 (3.00 + 9.00 net), R-102 (5.00), R-105 (4.00, on the 8th) = 21.00;
    # COGS 8.00 + 2.00 + 1.00 = 11.00; payments 13.20 + 5.00 = 18.20 (R-103's is on the 10th);
    # refunds: only 2.50 of R-105 on the 9th (R-102's refund is on the 12th, next week).
    assert float(_summary_value(folder / "sales.xlsx", "Net revenue")) == 21.00
    assert float(_summary_value(folder / "sales.xlsx", "COGS")) == 11.00
    assert float(_summary_value(folder / "sales.xlsx", "Payments received")) == 18.20
    assert _csv_value(folder / "sales.csv", "Net revenue") == "21.00"
    assert _csv_value(folder / "sales.csv", "Refunds issued") == "2.50"
    assert _csv_value(folder / "sales.csv", "Gross profit") == "10.00"
    pdf_text = "".join(p.extract_text() for p in pypdf.PdfReader(folder / "sales.pdf").pages)
    assert "21.00" in pdf_text and "Accra Shop" in pdf_text
    # Customers as of Sunday 9 March: Ama Mensah owes 50.00 - 20.00 + 30.00 = 60.00.
    assert _csv_value(folder / "customers.csv", "Total outstanding") == "60.00"


def test_manifest_lists_every_file_with_its_checksum_and_window(archived_root):
    assert _materialize([weekly_exports], archived_root, "2025-03-03").success
    manifest = json.loads((archived_root / FOLDER / "manifest.json").read_text())
    names = {f["name"] for f in manifest["files"]}
    assert names == export_files(("sales", "customers", "inventory", "audit_log"))
    for entry in manifest["files"]:
        data = (archived_root / FOLDER / entry["name"]).read_bytes()
        assert entry["bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["timezone"] == "Africa/Accra"
    assert manifest["window_utc"] == ["2025-03-03T00:00:00+00:00", "2025-03-10T00:00:00+00:00"]
    # the archive's reconciled counts: 3 sales on the 9th + 1 on the 8th, drafts included
    assert manifest["reconciled_source_counts"]["sales"]["sales"]["rows"] == 4
    ny = json.loads((archived_root / "exports/3/weekly/2025-03-03/manifest.json").read_text())
    # New York's week holds the DST change: 2025-03-03 05:00Z to 2025-03-10 04:00Z (167 hours)
    assert ny["window_utc"] == ["2025-03-03T05:00:00+00:00", "2025-03-10T04:00:00+00:00"]


def test_rerender_of_an_unchanged_archive_is_identical(archived_root):
    assert _materialize([daily_exports], archived_root, "2025-03-09").success
    folder = archived_root / "exports/1/daily/2025-03-09"
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert _materialize([daily_exports], archived_root, "2025-03-09").success
    again = {p.name: p.read_bytes() for p in folder.iterdir()}
    for name in first:
        if name.endswith((".csv", ".json")):
            assert again[name] == first[name], name
    wb1 = openpyxl.load_workbook(io.BytesIO(first["sales.xlsx"]))
    wb2 = openpyxl.load_workbook(io.BytesIO(again["sales.xlsx"]))
    for sheet in wb1.sheetnames:
        assert list(wb1[sheet].values) == list(wb2[sheet].values)


def test_missing_archive_day_fails_naming_business_and_day(archived_root):
    (archived_root / "archive/sales/date=2025-03-05/business_id=2/_reconciliation.json").unlink()
    reindex_all(archived_root)
    result = _materialize([weekly_exports], archived_root, "2025-03-03", [dg.AssetKey("sales_weekly_export")])
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "business 2" in message and "2025-03-05" in message
    assert (archived_root / "exports/1/weekly/2025-03-03/sales.csv").exists()  # the others still exported


def test_s3_gives_the_same_files_and_manifest(archived_root, tmp_path, s3_storage_url):
    s3 = open_storage(s3_storage_url)
    archive_week(f"sqlite:///{tmp_path / 'pos.sqlite'}", s3)
    assert _materialize([weekly_exports], s3_storage_url, "2025-03-03").success
    assert _materialize([weekly_exports], archived_root, "2025-03-03").success
    local = LocalStorage(archived_root)
    local_manifest = json.loads(local.read_bytes(f"{FOLDER}/manifest.json"))
    s3_manifest = json.loads(s3.read_bytes(f"{FOLDER}/manifest.json"))
    assert s3.list("exports") == local.list("exports")
    assert {f["name"]: f["sha256"] for f in s3_manifest["files"] if f["format"] == "csv"} == {
        f["name"]: f["sha256"] for f in local_manifest["files"] if f["format"] == "csv"
    }
    assert s3.read_bytes(f"{FOLDER}/sales.csv") == local.read_bytes(f"{FOLDER}/sales.csv")


@pytest.mark.parametrize("kind_key", [("daily", "2025-03-09")])
def test_materialization_metadata_links_the_files(archived_root, kind_key):
    result = _materialize([daily_exports], archived_root, kind_key[1])
    [sales] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("sales_daily_export")
    ]
    # 3 businesses x (a workbook, a PDF and one CSV per table)
    assert sales.metadata["businesses"].value == 3
    assert sales.metadata["files"].value == 3 * len(export_files(["sales"]))
    assert str(archived_root) in sales.metadata["folders"].value


def test_a_missing_snapshot_of_one_business_withholds_nothing_else(archived_root):
    from pos_exports.failures import from_metadata

    # business 2's customers snapshot of Sunday 9 March was never captured
    marker = archived_root / "archive/customers/date=2025-03-09/business_id=2/_reconciliation.json"
    kept = marker.read_bytes()
    marker.unlink()
    reindex_all(archived_root)
    result = _materialize([weekly_exports], archived_root, "2025-03-03")
    assert not result.success  # the run fails, so the gap is alerted ...
    [failure] = result.get_step_failure_events()
    [item] = from_metadata(failure.step_failure_data.user_failure_data.metadata)
    assert (item.business_id, item.business_name, item.stage, item.dataset, item.period_key, item.period_label) == (
        2,
        "東京ショップ",
        "export",
        "customers",
        "2025-03-03",
        "3–9 Mar 2025",
    )
    assert item.reason == (
        "the customer list as of 9 Mar 2025 was not captured in time, "
        "and the point-of-sale system keeps no history of it"
    )
    assert not item.must_act and not item.transient and item.detail.startswith("ArchiveMissing: the customers snapshot")
    # ... but every other export is produced, business 2's sales, inventory and audit log included
    manifest = json.loads((archived_root / "exports/2/weekly/2025-03-03/manifest.json").read_text())
    assert {f["name"] for f in manifest["files"]} == export_files(("sales", "inventory", "audit_log"))
    assert manifest["missing"] == {"customers": {"reason": item.reason, "detail": item.detail}}
    assert "missing" not in json.loads((archived_root / FOLDER / "manifest.json").read_text())
    materialized = {e.asset_key.path[0]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert set(materialized) == {f"{d}_weekly_export" for d in ("sales", "customers", "inventory", "audit_log")}
    assert materialized["customers_weekly_export"]["businesses"].value == 2
    assert materialized["customers_weekly_export"]["missing_businesses"].value == 1
    assert materialized["sales_weekly_export"]["businesses"].value == 3
    # the gap shows in the UI as a failed check of the customers export only
    checks = {
        e.asset_check_evaluation_data.asset_key.path[0]: e.asset_check_evaluation_data
        for e in (ev for ev in result.all_events if ev.event_type_value == "ASSET_CHECK_EVALUATION")
    }
    assert {k: c.passed for k, c in checks.items()} == {
        "sales_weekly_export": True,
        "customers_weekly_export": False,
        "inventory_weekly_export": True,
        "audit_log_weekly_export": True,
    }
    assert from_metadata(checks["customers_weekly_export"].metadata) == [item]
    # once the snapshot is there (say, restored from a backup), a re-render fills the gap and clears it
    marker.write_bytes(kept)
    assert _materialize([weekly_exports], archived_root, "2025-03-03").success
    manifest = json.loads((archived_root / "exports/2/weekly/2025-03-03/manifest.json").read_text())
    assert "missing" not in manifest and "customers.csv" in {f["name"] for f in manifest["files"]}
