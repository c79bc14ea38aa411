"""Files cleanup deleted, rendered again from the archive: the real weekly export writes the files and the manifest,
the real cleanup job deletes them, `exports.rerender` makes them again with the manifest's SHA-256."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json

import dagster as dg
import openpyxl
import pypdf
import pytest

from pos_exports.archive.read import load_businesses
from pos_exports.defs.cleanup import cleanup_job
from pos_exports.defs.exports import weekly_exports
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.exports.rerender import RerenderError, RerenderMismatch, rerender
from pos_exports.reports.period import period_for
from pos_exports.state import engine
from pos_exports.storage.base import LocalStorage

WEEK = "2025-03-03"
FOLDER = f"exports/1/weekly/{WEEK}"


@pytest.fixture
def state(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", url)
    return engine(url)


@pytest.fixture
def cleaned(archived_root, state):
    """Every file of the week exported (render: all), its manifest kept aside, then the folder cleaned up."""
    resources = {"storage": StorageResource(root=str(archived_root)), "clock": ClockResource()}
    result = dg.materialize(
        [weekly_exports],
        partition_key=WEEK,
        run_config={"ops": {"weekly_exports": {"config": {"render": "all"}}}},
        resources=resources,
    )
    assert result.success
    manifest = json.loads((archived_root / FOLDER / "manifest.json").read_text())
    cleanup = cleanup_job.execute_in_process(
        resources={**resources, "clock": ClockResource.at(dt.datetime(2025, 5, 1, tzinfo=dt.UTC))}
    )
    assert cleanup.success and not (archived_root / FOLDER).exists()
    return LocalStorage(archived_root), manifest


def _business(storage, business_id=1):
    return {b.id: b for b in load_businesses(storage)}[business_id]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "pdf"])
def test_a_file_cleanup_deleted_renders_again_with_the_manifests_sha256(cleaned, tmp_path, fmt):
    storage, manifest = cleaned
    entries = [f for f in manifest["files"] if f["format"] == fmt]
    assert {f["dataset"] for f in entries} == {"sales", "customers", "inventory", "audit_log"}
    paths = rerender(storage, _business(storage), period_for("weekly", WEEK), entries, tmp_path / "again")
    for entry, path in zip(entries, paths, strict=True):
        data = path.read_bytes()
        assert path.name == entry["name"] and len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["name"]
    by_name = {p.name: p.read_bytes() for p in paths}
    # Accra Shop's week (pos_exports_tests/exports/test_export_email.py): 3 sales, 21.00 net revenue
    if fmt == "csv":
        rows = [r[:2] for r in csv.reader(io.StringIO(by_name["sales-summary.csv"].decode("utf-8-sig")))]
        assert ["Sales", "3"] in rows and ["Net revenue", "21.00"] in rows
    elif fmt == "xlsx":
        book = openpyxl.load_workbook(io.BytesIO(by_name["sales.xlsx"]))
        cells = [tuple(r[:2]) for ws in book for r in ws.iter_rows(values_only=True)]
        assert ("Sales", 3) in cells and ("Net revenue", 21) in cells
    else:
        text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(by_name["sales.pdf"])).pages)
        assert "Accra Shop" in text
    assert not list(storage.list("exports/"))  # rendered for the caller, not put back into storage


def test_a_file_that_cannot_be_made_identical_again_is_refused(cleaned, tmp_path):
    storage, manifest = cleaned
    [entry] = [f for f in manifest["files"] if f["name"] == "sales.xlsx"]
    changed = {**entry, "sha256": "0" * 64}  # as if the week had been archived again since, with other rows
    with pytest.raises(RerenderMismatch, match=r"^sales\.xlsx: rendered again from the archive, it differs"):
        rerender(storage, _business(storage), period_for("weekly", WEEK), [changed], tmp_path / "again")
    assert not (tmp_path / "again" / "sales.xlsx").exists()  # never handed out under the old name
    odd = {**entry, "name": "../sales.ods"}
    with pytest.raises(RerenderError, match=r"^sales\.ods: not a file that the xlsx export of sales makes$"):
        rerender(storage, _business(storage), period_for("weekly", WEEK), [odd], tmp_path / "again")
