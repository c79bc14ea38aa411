"""What the Launchpad shows for a value outside the catalogue: the run is launched through GraphQL, as the UI
does, against the code location loaded in its own process (docs/architecture.md, "The Launchpad's refusals")."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql, infer_job_selector

import pos_exports.definitions

CODE_LOCATION = str(Path(pos_exports.definitions.__file__))


@pytest.mark.parametrize(
    ("field", "value", "path", "enum"),
    [
        ("formats", ["docx"], "formats[0]", "FormatName"),
        ("period_kind", "yearly", "period_kind", "PeriodKind"),
    ],
)
def test_the_launchpad_refuses_a_value_outside_the_catalogue_before_any_run(
    tmp_path, monkeypatch, field, value, path, enum
):
    store = tmp_path / "store"
    monkeypatch.setenv("POS_EXPORTS_STORAGE", str(store))
    config = {"business_id": 1, "period_kind": "daily", "period_key": "2025-03-09", field: value}
    with dg.instance_for_test() as instance, define_out_of_process_context(CODE_LOCATION, "defs", instance) as ctx:
        result = execute_dagster_graphql(
            ctx,
            LAUNCH_PIPELINE_EXECUTION_MUTATION,
            variables={
                "executionParams": {
                    "selector": infer_job_selector(ctx, "on_demand_export_job"),
                    "runConfigData": {"ops": {"on_demand_export": {"config": config}}},
                }
            },
        )
        launched = result.data["launchPipelineExecution"]
        assert launched["__typename"] == "RunConfigValidationInvalid"
        bad = value[0] if isinstance(value, list) else value
        # Dagster's own wording (the webserver checks the config against the schema, no project code runs)
        assert [e["message"] for e in launched["errors"]] == [
            f"Value at path root:ops:on_demand_export:config:{path} not in enum type {enum} got {bad}"
        ]
        assert instance.get_runs_count() == 0  # no run created
    assert not (store / "exports").exists()  # nothing written
