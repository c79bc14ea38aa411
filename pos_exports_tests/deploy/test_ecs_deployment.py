"""The ECS deployment example (deploy/ecs/): its instance config is validated and loaded by Dagster itself,
against its task definition registered on a moto server's ECS (no cluster needed)."""

from __future__ import annotations

import json
import shutil

import boto3
import dagster as dg
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster_aws.ecs import EcsRunLauncher

from pos_exports.config import SECRET, project_home
from pos_exports.shards import SHARD_TAG

ECS = project_home() / "deploy" / "ecs"


def test_ecs_run_launcher_config_is_valid_for_dagster_aws():
    launcher = yaml.safe_load((ECS / "dagster.ecs.yaml").read_text())["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_aws.ecs", "EcsRunLauncher")
    result = validate_config(EcsRunLauncher.config_type(), launcher["config"])
    assert result.success, [e.message for e in result.errors]
    # a typo is caught by the same validation (the test is not vacuous)
    assert not validate_config(EcsRunLauncher.config_type(), {**launcher["config"], "container": "run"}).success


def test_ecs_instance_loads_with_its_task_definition(
    tmp_path, s3_storage_url, s3_endpoint, new_pg_database, monkeypatch
):
    task_definition = json.loads((ECS / "task-definition.json").read_text())
    boto3.client("ecs", endpoint_url=s3_endpoint).register_task_definition(**task_definition)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ECS / "dagster.ecs.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", new_pg_database().replace("postgresql://", "postgresql+psycopg2://"))
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_BUCKET", s3_storage_url.split("/")[2])
    dagster_instance_config(str(home))  # the whole file against Dagster's instance schema
    with dg.DagsterInstance.get() as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, EcsRunLauncher)
        # the launcher found the family and its container `run` on ECS (it checks both when it starts)
        assert launcher.task_definition.endswith(":task-definition/pos-exports-run:1")
        assert launcher.container_name == task_definition["containerDefinitions"][0]["name"]
        limits = {
            (t["key"], t.get("value")): t["limit"]
            for t in instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
        }
        assert limits[SHARD_TAG, None] == 4
    # every project setting a run needs reaches the container, the secret ones from Secrets Manager only
    [container] = task_definition["containerDefinitions"]
    plain = {e["name"] for e in container["environment"]}
    secret = {s["name"] for s in container["secrets"]}
    assert SECRET <= secret and not plain & secret
    assert {"POS_EXPORTS_STORAGE", "POS_EXPORTS_SHARDS"} <= plain
