"""The production instance (deploy/dagster.production.yaml) on a real PostgreSQL, with step logs on S3 (moto)."""

from __future__ import annotations

import shutil

import dagster as dg

from pos_exports.config import project_home
from pos_exports.defs.archive import daily_archive
from pos_exports.defs.exports import weekly_exports
from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource
from pos_exports_tests.exports.conftest import archive_week
from pos_exports_tests.fixtures import load_sqlite


def test_archive_and_export_runs_on_postgres_instance_storage(tmp_path, new_pg_database, s3_storage_url, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(project_home() / "deploy" / "dagster.production.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", new_pg_database().replace("postgresql://", "postgresql+psycopg2://"))
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_BUCKET", s3_storage_url.split("/")[2])
    url = load_sqlite(tmp_path / "pos.sqlite")
    store = tmp_path / "store"
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
        # a run whose process died is failed past its time limit (run monitoring), then re-run once
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_runtime_seconds == 6 * 3600
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        from pos_exports.definitions import defs  # the code location loads against this instance

        assert defs.resolve_job_def("daily_archive_job") is not None
        archive = dg.materialize(
            [daily_archive],
            instance=instance,
            partition_key="2025-03-09",
            selection=[dg.AssetKey("sales_archive"), dg.AssetKey("audit_log_archive")],
            resources={
                "pos_database": PosDatabase(url=url),
                "storage": StorageResource(root=str(store)),
                "clock": ClockResource(),
            },
        )
        assert archive.success
        from pos_exports.storage.base import LocalStorage

        archive_week(url, LocalStorage(store))
        export = dg.materialize(
            [weekly_exports],
            instance=instance,
            partition_key="2025-03-03",
            run_config={"ops": {"weekly_exports": {"config": {"render": "all"}}}},
            resources={"storage": StorageResource(root=str(store)), "clock": ClockResource()},
        )
        assert export.success
        runs = instance.get_runs()
        assert {r.run_id for r in runs} == {archive.run_id, export.run_id}
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        materialized = instance.fetch_materializations(dg.AssetKey("sales_weekly_export"), limit=10).records
        assert materialized[0].asset_materialization.metadata["businesses"].value == 3
