"""Retries: which failures are worth another attempt, and how many attempts a failure may cost.

Budget (documented in the README): a step is attempted at most 1 + STEP_RETRIES times (exponential
backoff from RETRY_DELAY_SECONDS); `dagster.yaml` re-runs a failed run at most RUN_RETRIES more
times, and only when the run itself died (`retry_on_asset_or_op_failure: false`), so a step runs at
most ATTEMPT_BUDGET times in all. Permanent errors (bad config, unknown ids, a missing archive) are
raised with `allow_retries=False` and are attempted once.
"""

from __future__ import annotations

import dagster as dg

from pos_exports import config
from pos_exports.redact import scrub
from pos_exports.transient import is_transient  # the rule lives without Dagster; this name stays

STEP_RETRIES = 2
RUN_RETRIES = 1  # dagster.yaml: run_retries.max_retries
RETRY_DELAY_SECONDS = config.settings().retry_delay_seconds  # first wait; doubles
ATTEMPT_BUDGET = (1 + STEP_RETRIES) * (1 + RUN_RETRIES)

RETRY_POLICY = dg.RetryPolicy(
    max_retries=STEP_RETRIES, delay=RETRY_DELAY_SECONDS, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def failure(description: str, causes: list[BaseException] | None = None, **kwargs) -> dg.Failure:
    """A step failure that Dagster retries only when one of its causes is transient."""
    description = scrub(description)  # driver messages may quote a URL or a secret
    return dg.Failure(description=description, allow_retries=any(is_transient(c) for c in causes or []), **kwargs)
