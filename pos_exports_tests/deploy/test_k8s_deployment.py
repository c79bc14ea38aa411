"""The Kubernetes deployment example (deploy/k8s/values.yaml for the Dagster Helm chart): the run launcher and
run queue it configures are validated by Dagster's own config schemas (dagster-k8s), without a cluster."""

from __future__ import annotations

import re

import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher

from pos_exports.config import project_home
from pos_exports.shards import SHARD_TAG

VALUES = yaml.safe_load((project_home() / "deploy" / "k8s" / "values.yaml").read_text())


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _rendered_launcher_config(values: dict) -> dict:
    """The `run_launcher.config` the chart renders into dagster.yaml from `runLauncher.config.k8sRunLauncher`
    (its keys in snake case, env Secrets and ConfigMaps as names), plus what the chart itself adds."""
    config = {}
    for key, value in values.items():
        if key in ("envSecrets", "envConfigMaps"):
            value = [v["name"] for v in value]
        elif key == "runK8sConfig":
            value = {_snake(k): v for k, v in value.items()}
        config[_snake(key)] = value
    return config | {
        "instance_config_map": "dagster-instance",
        "postgres_password_secret": "dagster-postgresql-secret",
        "dagster_home": "/opt/dagster/dagster_home",
        "service_account_name": "dagster",
        "job_namespace": "dagster",
        "load_incluster_config": True,
    }


def test_k8s_run_launcher_config_is_valid_for_dagster_k8s():
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    config = _rendered_launcher_config(VALUES["runLauncher"]["config"]["k8sRunLauncher"])
    result = validate_config(K8sRunLauncher.config_type(), config)
    assert result.success, [e.message for e in result.errors]
    assert config["env_secrets"] == ["pos-exports-env"]  # the project's settings from the Secret
    assert not validate_config(K8sRunLauncher.config_type(), {**config, "env_secret": ["x"]}).success


def test_k8s_run_queue_limits_shards_and_is_a_valid_instance_run_queue(tmp_path):
    queue = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    run_queue = {
        "max_concurrent_runs": queue["maxConcurrentRuns"],
        "tag_concurrency_limits": queue["tagConcurrencyLimits"],
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"run_queue": run_queue}))
    config, _ = dagster_instance_config(str(tmp_path))
    limits = {(t["key"], t.get("value")): t["limit"] for t in config["run_queue"]["tag_concurrency_limits"]}
    assert limits[SHARD_TAG, None] == 4
    deployment = VALUES["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "pos_exports.definitions"]
    assert deployment["envSecrets"] == [{"name": "pos-exports-env"}]
