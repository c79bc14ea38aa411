"""Period exports render what someone will read (`render: subscribed`, the default); the rest on demand."""

from __future__ import annotations

import io
import json

import dagster as dg
import openpyxl
import pypdf
import pytest

from pos_exports.archive.read import load_businesses
from pos_exports.core.clock import utc_now
from pos_exports.defs.exports import weekly_exports
from pos_exports.defs.on_demand import on_demand_export_job
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.delivery import subscriptions as subs
from pos_exports.delivery.deliver import deliver
from pos_exports.delivery.email import SmtpSettings
from pos_exports.state import engine
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.exports.names import CSV_TABLES

WEEK = "2025-03-03"
FOLDER = f"exports/1/weekly/{WEEK}"
OWNER = "owner@accra.example"


@pytest.fixture
def state(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", url)
    return engine(url)


def _subscribe(eng, **changes):
    data = {
        "business_id": 1,
        "name": "Weekly sales",
        "datasets": ["sales"],
        "formats": ["xlsx"],
        "frequency": "weekly",
        "day_of_week": "monday",
        "at": "07:00",
        "recipients": [OWNER],
    }
    return subs.add(eng, subs.validate({**data, **changes}), now=utc_now())


def _export(root, **config):
    return dg.materialize(
        [weekly_exports],
        partition_key=WEEK,
        run_config={"ops": {"weekly_exports": {"config": config}}},
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource()},
        raise_on_error=False,
    )


def _files(root) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "exports").rglob("*") if p.is_file()}


def _metadata(result) -> dict:
    return {e.asset_key.path[0]: e.materialization.metadata for e in result.get_asset_materialization_events()}


def test_one_subscription_renders_only_its_file_for_the_fleet(archived_root, state):
    _subscribe(state)
    paused = _subscribe(state, name="Paused", datasets=["audit_log"], formats=["pdf"])
    subs.set_active(state, paused.id, False, now=utc_now())  # a paused subscription asks for nothing
    _subscribe(state, name="Daily", frequency="daily", day_of_week=None, datasets=["inventory"])  # not weekly
    result = _export(archived_root)
    assert result.success
    assert _files(archived_root) == {f"{FOLDER}/sales.xlsx", f"{FOLDER}/manifest.json"}
    manifest = json.loads((archived_root / FOLDER / "manifest.json").read_text())
    assert [f["name"] for f in manifest["files"]] == ["sales.xlsx"] and "missing" not in manifest
    [sales] = _metadata(result).values()  # the other datasets: nobody asked, nothing materialized
    assert sales["render"].value == "subscribed" and sales["files"].value == 1
    assert sales["skipped_unrequested"].value == 3 * 3 - 1  # sales files of the fleet not rendered
    checks = {
        e.asset_check_evaluation_data.asset_key.path[0]: e.asset_check_evaluation_data.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    # 3 active businesses x 4 datasets x 3 formats = 36 files: 35 skipped because nobody asked
    assert sum(c["skipped_unrequested"].value for c in checks.values()) == 35


def test_a_filtered_subscription_asks_nothing_of_the_period_folder(archived_root, state):
    _subscribe(state, datasets=["customers"], filters={"customer_type": "wholesale"})
    assert _export(archived_root).success
    assert _files(archived_root) == set()


def test_render_all_produces_every_file(archived_root, state):
    _subscribe(state)
    result = _export(archived_root, render="all")
    assert result.success
    for business in (1, 2, 3):
        manifest = json.loads((archived_root / f"exports/{business}/weekly/{WEEK}/manifest.json").read_text())
        assert len({(f["dataset"], f["format"]) for f in manifest["files"]}) == 12
        csvs = sorted(f["name"] for f in manifest["files"] if f["dataset"] == "sales" and f["format"] == "csv")
        assert csvs == [  # one table per CSV file, each listed
            "sales-by_cashier.csv",
            "sales-by_payment_type.csv",
            "sales-by_storefront.csv",
            "sales-line_items.csv",
            "sales-previous_period.csv",
            "sales-summary.csv",
            "sales-top_categories.csv",
            "sales-top_products.csv",
            "sales.csv",
        ]
    assert all(m["skipped_unrequested"].value == 0 for m in _metadata(result).values())


def test_render_accepts_only_subscribed_or_all(archived_root, state):
    with pytest.raises(dg.DagsterInvalidConfigError, match="render"):
        _export(archived_root, render="some")


def _pdf_text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)


def _cells(data: bytes) -> dict:
    book = openpyxl.load_workbook(io.BytesIO(data))
    return {name: list(book[name].values) for name in book.sheetnames}


def test_on_demand_render_of_a_skipped_file_equals_what_render_all_writes(archived_root, state, tmp_path):
    assert _export(archived_root).success  # nobody subscribes: nothing rendered
    assert _files(archived_root) == set()
    result = on_demand_export_job.execute_in_process(
        run_config={
            "ops": {
                "on_demand_export": {
                    "config": {"business_id": 2, "period_kind": "weekly", "period_key": WEEK, "datasets": ["sales"]}
                }
            }
        },
        resources={"storage": StorageResource(root=str(archived_root)), "clock": ClockResource()},
    )
    on_demand = archived_root / result.output_for_node("on_demand_export")
    assert _export(archived_root, render="all").success
    period = archived_root / f"exports/2/weekly/{WEEK}"
    csvs = sorted(p.name for p in on_demand.glob("*.csv"))
    assert len(csvs) == len(CSV_TABLES["sales"]) and csvs == sorted(p.name for p in period.glob("sales*.csv"))
    for name in csvs:  # on demand gives the same CSV files, byte for byte
        assert (on_demand / name).read_bytes() == (period / name).read_bytes(), name
    assert _cells((on_demand / "sales.xlsx").read_bytes()) == _cells((period / "sales.xlsx").read_bytes())
    assert _pdf_text((on_demand / "sales.pdf").read_bytes()) == _pdf_text((period / "sales.pdf").read_bytes())
    # fixed document dates: XLSX and PDF are byte-identical too, so the manifests' checksums agree
    for name in ("sales.xlsx", "sales.pdf"):
        assert (on_demand / name).read_bytes() == (period / name).read_bytes(), name


def test_delivery_renders_a_subscribed_file_the_period_asset_skipped(archived_root, state, smtp_server):
    sub = _subscribe(state)
    assert _export(archived_root).success  # only sales.xlsx: the csv a new subscription asks for is not there
    later = _subscribe(state, name="Sales CSV", formats=["csv", "pdf"])
    storage = LocalStorage(archived_root)
    business = {b.id: b for b in load_businesses(storage)}[1]
    smtp = SmtpSettings.from_url(smtp_server.url())
    outcome = deliver(
        state, storage, later, business, "weekly", WEEK, run_id="r1", smtp=smtp, outbox_dir=archived_root, clock=utc_now
    )
    assert outcome.status == "sent", outcome.message
    [received] = smtp_server.handler.delivered_to(OWNER)
    names = sorted(p.get_filename() for p in received.message.iter_attachments())
    assert names == [f"accra-shop_sales_{WEEK}.csv.zip", f"accra-shop_sales_{WEEK}.pdf"]  # the CSV tables zipped
    manifest = json.loads((archived_root / FOLDER / "manifest.json").read_text())
    assert {f["name"] for f in manifest["files"]} == {
        "sales.xlsx",
        "sales.pdf",
        *(f"sales{part}.csv" for part in CSV_TABLES["sales"]),
    }
    assert sub.id != later.id
