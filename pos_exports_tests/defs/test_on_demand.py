"""The on-demand export job: config errors name the field; filters apply; empty periods are valid exports."""

from __future__ import annotations

import csv
import io

import dagster as dg
import pytest

from pos_exports.defs.on_demand import on_demand_export_job
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports_tests.exports.names import export_files


def _run(root, **cfg):
    return on_demand_export_job.execute_in_process(
        run_config={"ops": {"on_demand_export": {"config": cfg}}},
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource()},
        raise_on_error=False,
    )


def _error(result) -> str:
    return result.get_step_failure_events()[0].step_failure_data.error.message


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"formats": []}, "formats: choose at least one of xlsx, csv, pdf"),
        ({"period_kind": None, "period_key": "2025-03"}, "period_kind: required with period_key"),
        ({"period_kind": "weekly", "period_key": "2025-03-05"}, "period_key:"),
        ({"period_kind": None, "period_key": "", "start_date": "2025-03-09", "end_date": "2025-03-01"}, "end_date"),
        ({"period_kind": None, "period_key": "", "start_date": "9 March"}, "a date range"),
        ({"filters": {"colour": "red"}}, "filters.colour: not a filter"),
        ({"datasets": ["customers"], "filters": {"customer_type": "vip"}}, "filters.customer_type:"),
        ({"business_id": 99}, "business_id: no business 99"),
    ],
)
def test_invalid_config_names_the_field(archived_root, cfg, message):
    base = {"business_id": 1, "period_kind": "daily", "period_key": "2025-03-09"}
    result = _run(archived_root, **{**base, **cfg})
    assert not result.success
    assert message in _error(result)


@pytest.mark.parametrize(
    ("field", "value", "path", "enum"),
    [
        ("formats", ["docx"], "formats[0]", "FormatName"),
        ("datasets", ["payroll"], "datasets[0]", "DatasetName"),
        ("period_kind", "yearly", "period_kind", "PeriodKind"),
    ],
)
def test_a_value_outside_the_catalogue_is_refused_before_a_run_starts(archived_root, field, value, path, enum):
    # The Launchpad validates the same way (validate_run_config): it lists the enum's members and refuses the rest.
    config = {"business_id": 1, "period_kind": "daily", "period_key": "2025-03-09", field: value}
    run_config = {"ops": {"on_demand_export": {"config": config}}}
    bad = value[0] if isinstance(value, list) else value
    expected = f"Value at path root:ops:on_demand_export:config:{path} not in enum type {enum} got {bad}"
    with pytest.raises(dg.DagsterInvalidConfigError) as validated:
        dg.validate_run_config(on_demand_export_job, run_config)
    assert [e.message for e in validated.value.errors] == [expected]
    with dg.instance_for_test() as instance:
        with pytest.raises(dg.DagsterInvalidConfigError) as launched:
            on_demand_export_job.execute_in_process(
                run_config=run_config,
                instance=instance,
                resources={"storage": StorageResource(root=str(archived_root)), "clock": ClockResource()},
            )
        assert instance.get_runs_count() == 0  # refused before a run was created
    assert [e.message for e in launched.value.errors] == [expected]
    assert not (archived_root / "exports" / "1" / "on_demand").exists()  # nothing written


def test_filtered_customers_export_and_date_range(archived_root):
    result = _run(
        archived_root,
        business_id=1,
        datasets=["customers", "sales"],
        formats=["csv"],
        start_date="2025-03-08",
        end_date="2025-03-09",
        filters={"customer_type": "wholesale"},
    )
    assert result.success, _error(result)
    folder = archived_root / result.output_for_node("on_demand_export")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        {"manifest.json", *export_files(["customers", "sales"], ["csv"])}
    )
    # Ama Mensah is retail: the wholesale filter leaves no customer (Kwame only exists from the 10th).
    customers = (folder / "customers.csv").read_bytes().decode("utf-8-sig")
    assert "Ama Mensah" not in customers
    # Sales over the 8th and 9th: 17.00 on the 9th + 4.00 on the 8th.
    rows = {
        r[0]: r[1]
        for r in csv.reader(io.StringIO((folder / "sales-summary.csv").read_bytes().decode("utf-8-sig")))
        if len(r) > 1
    }
    assert rows["Net revenue"] == "21.00"


def test_a_period_with_no_data_is_a_valid_export_that_says_so(archived_root):
    # Business 3 (New York) sold nothing on Tuesday 4 March.
    result = _run(
        archived_root,
        business_id=3,
        datasets=["sales"],
        formats=["csv", "xlsx", "pdf"],
        period_kind="daily",
        period_key="2025-03-04",
    )
    assert result.success, _error(result)
    folder = archived_root / result.output_for_node("on_demand_export")
    text = (folder / "sales-summary.csv").read_bytes().decode("utf-8-sig")
    assert "No sales" in text
    assert (folder / "sales.csv").read_bytes().decode("utf-8-sig").count("\n") == 1  # the header row alone
    assert {p.name for p in folder.iterdir()} >= {"sales.csv", "sales.xlsx", "sales.pdf"}


def test_unarchived_day_is_a_clear_error(archived_root):
    result = _run(archived_root, business_id=1, datasets=["sales"], period_kind="daily", period_key="2025-03-20")
    assert not result.success
    assert "2025-03-20" in _error(result)
    assert isinstance(on_demand_export_job, dg.JobDefinition)
