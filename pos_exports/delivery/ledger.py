"""The delivery ledger: one `deliveries` row per (subscription, period, recipient), so nothing is sent twice.

Status flow: `pending -> processing -> completed -> sending -> emailed | failed | unknown`, or `skipped`.

- `pending`     the row exists, nothing done yet (`open_rows`)
- `processing`  a run has claimed it and is rendering (`mark_processing`, sets `started_at`, `run_id`)
- `completed`   the files are rendered and stored, not sent yet (`mark_completed`); still that run's
- `sending`     claimed for the SMTP transaction by one run (`claim_sending`: a conditional UPDATE
                checked by rowcount, committed BEFORE connecting; sets `claimed_at`, `claimant`).
                Only the claimant sends; nobody else may claim the row while it is `sending`.
- `emailed`     accepted by the SMTP server (or written to the outbox): final, never sent again.
- `failed`      rendering or sending failed for sure (nothing was delivered); `error_kind` says whether it
                is worth another attempt (`core.errors.ErrorKind`, the only thing decisions read), `error`
                says how, for people:
                  transient  `temporary: ...`  4xx / connection problem BEFORE the message body was sent:
                                               `retryable()` picks it up again
                  permanent  `rejected: ...`   the server refused this recipient for good (5xx to RCPT):
                                               the row's `rejected` flag (not this text) keeps it from
                                               being sent again unless asked (`include_rejected=True`)
                  permanent  anything else     a render error or a permanent server/configuration error:
                                               a re-run tries again, the automatic retry does not
- `unknown`     the outcome is ambiguous: the connection dropped or the reply timed out after the
                message body was sent, or a later run found the row `sending` while its claimant is
                gone (killed after the server's 250, before the ledger write: `expire_claims`). The
                recipient may have it. Never sent again automatically (no re-run, step retry or retry
                sensor); only an explicit resend (`resend=True`: `pos-exports resend`) sends it again.
- `skipped`     nothing to send (`only_if_data` and the period has no data): final.

All timestamps are timezone-aware UTC (SQLite stores them naive; they are read back as UTC). Every function that
stamps a row or compares with the time takes `now` from its caller (the `clock` resource, the CLI's `kit.now()`,
the service's route): none reads the wall clock itself.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from pos_exports.core.errors import ErrorKind
from pos_exports.delivery.email import RecipientResult
from pos_exports.redact import scrub
from pos_exports.state import deliveries

STATUSES = ("pending", "processing", "completed", "sending", "emailed", "failed", "unknown", "skipped")
TEMPORARY = "temporary: "  # how a transient error reads (the kind itself is the `error_kind` column)
REJECTED = "rejected: "  # how a refused recipient's error reads (what decides is the `rejected` column)
UNKNOWN = "unknown: "
# A `processing` / `completed` row older than this belongs to a run that died before any SMTP contact;
# it may be claimed again.
STALE_PROCESSING = dt.timedelta(hours=1)
# A `sending` claim older than this is taken as abandoned (its process died or hangs): `unknown`.
SENDING_LEASE = dt.timedelta(hours=1)

_TIMESTAMPS = ("created_at", "started_at", "finished_at", "emailed_at", "claimed_at")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Aware UTC; a naive value is taken as UTC already (that is how this module stores them)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _bind_time(eng: sa.Engine, value: dt.datetime) -> dt.datetime:
    """SQLite drops the offset on write: hand it UTC wall time so comparisons stay right."""
    value = _utc(value)
    return value.replace(tzinfo=None) if eng.dialect.name == "sqlite" else value


def _row(mapping: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(mapping)
    for name in _TIMESTAMPS:
        row[name] = _utc(row.get(name))
    return row


def normalize_recipient(address: str) -> str:
    """The ledger key of a recipient: trimmed and lower-cased, so `A@x.com` and `a@x.com` get one email."""
    return address.strip().lower()


def _unique(recipients: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for r in recipients:
        key = normalize_recipient(r)
        if key and key not in seen:
            seen.append(key)
    return seen


def open_rows(
    eng: sa.Engine,
    subscription_id: int,
    business_id: int,
    period_kind: str,
    period_key: str,
    recipients: Sequence[str],
    run_id: str | None,
    *,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The ledger rows of `recipients` for this subscription and period, inserting missing ones as pending.

    Idempotent, also when two runs race: an existing row (whatever its status) is kept as it is.
    Returned in the order of `recipients` (normalized, duplicates dropped).
    """
    wanted = _unique(recipients)
    if not wanted:
        return []
    values = [
        {
            "subscription_id": subscription_id,
            "business_id": business_id,
            "period_kind": period_kind,
            "period_key": period_key,
            "recipient": r,
            "status": "pending",
            "attempts": 0,
            "rejected": False,
            "run_id": run_id,
            "created_at": _bind_time(eng, now),
        }
        for r in wanted
    ]
    dialect = eng.dialect.name
    with eng.begin() as conn:
        if dialect in ("postgresql", "sqlite"):
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            stmt = insert(deliveries).on_conflict_do_nothing(
                index_elements=["subscription_id", "period_key", "recipient"]
            )
            conn.execute(stmt, values)
        else:  # portable fallback: one savepoint per row
            for v in values:
                try:
                    with conn.begin_nested():
                        conn.execute(deliveries.insert().values(**v))
                except IntegrityError:
                    pass
        found = conn.execute(
            sa.select(deliveries).where(
                deliveries.c.subscription_id == subscription_id,
                deliveries.c.period_key == period_key,
                deliveries.c.recipient.in_(wanted),
            )
        ).mappings()
        by_recipient = {r["recipient"]: _row(r) for r in found}
    return [by_recipient[r] for r in wanted if r in by_recipient]


def is_sendable(
    row: Mapping[str, Any],
    *,
    include_rejected: bool = False,
    resend: bool = False,
    now: dt.datetime,
    stale_after: dt.timedelta = STALE_PROCESSING,
) -> bool:
    """Whether this row's recipient may be sent the export (see the module docstring).

    Never `emailed`, `skipped` or `sending` ones; `unknown` ones only with `resend`; rejected ones only
    with `include_rejected`; `processing` / `completed` ones only once their run is stale.
    """
    status = row["status"]
    if status in ("emailed", "skipped", "sending") or row.get("emailed_at") is not None:
        return False
    if status == "unknown":
        return resend
    if status == "failed" and row.get("rejected"):
        return include_rejected
    if status in ("processing", "completed"):
        started = _utc(row.get("started_at"))
        return started is None or started < now - stale_after
    return True


def pending_recipients(
    rows: Iterable[Mapping[str, Any]],
    *,
    include_rejected: bool = False,
    resend: bool = False,
    now: dt.datetime,
    stale_after: dt.timedelta = STALE_PROCESSING,
) -> list[str]:
    """The recipients still to email: never one already `emailed`, nor one another live run is on, nor one
    whose outcome is `unknown` (unless `resend`), nor (unless `include_rejected`) one refused for good."""
    return [
        r["recipient"]
        for r in rows
        if is_sendable(r, include_rejected=include_rejected, resend=resend, now=now, stale_after=stale_after)
    ]


def mark_processing(
    eng: sa.Engine,
    ids: Sequence[int],
    run_id: str | None,
    *,
    include_rejected: bool = False,
    resend: bool = False,
    stale_after: dt.timedelta = STALE_PROCESSING,
    now: dt.datetime,
) -> list[int]:
    """Claim rows for this run to render (status processing, `started_at`, `run_id`); returns the ids claimed.

    The claim is a conditional UPDATE checked by rowcount (the SQL form of `is_sendable`), so two runs
    cannot both claim a row, and an `emailed`, `sending`, `skipped` row (or a live `processing` one) is
    never claimed; an `unknown` one only with `resend`.
    """
    if not ids:
        return []
    stale = _bind_time(eng, now - stale_after)
    claimable = sa.or_(
        deliveries.c.status == "pending",
        sa.and_(deliveries.c.status == "unknown", sa.true() if resend else sa.false()),
        sa.and_(
            deliveries.c.status == "failed",
            sa.true() if include_rejected else sa.not_(deliveries.c.rejected),
        ),
        sa.and_(
            deliveries.c.status.in_(["processing", "completed"]),
            sa.or_(deliveries.c.started_at.is_(None), deliveries.c.started_at < stale),
        ),
    )
    claimed: list[int] = []
    with eng.begin() as conn:
        for row_id in ids:
            result = conn.execute(
                deliveries.update()
                .where(deliveries.c.id == row_id, deliveries.c.emailed_at.is_(None), claimable)
                .values(status="processing", started_at=_bind_time(eng, now), run_id=run_id, finished_at=None)
            )
            if result.rowcount == 1:
                claimed.append(row_id)
    return claimed


def claimant() -> str:
    """Who holds a `sending` claim: this process, as "host pid"."""
    return f"{socket.gethostname()} {os.getpid()}"


def claim_sending(eng: sa.Engine, row_id: int, run_id: str | None, *, now: dt.datetime) -> bool:
    """Claim one row for its SMTP transaction; True when this run may send to its recipient.

    Committed in its own transaction before connecting: only a row this run is rendering
    (`processing` / `completed` with this `run_id`) becomes `sending`, so a run whose render claim was
    taken over (it was stale) sends nothing.
    """
    with eng.begin() as conn:
        result = conn.execute(
            deliveries.update()
            .where(
                deliveries.c.id == row_id,
                deliveries.c.run_id == run_id,
                deliveries.c.status.in_(["processing", "completed"]),
                deliveries.c.emailed_at.is_(None),
            )
            .values(status="sending", claimed_at=_bind_time(eng, now), claimant=claimant())
        )
        return result.rowcount == 1


def _alive(holder: str | None) -> bool | None:
    """Whether the claimant process is alive: None when it cannot be told from here (another host)."""
    host, _, pid = (holder or "").rpartition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def claim_is_gone(row: Mapping[str, Any], now: dt.datetime, lease: dt.timedelta = SENDING_LEASE) -> bool:
    """A `sending` row whose claimant died (its process is gone from this host) or whose lease ran out."""
    if row["status"] != "sending":
        return False
    claimed = _utc(row.get("claimed_at"))
    if claimed is None or claimed < now - lease:
        return True
    return _alive(row.get("claimant")) is False


def expire_claims(eng: sa.Engine, rows: Iterable[Mapping[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    """Mark `unknown` the `sending` rows among `rows` whose claimant is gone; returns the rows marked.

    Whether the server accepted those messages is not known (the claimant may have died right after
    the server's 250), so they are never sent again automatically.
    """
    marked = []
    for row in rows:
        if not claim_is_gone(row, now):
            continue
        error = f"{UNKNOWN}the run {row.get('run_id')} ({row.get('claimant')}) claimed this email at " + (
            f"{_utc(row['claimed_at']):%Y-%m-%d %H:%M:%S} UTC" if row.get("claimed_at") else "an unknown time"
        )
        error += " and never recorded the outcome; the recipient may have it"
        with eng.begin() as conn:
            result = conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.id == row["id"],
                    deliveries.c.status == "sending",
                    deliveries.c.run_id == row.get("run_id"),
                )
                .values(
                    status="unknown",
                    error=error,
                    error_kind=None,
                    rejected=False,
                    finished_at=_bind_time(eng, now),
                )
            )
        if result.rowcount == 1:
            marked.append({**row, "status": "unknown", "error": error})
    return marked


def stale_claims(eng: sa.Engine, now: dt.datetime) -> list[dict[str, Any]]:
    """Every `sending` row whose claimant is gone (see `claim_is_gone`)."""
    with eng.connect() as conn:
        rows = [_row(r) for r in conn.execute(sa.select(deliveries).where(deliveries.c.status == "sending")).mappings()]
    return [r for r in rows if claim_is_gone(r, now)]


def mark_completed(
    eng: sa.Engine,
    ids: Sequence[int],
    files: list[dict[str, Any]],
    bytes: int,
    missing: list[dict[str, Any]] | None = None,
    *,
    now: dt.datetime,
) -> int:
    """The files are rendered and stored (not yet sent): status completed, `files`, `bytes`, `finished_at`;
    `missing`: what the delivery goes without ([{"dataset", "day", "reason"}], None: nothing)."""
    if not ids:
        return 0
    with eng.begin() as conn:
        result = conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(list(ids)), deliveries.c.status == "processing")
            .values(
                status="completed",
                files=files,
                bytes=bytes,
                missing=missing or None,
                error=None,
                error_kind=None,
                rejected=False,
                traceback=None,
                finished_at=_bind_time(eng, now),
            )
        )
        return result.rowcount


def result_kind(result: RecipientResult) -> ErrorKind | None:
    """The kind of error of a recipient not emailed (None: emailed, or `unknown`, which is never retried)."""
    if result.status in ("emailed", "unknown"):
        return None
    return ErrorKind.of(result.status == "retry")  # nothing was delivered and the server said "try later"


def is_rejected(result: RecipientResult) -> bool:
    """The server refused this recipient for good (5xx to RCPT): not sent again unless asked."""
    return (
        result.status == "failed" and result.stage == "rcpt" and result.code is not None and 500 <= result.code <= 599
    )


def _error_for(result: RecipientResult) -> str:
    text = result.response or "no response"
    if result.status == "retry":
        return TEMPORARY + text
    if result.status == "unknown":
        return UNKNOWN + text
    if is_rejected(result):
        return REJECTED + text
    return "failed: " + text


def _result_values(eng: sa.Engine, res: RecipientResult, now: dt.datetime) -> dict[str, Any]:
    now = _bind_time(eng, now)
    values: dict[str, Any] = {
        "attempts": deliveries.c.attempts + int(res.attempts),
        "smtp_response": res.response,
        "message_id": res.message_id or None,
        "rejected": is_rejected(res),
        "finished_at": now,
    }
    if res.status == "emailed":
        values.update(status="emailed", emailed_at=now, error=None, error_kind=None, traceback=None)
    elif res.status == "unknown":  # maybe delivered: no error kind, its status alone keeps it from any retry
        values.update(status="unknown", error=_error_for(res), error_kind=None)
    else:
        values.update(status="failed", error=_error_for(res), error_kind=result_kind(res))
    return values


def record_result(eng: sa.Engine, row_id: int, run_id: str | None, res: RecipientResult, *, now: dt.datetime) -> bool:
    """Store what `email.send` returned for the recipient of the row this run claimed (`claim_sending`).

    emailed -> status emailed, `emailed_at`, `message_id`, `smtp_response`, attempts added;
    retry   -> status failed, error_kind transient, error `temporary: ...` (picked up by `retryable`);
    unknown -> status unknown, error `unknown: ...` (never sent again automatically);
    failed  -> status failed, error_kind permanent, error `rejected: ...` and `rejected` set (5xx to RCPT)
               or `failed: ...`.
    Only the claimant writes (also over an `unknown` that another run concluded meanwhile: it knows).
    """
    with eng.begin() as conn:
        result = conn.execute(
            deliveries.update()
            .where(
                deliveries.c.id == row_id,
                deliveries.c.run_id == run_id,
                deliveries.c.status.in_(["sending", "unknown"]),
            )
            .values(**_result_values(eng, res, now))
        )
        return result.rowcount == 1


def record_results(
    eng: sa.Engine,
    subscription_id: int,
    period_key: str,
    results: Mapping[str, RecipientResult],
    *,
    now: dt.datetime,
) -> int:
    """`record_result` by recipient for rows not `emailed`, `skipped` or `sending` (returns rows updated)."""
    updated = 0
    with eng.begin() as conn:
        for recipient, res in results.items():
            result = conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.subscription_id == subscription_id,
                    deliveries.c.period_key == period_key,
                    deliveries.c.recipient == normalize_recipient(recipient),
                    deliveries.c.status.not_in(["emailed", "skipped"]),
                )
                .values(**_result_values(eng, res, now))
            )
            updated += result.rowcount
    return updated


def mark_skipped(eng: sa.Engine, ids: Sequence[int], reason: str, *, now: dt.datetime) -> int:
    """Nothing to send (`only_if_data` and no data): status skipped, final."""
    if not ids:
        return 0
    with eng.begin() as conn:
        result = conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(list(ids)), deliveries.c.status.in_(["processing", "completed"]))
            .values(
                status="skipped",
                error=reason,
                error_kind=None,
                rejected=False,
                finished_at=_bind_time(eng, now),
            )
        )
        return result.rowcount


def mark_failed(
    eng: sa.Engine,
    ids_or_key: Sequence[int] | tuple[int, str],
    error: str,
    traceback: str | None = None,
    *,
    kind: ErrorKind = ErrorKind.PERMANENT,
    now: dt.datetime,
) -> int:
    """Rendering or sending failed before any per-recipient result: status failed with the error and traceback.

    `kind`: a transient error is taken again by the retry sensor (`retryable`), and its text reads
    `temporary: ...` (the prefix is added here when missing); a permanent one is not, whatever its text.

    `ids_or_key`: row ids, or `(subscription_id, period_key)` for every row of that delivery except
    the ones the server rejected for good (`rejected`: their `rejected: ...` error is kept). Rows `emailed`,
    `skipped`, `sending` or `unknown` keep their status either way.
    """
    if isinstance(ids_or_key, tuple) and len(ids_or_key) == 2 and isinstance(ids_or_key[1], str):
        subscription_id, period_key = ids_or_key
        where = sa.and_(
            deliveries.c.subscription_id == subscription_id,
            deliveries.c.period_key == period_key,
            sa.not_(deliveries.c.rejected),
        )
    else:
        ids = list(ids_or_key)
        if not ids:
            return 0
        where = deliveries.c.id.in_(ids)
    if kind is ErrorKind.TRANSIENT and not error.startswith(TEMPORARY):
        error = TEMPORARY + error
    with eng.begin() as conn:
        result = conn.execute(  # never over an outcome: emailed, skipped, or one being / maybe sent
            deliveries.update()
            .where(where, deliveries.c.status.not_in(["emailed", "skipped", "sending", "unknown"]))
            .values(
                status="failed",
                error=scrub(error),
                error_kind=ErrorKind(kind).value,
                rejected=False,
                traceback=scrub(traceback) if traceback else None,
                finished_at=_bind_time(eng, now),
            )
        )
        return result.rowcount


def history(
    eng: sa.Engine,
    business_id: int | None = None,
    subscription_id: int | None = None,
    status: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Ledger rows, newest first, filtered by business, subscription, status, the run that last worked on them and
    `created_at` in [since, until); `limit` and `offset` page through them (the API)."""
    query = sa.select(deliveries)
    if run_id is not None:
        query = query.where(deliveries.c.run_id == run_id)
    if business_id is not None:
        query = query.where(deliveries.c.business_id == business_id)
    if subscription_id is not None:
        query = query.where(deliveries.c.subscription_id == subscription_id)
    if status is not None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        query = query.where(deliveries.c.status == status)
    if since is not None:
        query = query.where(deliveries.c.created_at >= _bind_time(eng, _aware(since, "since")))
    if until is not None:
        query = query.where(deliveries.c.created_at < _bind_time(eng, _aware(until, "until")))
    query = query.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc()).offset(offset or None)
    if limit is not None:
        query = query.limit(limit)
    with eng.connect() as conn:
        return [_row(r) for r in conn.execute(query).mappings()]


def delivery(eng: sa.Engine, row_id: int, business_id: int | None = None) -> dict[str, Any] | None:
    """One ledger row by id (None when there is none, or it is of another business than `business_id`)."""
    query = sa.select(deliveries).where(deliveries.c.id == row_id)
    if business_id is not None:
        query = query.where(deliveries.c.business_id == business_id)
    with eng.connect() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else _row(row)


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value


def retryable(eng: sa.Engine, max_attempts: int) -> list[dict[str, Any]]:
    """Failed rows with a transient error (`error_kind`) and fewer than `max_attempts` attempts, oldest first."""
    query = (
        sa.select(deliveries)
        .where(
            deliveries.c.status == "failed",
            deliveries.c.emailed_at.is_(None),
            deliveries.c.error_kind == ErrorKind.TRANSIENT.value,
            deliveries.c.attempts < max_attempts,
        )
        .order_by(deliveries.c.created_at, deliveries.c.id)
    )
    with eng.connect() as conn:
        return [_row(r) for r in conn.execute(query).mappings()]


def rows_for(eng: sa.Engine, pairs: Iterable[tuple[int, str]], chunk: int = 500) -> dict[tuple[int, str], list]:
    """The ledger rows of exactly these (subscription_id, period_key)s, by pair (one query per `chunk` pairs)."""
    wanted = sorted(set(pairs))
    out: dict[tuple[int, str], list[dict[str, Any]]] = {}
    key = sa.tuple_(deliveries.c.subscription_id, deliveries.c.period_key)
    with eng.connect() as conn:
        for i in range(0, len(wanted), chunk):
            query = sa.select(deliveries).where(key.in_(wanted[i : i + chunk])).order_by(deliveries.c.id)
            for r in conn.execute(query).mappings():
                out.setdefault((r["subscription_id"], r["period_key"]), []).append(_row(r))
    return out


def delivered(eng: sa.Engine, pairs: Iterable[tuple[int, str]], chunk: int = 500) -> set[tuple[int, str]]:
    """The (subscription_id, period_key)s among `pairs` whose every ledger row is `emailed`.

    One grouped query per `chunk` pairs: reads only these pairs' rows, never a subscription's whole history.
    """
    wanted = sorted(set(pairs))
    emailed = sa.func.sum(sa.case((deliveries.c.status == "emailed", 1), else_=0))
    done: set[tuple[int, str]] = set()
    with eng.connect() as conn:
        for i in range(0, len(wanted), chunk):
            query = (
                sa.select(deliveries.c.subscription_id, deliveries.c.period_key)
                .where(sa.tuple_(deliveries.c.subscription_id, deliveries.c.period_key).in_(wanted[i : i + chunk]))
                .group_by(deliveries.c.subscription_id, deliveries.c.period_key)
                .having(sa.func.count() == emailed)
            )
            done.update((r.subscription_id, r.period_key) for r in conn.execute(query))
    return done
