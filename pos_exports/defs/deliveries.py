"""Delivery wiring: the due-subscriptions sensor and the delivery job (also the Launchpad's manual trigger)."""

import datetime as dt
import hashlib
import json
from pathlib import Path

import dagster as dg
from pydantic import Field

from pos_exports import config as settings
from pos_exports.archive.read import ArchiveMissing, load_businesses
from pos_exports.core.catalog import PeriodKind
from pos_exports.core.errors import ErrorKind
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.defs.retries import RETRY_POLICY, failure
from pos_exports.delivery import ledger, notify
from pos_exports.delivery.deliver import DeliveryOutcome, alert_unknown, deliver, sender_address
from pos_exports.delivery.email import SmtpSettings
from pos_exports.delivery.subscriptions import get
from pos_exports.failures import FailedItem, from_metadata, to_metadata
from pos_exports.operations.planning import due_pairs
from pos_exports.redact import scrub
from pos_exports.reports.period import period_for
from pos_exports.state import engine
from pos_exports.storage.base import LocalStorage

FIRST_LOOKBACK = dt.timedelta(days=1)  # how far back a sensor with no cursor looks (catch-up goes further)


class DeliveryConfig(dg.Config):
    subscription_id: int = Field(description="The subscription to deliver (`pos-exports subscriptions list`).")
    period_kind: PeriodKind = Field(description="daily | weekly | monthly (the subscription's frequency)")
    period_key: str = Field(description="2025-03-09 (daily), 2025-03-03 (a Monday), 2025-03 (monthly)")
    resend_unknown: bool = Field(
        default=False,
        description="Also send to the recipients whose outcome is `unknown` (the connection was lost after the "
        "message was sent, or a run died right after sending). RISK: they may already have it and get it twice "
        "(with the same Message-ID). Check the mail server's log first.",
    )
    recipients: list[str] = Field(default=[], description="Only these recipients (default: all of the subscription).")


def outbox_dir(storage: StorageResource) -> Path:
    """Where emails go without an SMTP server: `{storage}/outbox` (a local folder under var/ for S3 storage)."""
    store = storage.get()
    if isinstance(store, LocalStorage):
        return store.path("outbox")
    return settings.project_home() / "var" / "outbox"


def deliver_pair(
    context: dg.OpExecutionContext, storage: StorageResource, config: DeliveryConfig, clock: ClockResource
) -> tuple[DeliveryOutcome, dg.Failure | None]:
    """Deliver one (subscription, period) with `deliver()`; the outcome and the failure it amounts to (None: ok).

    Raises dg.Failure (with `failed_items`) when the delivery cannot be attempted or raised.
    """
    eng = engine()
    sub = get(eng, config.subscription_id)
    if sub is None:
        raise dg.Failure(allow_retries=False, description=f"subscription_id: no subscription {config.subscription_id}")
    if config.period_kind != sub.frequency:
        raise dg.Failure(
            allow_retries=False,
            description=f"period_kind: {config.period_kind!r} does not match the subscription's "
            f"frequency {sub.frequency!r}",
        )
    try:
        period_for(config.period_kind, config.period_key)
    except ValueError as exc:
        raise dg.Failure(allow_retries=False, description=f"period_key: {exc}") from None
    store = storage.get()
    business = {b.id: b for b in load_businesses(store)}.get(sub.business_id)
    if business is None:
        raise dg.Failure(allow_retries=False, description=f"business {sub.business_id} is not in the archive yet")
    period = period_for(config.period_kind, config.period_key)
    try:
        outcome = deliver(
            eng,
            store,
            sub,
            business,
            config.period_kind,
            config.period_key,
            run_id=context.run_id,
            smtp=SmtpSettings.from_env(),
            outbox_dir=outbox_dir(storage),
            resend=config.resend_unknown,
            recipients=config.recipients or None,
            now=clock.now(),
            clock=clock.now,
        )
    except ArchiveMissing as exc:  # permanent until the archive runs: never retried by the step policy
        items = notify.delivery_failed_items(sub.datasets, business.id, business.name, period, exc=exc)
        raise dg.Failure(allow_retries=False, description=str(exc), metadata=to_metadata(items)) from None
    except Exception as exc:  # recorded per business for the failure alert (pos_exports.failures)
        items = notify.delivery_failed_items(sub.datasets, business.id, business.name, period, exc=exc)
        description = f"{sub.name} {config.period_key}: {type(exc).__name__}: {exc}"
        raise failure(description, [exc], metadata=to_metadata(items)) from exc
    context.log.info(f"subscription {sub.id} {sub.name} {config.period_key}: {outcome.status}: {outcome.message}")
    if outcome.status == "unknown":  # maybe delivered: a retry could send it twice
        return outcome, dg.Failure(
            allow_retries=False, description=f"{sub.name} {config.period_key}: {outcome.message}"
        )
    if outcome.status in ("failed", "partial"):
        return outcome, failure(
            f"{sub.name} {config.period_key}: {outcome.message}",
            metadata={
                "results": json.dumps({r: res.response for r, res in outcome.results.items()}),
                **to_metadata(
                    notify.delivery_failed_items(sub.datasets, business.id, business.name, period, outcome.results)
                ),
            },
        )
    return outcome, None


@dg.op(
    retry_policy=RETRY_POLICY,
    description="Render (or reuse) the period's exports and email them to the subscription's recipients once.",
)
def deliver_subscription(
    context: dg.OpExecutionContext, config: DeliveryConfig, storage: StorageResource, clock: ClockResource
):
    outcome, failed = deliver_pair(context, storage, config, clock)
    context.add_output_metadata(
        {
            "status": outcome.status,
            "recipients": dg.MetadataValue.md(
                "\n".join(f"- {r}: {res.status} ({res.response})" for r, res in outcome.results.items())
                or outcome.message
            ),
            "folder": outcome.folder,
            **(
                {"not_included": dg.MetadataValue.md("\n".join(f"- {m}" for m in outcome.missing))}
                if outcome.missing
                else {}
            ),
        }
    )
    if failed is not None:
        raise failed
    return outcome.status


@dg.job(
    description="Deliver one subscription for one period (launched by the sensor, or by hand from the Launchpad).",
    tags={"pos_exports/kind": "delivery"},
)
def delivery_job():
    deliver_subscription()


class BatchItem(dg.Config):
    subscription_id: int = Field(description="The subscription to deliver.")
    period_kind: PeriodKind = Field(description="daily | weekly | monthly (the subscription's frequency)")
    period_key: str = Field(description="2025-03-09 (daily), 2025-03-03 (a Monday), 2025-03 (monthly)")


class DeliveryBatchConfig(dg.Config):
    items: list[BatchItem] = Field(description="The due (subscription, period) pairs this run delivers.")


@dg.op(
    retry_policy=RETRY_POLICY,
    description="Deliver each due (subscription, period) of one sensor tick, each on its own (`deliver()` per pair).",
)
def deliver_batch(
    context: dg.OpExecutionContext, config: DeliveryBatchConfig, storage: StorageResource, clock: ClockResource
):
    rows, items, retryable, failed_pairs = [], [], [], []
    for item in config.items:
        pair = DeliveryConfig(
            subscription_id=item.subscription_id, period_kind=item.period_kind, period_key=item.period_key
        )
        try:  # isolated: one pair's failure never stops (nor undoes) the others
            outcome, failed = deliver_pair(context, storage, pair, clock)
        except dg.Failure as exc:
            outcome, failed = DeliveryOutcome("failed", message=exc.description or ""), exc
        except Exception as exc:  # an unexpected error before `deliver()` (a resource, the archive index)
            outcome = DeliveryOutcome("failed", message=f"{type(exc).__name__}: {exc}")
            failed = failure(outcome.message, [exc])
        sub = get(engine(), item.subscription_id)
        results = outcome.results.values()
        message = scrub(failed.description if failed is not None else outcome.message)
        message += "".join(f"; {r}: {res.response}" for r, res in outcome.results.items() if res.status != "emailed")
        rows.append(
            dg.TableRecord(
                {
                    "subscription": item.subscription_id,
                    "business": sub.business_id if sub else -1,
                    "period": f"{item.period_kind} {item.period_key}",
                    "status": outcome.status,
                    "emailed": sum(r.status == "emailed" for r in results),
                    "failed": sum(r.status != "emailed" for r in results),
                    "message": message,
                }
            )
        )
        if failed is not None:
            failed_pairs.append(f"subscription {item.subscription_id} {item.period_key}: {message}")
            items += from_metadata(failed.metadata)
            retryable.append(failed.allow_retries)
    table = {"deliveries": dg.MetadataValue.table(rows, schema=BATCH_SCHEMA)}  # on the output, or the failure
    if failed_pairs:  # the others stay sent; a retry of the step re-sends nothing already emailed (the ledger)
        raise dg.Failure(
            description=f"{len(failed_pairs)} of {len(config.items)} deliveries failed: " + "; ".join(failed_pairs),
            allow_retries=all(retryable),
            metadata={**table, **to_metadata(items)},
        )
    context.add_output_metadata(table)
    return len(rows)


BATCH_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("subscription", "int"),
        dg.TableColumn("business", "int"),
        dg.TableColumn("period", "string"),
        dg.TableColumn("status", "string"),
        dg.TableColumn("emailed", "int", description="recipients emailed by this run"),
        dg.TableColumn("failed", "int", description="recipients not emailed (failed, rejected or unknown)"),
        dg.TableColumn("message", "string"),
    ]
)


@dg.job(
    description="Deliver the due (subscription, period)s of one tick of the due sensor, each isolated "
    "(per-pair results in the `deliveries` table of the run's metadata).",
    tags={"pos_exports/kind": "delivery"},
)
def delivery_batch_job():
    deliver_batch()


def batch_request(pairs: list[tuple[int, str, str]]) -> dg.RunRequest:
    """One run for these pairs; its run key is derived from them, so a re-evaluated tick launches it once."""
    ordered = sorted(pairs)
    digest = hashlib.sha256(json.dumps(ordered).encode()).hexdigest()[:24]
    return dg.RunRequest(
        run_key=f"delivery-batch:{digest}",
        run_config={
            "ops": {
                "deliver_batch": {
                    "config": {
                        "items": [{"subscription_id": s, "period_kind": k, "period_key": p} for s, k, p in ordered]
                    }
                }
            }
        },
        tags={"pos_exports/pairs": str(len(ordered))},
    )


def run_request(sub_id: int, kind: str, key: str, business_id: int, suffix: str = "") -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"delivery:{sub_id}:{kind}:{key}{suffix}",
        run_config={
            "ops": {
                "deliver_subscription": {"config": {"subscription_id": sub_id, "period_kind": kind, "period_key": key}}
            }
        },
        tags={
            "pos_exports/subscription": str(sub_id),
            "pos_exports/period": key,
            "pos_exports/business": str(business_id),
        },
    )


DEFAULT_MAX_RUNS_PER_TICK = settings.Settings.model_fields["max_runs_per_tick"].default
DEFAULT_BATCH_SIZE = settings.Settings.model_fields["delivery_batch_size"].default
BROKEN_PREFIX = "broken_subscription:"


def max_runs_per_tick() -> int:
    """`POS_EXPORTS_MAX_RUNS_PER_TICK`: how many delivery batch runs one tick of the due sensor launches at most."""
    return settings.settings().max_runs_per_tick


def delivery_batch_size() -> int:
    """`POS_EXPORTS_DELIVERY_BATCH_SIZE`: how many (subscription, period)s one delivery batch run sends at most."""
    return settings.settings().delivery_batch_size


def due_requests(
    storage,
    eng,
    last: dt.datetime,
    now: dt.datetime,
    waiting: list,
    limit: int = DEFAULT_MAX_RUNS_PER_TICK,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[list[dg.RunRequest], list, dict[int, str]]:
    """Batch run requests for the due (subscription, period)s whose archive is complete (`planning.due_pairs`):
    at most `limit` runs of `batch_size` pairs each; the rest keep waiting in the cursor."""
    pairs, still_waiting, broken = due_pairs(storage, eng, last, now, waiting, limit * batch_size)
    return [batch_request(pairs[i : i + batch_size]) for i in range(0, len(pairs), batch_size)], still_waiting, broken


def report_broken(eng, broken: dict[int, str], now: dt.datetime) -> list[str]:
    """Tell the data team once about each subscription that cannot be evaluated (and why)."""
    keys = {f"{BROKEN_PREFIX}{i}:{why}": why for i, why in broken.items()}

    def describe(new: list[str]) -> tuple[str, str]:
        lines = [keys[k] for k in new]
        subject = f"[pos_exports] {len(lines)} subscription(s) skipped: they cannot be evaluated"
        body = "\n".join(
            [
                *(f"- {line}" for line in lines),
                "",
                "Their deliveries are not launched until they are fixed; every other subscription is delivered as "
                "usual. What to do: correct the business's time zone in the POS, or give the subscription its own "
                "(`pos-exports subscriptions update ID --timezone Europe/London`), or fix its schedule "
                "(`pos-exports subscriptions show ID`). This is reported once.",
            ]
        )
        return subject, body

    return [keys[k] for k in notify.queue_once(eng, BROKEN_PREFIX, list(keys), describe, notify.data_team(), now=now)]


@dg.sensor(
    job=delivery_batch_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 5 minutes: the due (subscription, period)s whose archive is complete, in delivery batch "
    "runs of at most POS_EXPORTS_DELIVERY_BATCH_SIZE pairs (oldest first, at most POS_EXPORTS_MAX_RUNS_PER_TICK "
    "runs per tick; a broken subscription is skipped and reported).",
)
def due_subscriptions_sensor(context: dg.SensorEvaluationContext, storage: StorageResource, clock: ClockResource):
    cursor = json.loads(context.cursor) if context.cursor else {}
    now = clock.now()
    last = dt.datetime.fromisoformat(cursor["checked_at"]) if "checked_at" in cursor else now - FIRST_LOOKBACK
    eng = engine()
    requests, waiting, broken = due_requests(
        storage.get(), eng, last, now, cursor.get("waiting", []), max_runs_per_tick(), delivery_batch_size()
    )
    context.update_cursor(json.dumps({"checked_at": now.isoformat(), "waiting": waiting}))
    for line in report_broken(eng, broken, now):
        context.log.warning(f"skipped, reported to the data team: {line}")
    pairs = sum(len(r.run_config["ops"]["deliver_batch"]["config"]["items"]) for r in requests)
    account = f"{pairs} delivery(ies) in {len(requests)} batch run(s), {len(waiting)} waiting"
    account += " (archive incomplete or the next ticks)"
    if broken:
        account += f", {len(broken)} subscription(s) skipped: " + "; ".join(broken.values())
    if not requests:
        return dg.SkipReason(f"nothing to launch: {account}")
    context.log.info(account)
    return requests


def max_delivery_attempts() -> int:
    return settings.settings().delivery_max_attempts


def retry_requests(
    eng, max_attempts: int, businesses: dict[int, str] | None = None, *, now: dt.datetime
) -> tuple[list[dg.RunRequest], list[str]]:
    """Run requests for deliveries that failed for a temporary reason; give up (and say so) past the limit.

    Never an `unknown` outcome (maybe delivered); `sending` claims whose run is gone become `unknown` here
    and are alerted to the data team. A delivery given up is alerted as failures are: each business its
    own plain message, the data team the technical one (`businesses`: names by id, for the messages).
    """
    if gone := ledger.expire_claims(eng, ledger.stale_claims(eng, now), now):
        alert_unknown(eng, gone, sender_address(SmtpSettings.from_env()), now=now)
    requests, seen = [], set()
    for row in ledger.retryable(eng, max_attempts):
        key = (row["subscription_id"], row["period_kind"], row["period_key"])
        if key not in seen:
            seen.add(key)
            requests.append(run_request(*key, row["business_id"], suffix=f":retry{row['attempts']}"))
    given_up: list[str] = []
    items = []
    for row in ledger.history(eng, status="failed"):
        if row["error_kind"] == ErrorKind.TRANSIENT and row["attempts"] >= max_attempts:  # its kind, not its text
            ledger.mark_failed(eng, [row["id"]], f"gave up after {row['attempts']} attempts: {row['error']}", now=now)
            given_up.append(
                f"subscription {row['subscription_id']} {row['period_key']} to {row['recipient']}: {row['error']}"
            )
            sub = get(eng, row["subscription_id"])
            business_id = row["business_id"]
            name = (businesses or {}).get(business_id, f"business {business_id}")
            items.append(
                FailedItem.for_period(
                    business_id,
                    name,
                    "delivery",
                    ", ".join(sub.datasets) if sub else "exports",
                    period_for(row["period_kind"], row["period_key"]),
                    f"it could not be sent to {row['recipient']} after {row['attempts']} attempts; "
                    "the data team has been told and will send it again once the cause is fixed",
                    detail=given_up[-1],
                )
            )
    if items:
        team_body = "\n".join(["Deliveries given up after their last attempt:", *given_up, "", WHAT_TO_DO_DELIVERY])
        subject = f"[pos_exports] {len(items)} delivery(ies) given up"
        notify.queue_alerts(eng, notify.failure_alerts(eng, items, subject, team_body), now=now)
    return requests, given_up


WHAT_TO_DO_DELIVERY = (
    "What to do: check the SMTP server and the recipient address, then deliver again with "
    "`pos-exports subscriptions trigger ID --period KEY` (recipients already emailed are skipped)."
)


@dg.sensor(
    job=delivery_job,
    minimum_interval_seconds=6 * 3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 6 hours: re-runs deliveries that failed for a temporary reason (SMTP 4xx, timeouts), "
    "up to POS_EXPORTS_DELIVERY_MAX_ATTEMPTS (5); then gives up and notifies.",
)
def failed_delivery_retry_sensor(context: dg.SensorEvaluationContext, storage: StorageResource, clock: ClockResource):
    eng = engine()
    names = {b.id: b.name for b in load_businesses(storage.get())}
    now = clock.now()
    requests, given_up = retry_requests(eng, max_delivery_attempts(), names, now=now)
    if given_up:
        context.log.warning(f"gave up on {len(given_up)} delivery(ies): " + "; ".join(given_up))
    notify.flush(eng, SmtpSettings.from_env(), outbox_dir(storage), now=now)  # also the alerts of unknown outcomes
    return requests or dg.SkipReason(f"no delivery to retry; gave up on {len(given_up)}")
