"""Success and failure notifications, queued in the state database and sent with retries.

An alert is written to the `alerts` table before anything is sent; `flush` sends what is pending
and leaves an alert `pending` when its sending fails (SMTP down), so the next flush retries it.
After `MAX_ATTEMPTS` it is marked `failed` and logged, still visible with its error.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
from pathlib import Path

import sqlalchemy as sa

from pos_exports.delivery.email import EmailContent, SmtpSettings, build_message, send
from pos_exports.delivery.state import alerts
from pos_exports.delivery.subscriptions import get_settings
from pos_exports.redact import scrub

MAX_ATTEMPTS = 8
DATA_TEAM_ENV = "POS_EXPORTS_DATA_TEAM_EMAIL"
FROM_ADDRESS = "exports@pos-exports.invalid"
log = logging.getLogger(__name__)


def data_team() -> list[str]:
    """The data team's addresses (`POS_EXPORTS_DATA_TEAM_EMAIL`, comma-separated)."""
    return [a.strip() for a in os.environ.get(DATA_TEAM_ENV, "").split(",") if a.strip()]


def queue(
    eng: sa.Engine, kind: str, subject: str, body: str, recipients: list[str], business_id: int | None = None
) -> int | None:
    """Queue an alert for its (distinct) recipients; None when there is nobody to tell."""
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
                created_at=dt.datetime.now(dt.UTC),
            )
        ).inserted_primary_key[0]


def business_failure_recipients(eng: sa.Engine, business_id: int) -> list[str]:
    """The business's failure recipients (else its default ones), when it wants failure notifications."""
    settings = get_settings(eng, business_id)
    return list(settings.failure_recipients or settings.default_recipients) if settings.notify_failure else []


def failure_recipients(eng: sa.Engine, *business_ids: int | None) -> list[str]:
    """The data team, plus the failure recipients of each business named."""
    return data_team() + [r for b in business_ids if b is not None for r in business_failure_recipients(eng, b)]


def flush(eng: sa.Engine, smtp: SmtpSettings | None, outbox_dir: Path, *, sleep=None) -> dict[str, int]:
    """Send every pending alert; return counts of sent, still pending and given up."""
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
                build_message(content),
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
                    sent_at=dt.datetime.now(dt.UTC) if status == "sent" else None,
                )
            )
        counts[status] += 1
    return counts
