"""Success and failure notifications, queued in the state database and sent with retries.

An alert is written to the `alerts` table before anything is sent; `flush` sends what is pending
and leaves an alert `pending` when its sending fails (SMTP down), so the next flush retries it.
After `MAX_ATTEMPTS` it is marked `failed` and logged, still visible with its error.

Failure alerts are per business: each business named by a run's failed items gets its own message,
addressed to its own failure recipients only and holding only its own lines in plain language; the
data team gets the fleet-wide one (`failure_alerts`).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from pos_exports import config
from pos_exports.archive.read import ArchiveMissing
from pos_exports.core.errors import ErrorKind
from pos_exports.delivery import ledger
from pos_exports.delivery.email import EmailContent, SmtpSettings, build_message, send
from pos_exports.delivery.subscriptions import get_settings
from pos_exports.failures import ON_OUR_SIDE, TEMPORARY, FailedItem
from pos_exports.redact import scrub
from pos_exports.reports.period import Period
from pos_exports.state import alerted_runs, alerts, reported
from pos_exports.transient import is_transient

MAX_ATTEMPTS = 8
DATA_TEAM_ENV = "POS_EXPORTS_DATA_TEAM_EMAIL"
FROM_ADDRESS = "exports@pos-exports.invalid"
log = logging.getLogger(__name__)


def data_team() -> list[str]:
    """The data team's addresses (`POS_EXPORTS_DATA_TEAM_EMAIL`, comma-separated)."""
    return list(config.settings().data_team_email)


def queue(
    eng: sa.Engine,
    kind: str,
    subject: str,
    body: str,
    recipients: list[str],
    business_id: int | None = None,
    *,
    now: dt.datetime,
) -> int | None:
    """Queue an alert for its (distinct) recipients at `now`; None when there is nobody to tell."""
    recipients = sorted({r.strip().lower() for r in recipients if r and r.strip()})
    if not recipients:
        return None
    with eng.begin() as conn:
        return conn.execute(
            sa.insert(alerts).values(
                kind=kind,
                business_id=business_id,
                recipients=recipients,
                subject=scrub(subject),  # alerts quote error messages: never a secret in them
                body=scrub(body),
                status="pending",
                attempts=0,
                created_at=now,
            )
        ).inserted_primary_key[0]


def queue_once(
    eng: sa.Engine,
    prefix: str,
    keys: list[str],
    describe: Callable[[list[str]], tuple[str, str]],
    recipients: list[str],
    kind: str = "failure",
    *,
    now: dt.datetime,
) -> list[str]:
    """Queue one alert about those of `keys` (each starting with `prefix`) never reported before.

    The keys are recorded in `reported` in the same transaction as the alert, so each is reported once
    across ticks and processes (a concurrent reporter makes this one roll back and report nothing).
    `describe(new keys)` gives (subject, body). Returns the new keys (recorded even with nobody to tell).
    """
    keys = list(dict.fromkeys(keys))
    if not keys:
        return []
    try:
        with eng.begin() as conn:
            seen = set(
                conn.execute(
                    sa.select(reported.c.key).where(reported.c.key.startswith(prefix, autoescape=True))
                ).scalars()
            )
            new = [k for k in keys if k not in seen]
            if not new:
                return []
            conn.execute(sa.insert(reported), [{"key": k, "reported_at": now} for k in new])
            to = sorted({r.strip().lower() for r in recipients if r and r.strip()})
            if to:
                subject, body = describe(new)
                conn.execute(
                    sa.insert(alerts).values(
                        kind=kind,
                        recipients=to,
                        subject=subject,
                        body=body,
                        status="pending",
                        attempts=0,
                        created_at=now,
                    )
                )
    except sa.exc.IntegrityError:
        return []  # another evaluation recorded (and reported) them first
    return new


def forget_reported(eng: sa.Engine, prefix: str, before: str) -> None:
    """Drop the reported keys under `prefix` that sort before `prefix + before` (e.g. days past the horizon)."""
    with eng.begin() as conn:
        conn.execute(
            sa.delete(reported).where(
                reported.c.key.startswith(prefix, autoescape=True), reported.c.key < prefix + before
            )
        )


def business_failure_recipients(eng: sa.Engine, business_id: int) -> list[str]:
    """The business's failure recipients (else its default ones), when it wants failure notifications."""
    settings = get_settings(eng, business_id)
    return list(settings.failure_recipients or settings.default_recipients) if settings.notify_failure else []


def failure_recipients(eng: sa.Engine, *business_ids: int | None) -> list[str]:
    """The data team, plus the failure recipients of each business named."""
    return data_team() + [r for b in business_ids if b is not None for r in business_failure_recipients(eng, b)]


@dataclass(frozen=True)
class Alert:
    subject: str
    body: str
    recipients: list[str]
    business_id: int | None = None  # None: the data team's


def business_message(business_name: str, items: list[FailedItem]) -> tuple[str, str]:
    """Subject and plain-language body telling one business what of its own did not arrive."""
    periods = ", ".join(dict.fromkeys(i.period_label for i in items))
    act = any(i.must_act for i in items)
    subject = ("Action needed: " if act else "") + f"{business_name}: some exports for {periods} did not arrive"
    closing = (
        "Please act on the items marked so above; the data team has been told and takes care of the rest."
        if act
        else "You do not need to do anything: the data team has been told and is on it. "
        "Everything else was prepared as usual."
    )
    body = "\n".join(
        [f"Hello {business_name},", "", f"Some of your exports for {periods} did not arrive:", ""]
        + [f"- {i.business_line()}" for i in items]
        + ["", closing, "", "POS Exports"]
    )
    return subject, body


def failure_alerts(eng: sa.Engine, items: Iterable[FailedItem], team_subject: str, team_body: str) -> list[Alert]:
    """One alert per business named by `items` (its recipients, its lines only) and the data team's."""
    by_business: dict[int, list[FailedItem]] = {}
    for item in items:
        by_business.setdefault(item.business_id, []).append(item)
    out = []
    for business_id, own in sorted(by_business.items()):
        if recipients := business_failure_recipients(eng, business_id):
            out.append(Alert(*business_message(own[0].business_name, own), recipients, business_id))
    if team := data_team():
        out.append(Alert(team_subject, team_body, team))
    return out


def delivery_failed_items(
    sub_datasets: list[str],
    business_id: int,
    business_name: str,
    period: Period,
    results: dict | None = None,
    exc: BaseException | None = None,
) -> list[FailedItem]:
    """The failed items of one delivery: a recipient not emailed (from `results`), or the whole of it (`exc`)."""

    def item(reason: str, *, must_act: bool = False, transient: bool = False, detail: str = "") -> FailedItem:
        return FailedItem.for_period(
            business_id,
            business_name,
            "delivery",
            ", ".join(sub_datasets),
            period,
            reason,
            must_act=must_act,
            transient=transient,
            detail=detail,
        )

    if exc is not None:
        transient = is_transient(exc)  # the rule `deliver` records in the ledger (`error_kind`)
        if isinstance(exc, ArchiveMissing):
            reason = "the data it is made from is not archived yet"
        else:
            reason = TEMPORARY if transient else ON_OUR_SIDE
        return [item(reason, transient=transient, detail=f"{type(exc).__name__}: {exc}")]
    out = []
    for rcpt, res in (results or {}).items():
        if res.status == "emailed":
            continue
        detail = f"{rcpt}: {res.status} at {res.stage or '?'}: {res.response}"
        if res.status == "failed" and res.stage == "rcpt" and res.code and 500 <= res.code < 600:
            reason = f"the mail server for {rcpt} refused this address ({res.response}); please check it is right"
            out.append(item(reason, must_act=True, detail=detail))
        elif ledger.result_kind(res) is ErrorKind.TRANSIENT:  # the ledger's rule: the retry sensor sends it
            out.append(item(f"it could not be sent to {rcpt} yet: {TEMPORARY}", transient=True, detail=detail))
        else:
            out.append(item(f"it could not be sent to {rcpt}: {ON_OUR_SIDE}", detail=detail))
    return out


def queue_alerts(
    eng: sa.Engine,
    alerts_: list[Alert],
    *,
    kind: str = "failure",
    run_id: str | None = None,
    now: dt.datetime,
) -> bool:
    """Queue every alert in one transaction; with `run_id`, only if that run was not alerted before.

    Returns False (and queues nothing) for a run already alerted, so a run is alerted exactly once even
    when two sensors, or a re-evaluated tick, see it.
    """
    try:
        with eng.begin() as conn:
            if run_id is not None:
                conn.execute(sa.insert(alerted_runs).values(run_id=run_id, alerted_at=now))
            for a in alerts_:
                recipients = sorted({r.strip().lower() for r in a.recipients if r and r.strip()})
                if recipients:
                    conn.execute(
                        sa.insert(alerts).values(
                            kind=kind,
                            business_id=a.business_id,
                            recipients=recipients,
                            subject=a.subject,
                            body=a.body,
                            status="pending",
                            attempts=0,
                            created_at=now,
                        )
                    )
    except sa.exc.IntegrityError:
        return False
    return True


def flush(
    eng: sa.Engine, smtp: SmtpSettings | None, outbox_dir: Path, *, sleep=None, now: dt.datetime
) -> dict[str, int]:
    """Send every pending alert (a sent one is stamped `now`); return counts of sent, still pending and given up."""
    counts = {"sent": 0, "pending": 0, "failed": 0}
    with eng.connect() as conn:
        pending = conn.execute(sa.select(alerts).where(alerts.c.status == "pending").order_by(alerts.c.id)).all()
    for row in pending:
        content = EmailContent(
            subject=row.subject,
            text=row.body,
            html=f"<pre>{html.escape(row.body)}</pre>",
            from_name="POS Exports",
            from_address=(smtp.from_address if smtp and smtp.from_address else FROM_ADDRESS),
            reply_to=None,
            to=list(row.recipients),
            attachments=[],
            link_mode=False,
        )
        try:
            results = send(
                build_message(content, now=now),
                list(row.recipients),
                smtp,
                outbox_dir,
                retries=1,
                **({"sleep": sleep} if sleep else {}),
            )
            errors = [f"{r}: {res.response}" for r, res in results.items() if res.status != "emailed"]
        except Exception as exc:  # the alert must survive whatever sending does
            errors = [f"{type(exc).__name__}: {scrub(exc)}"]
        attempts = row.attempts + 1
        if not errors:
            status = "sent"
        else:
            status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
            log.error("alert %s (%s) not sent, attempt %s: %s", row.id, row.subject, attempts, "; ".join(errors))
        with eng.begin() as conn:
            conn.execute(
                sa.update(alerts)
                .where(alerts.c.id == row.id)
                .values(
                    status=status,
                    attempts=attempts,
                    last_error="; ".join(errors) or None,
                    sent_at=now if status == "sent" else None,
                )
            )
        counts[status] += 1
    return counts
