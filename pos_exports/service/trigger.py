"""Trigger: one subscription's chosen period delivered now by `delivery_job`, launched as the Launchpad launches
it: Dagster's GraphQL mutation `launchPipelineExecution`, so the instance's run coordinator and run launcher take
the run (queued for the daemon in production, a subprocess at once locally, a pod on Kubernetes). The API answers
at launch with the run id; the history then shows that run's ledger rows (`?run_id=`).

Where the mutation goes:
- `POS_EXPORTS_DAGSTER_URL` set (production): over HTTP to that Dagster webserver (`DagsterGraphQLClient`);
- unset: to the Dagster instance of this process (`DAGSTER_HOME`), with the project's code location served by a
  gRPC process of its own, started at the first trigger and kept for the service's life (as `dagster dev` does).

Never twice: the ledger is read first, and a period already emailed to every recipient launches nothing and says
so; the run itself claims each recipient's row before sending, so two triggers at once still email once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from pos_exports import config
from pos_exports.delivery import ledger
from pos_exports.delivery.subscriptions import Subscription
from pos_exports.reports.period import Period

JOB = "delivery_job"
LOCATION = "pos_exports.definitions"  # workspace.yaml's code location (a python_module is named after its module)
REPOSITORY = "__repository__"  # the repository of a `Definitions` object
ALREADY_SENT = "already emailed to every recipient: nothing sent twice"


class LaunchError(RuntimeError):
    """Dagster refused or could not take the run (the message says why; no secret in it)."""


def plan(eng: sa.Engine, sub: Subscription, chosen: Period, now: dt.datetime) -> dict[str, Any]:
    """Which of `sub`'s recipients the `chosen` period would email now, by the ledger's own rule
    (`ledger.is_sendable`): `to_send`, `already_emailed`, and `held` (recipient: status) for those a run would not
    email either (an outcome unknown, a refusal for good, another run sending it now)."""
    rows = ledger.rows_for(eng, [(sub.id, chosen.key)]).get((sub.id, chosen.key), [])
    by_recipient = {r["recipient"]: r for r in rows}
    planned: dict[str, Any] = {"period_kind": chosen.kind, "period_key": chosen.key}
    planned |= {"to_send": [], "already_emailed": [], "held": {}}
    for recipient in (ledger.normalize_recipient(r) for r in sub.recipients):
        row = by_recipient.get(recipient)
        if row is None or ledger.is_sendable(row, now=now):
            planned["to_send"].append(recipient)
        elif row["status"] == "emailed" or row.get("emailed_at") is not None:
            planned["already_emailed"].append(recipient)
        else:
            planned["held"][recipient] = "failed (refused for good)" if row.get("rejected") else row["status"]
    return planned


def trigger(
    eng: sa.Engine, sub: Subscription, chosen: Period, launcher: Launcher, requested_by: str, now: dt.datetime
) -> tuple[bool, dict[str, Any]]:
    """(launched, body) for the API: the run launched for the recipients still to email, or nothing launched when
    every recipient already has this period (`chosen`: `reports.period.period_for(sub.frequency, key)`)."""
    from pos_exports.defs.deliveries import run_request

    planned = plan(eng, sub, chosen, now)
    held = "; ".join(f"not {r}: {status}" for r, status in planned["held"].items())
    if not planned["to_send"] and not held:
        return False, {**planned, "run_id": None, "outcome": "already_sent", "message": ALREADY_SENT}
    if not planned["to_send"]:
        message = f"nothing to send: {held} (pos-exports resend decides an unknown outcome)"
        return False, {**planned, "run_id": None, "outcome": "nothing_to_send", "message": message}
    request = run_request(sub.id, planned["period_kind"], planned["period_key"], sub.business_id)
    tags = {**request.tags, "pos_exports/requested_by": requested_by}
    run_id, status = launcher.launch(request.run_config, tags)
    message = f"run {run_id} {status.lower()}: emails {', '.join(planned['to_send'])}"
    if planned["already_emailed"]:
        message += f"; not {', '.join(planned['already_emailed'])}, already emailed (nothing sent twice)"
    if held:
        message += f"; {held}"
    return True, {**planned, "run_id": run_id, "run_status": status, "outcome": "launched", "message": message}


class Launcher:
    """Launches `delivery_job` runs through Dagster's GraphQL API (see the module docstring); one per service."""

    def __init__(self, instance: Any = None, dagster_url: str | None = None) -> None:
        self._instance, self._url = instance, dagster_url
        self._lock = threading.Lock()
        self._stack = contextlib.ExitStack()
        self._workspace: Any = None

    def launch(self, run_config: Mapping[str, Any], tags: Mapping[str, str]) -> tuple[str, str]:
        """(id, status) of the run Dagster created and handed to its run coordinator: QUEUED for the daemon (the
        default coordinator), STARTING or STARTED when launched at once; LaunchError otherwise."""
        url = self._url or config.settings().dagster_url
        if url:
            return _over_http(url, run_config, tags)
        params = {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "pipelineName": JOB},
            "runConfigData": dict(run_config),
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        return _launched(self._execute(params))

    def _execute(self, params: dict[str, Any]) -> dict[str, Any]:
        from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION
        from dagster_graphql.schema import create_schema

        with self._lock:
            context = self._context()
        result = asyncio.run(
            create_schema().execute_async(
                LAUNCH_PIPELINE_EXECUTION_MUTATION,
                context_value=context,
                variable_values={"executionParams": params},
            )
        )
        if result.errors:
            raise LaunchError(f"Dagster refused the run: {result.errors[0].message}")
        return result.data["launchPipelineExecution"]

    def _context(self) -> Any:
        """A request context on the workspace (its gRPC code server started once, reloaded if it died)."""
        import dagster as dg
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import ModuleTarget

        if self._workspace is None:
            instance = self._instance or self._stack.enter_context(dg.DagsterInstance.get())
            target = ModuleTarget(module_name=LOCATION, attribute=None, working_directory=None, location_name=None)
            self._workspace = self._stack.enter_context(WorkspaceProcessContext(instance, target))
        context = self._workspace.create_request_context()
        if LOCATION not in context.get_code_location_entries() or context.has_code_location_error(LOCATION):
            self._workspace.reload_code_location(LOCATION)
            context = self._workspace.create_request_context()
        return context

    def close(self) -> None:
        """Stops the code server this launcher started (the app's shutdown)."""
        with self._lock:
            self._stack.close()
            self._workspace = None


def _launched(answer: Mapping[str, Any]) -> tuple[str, str]:
    kind = answer.get("__typename")
    if kind == "LaunchRunSuccess":
        return answer["run"]["runId"], answer["run"]["status"]
    if kind == "RunConfigValidationInvalid":
        raise LaunchError("Dagster refused the run's config: " + "; ".join(e["message"] for e in answer["errors"]))
    raise LaunchError(f"Dagster did not launch the run ({kind}): {answer.get('message', '')}".rstrip(": "))


def _over_http(url: str, run_config: Mapping[str, Any], tags: Mapping[str, str]) -> tuple[str, str]:
    from urllib.parse import urlsplit

    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    parts = urlsplit(url)
    client = DagsterGraphQLClient(
        parts.hostname or "localhost",
        port_number=parts.port,
        use_https=parts.scheme == "https",
        timeout=30,
    )
    try:
        run_id = client.submit_job_execution(
            JOB,
            repository_location_name=LOCATION,
            repository_name=REPOSITORY,
            run_config=dict(run_config),
            tags=dict(tags),
        )
        return run_id, client.get_run_status(run_id).value
    except DagsterGraphQLClientError as exc:
        raise LaunchError(f"the Dagster webserver did not launch the run: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a transport error: say which server, never a credential
        from pos_exports.redact import scrub

        raise LaunchError(scrub(f"the Dagster webserver at {url} is not reachable: {exc}")) from None
