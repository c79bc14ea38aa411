"""Operations statistics: how deliveries went, what the exports weigh, what fires next, what is overdue.

Plain functions over the state database (the delivery ledger) and the storage (export manifests),
used by the `delivery_statistics` asset (`defs/stats.py`), the weekly summary (`operations/summary.py`) and the
`pos-exports stats | upcoming | overdue` commands (`cli/history.py`).

Definitions (per ledger row, i.e. per subscription x period x recipient):
- attempted   every row in the window (`created_at` in `[since, until)`)
- emailed     status `emailed`
- failed      status `failed`
- failed_transient  of those, the ones whose error is transient (`error_kind`): the retry sensor takes them
              again (until POS_EXPORTS_DELIVERY_MAX_ATTEMPTS)
- skipped     status `skipped` (`only_if_data` and no data: nothing to send; not a failure)
- unknown     status `unknown` (maybe delivered; neither a success nor a failure)
- pending     not settled yet: `pending`, `processing`, `completed` (rendered) or `sending`
- retried     `attempts > 1` (the SMTP transaction was tried more than once)
- success_rate  emailed / (emailed + failed); None when nothing is settled
- bytes, files  what was emailed: the files of `emailed` rows, counted once per recipient
- durations   `finished_at - started_at` (claim to files rendered and stored) of every row having
              both; median and p95 (nearest rank) in seconds
Per dataset / format a row counts when its files (else, before anything was rendered, its
subscription) include that dataset / format; bytes and files count only that dataset's / format's files.
"""

import datetime as dt
import json
import math
import statistics as pystats
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from pos_exports.archive.read import load_businesses
from pos_exports.core.catalog import DATASETS, FORMATS
from pos_exports.core.errors import ErrorKind
from pos_exports.core.figures import percent_text
from pos_exports.delivery import ledger, schedule
from pos_exports.delivery.deliver import missing_archive
from pos_exports.delivery.subscriptions import Subscription, find
from pos_exports.exports.manifest import MANIFEST
from pos_exports.reports.period import period_for
from pos_exports.storage import Storage

UTC = dt.UTC
PERIOD_FOLDERS = ("daily", "weekly", "monthly")  # exports/{business}/{kind}/{key}/
EXPORT_KINDS = (*PERIOD_FOLDERS, "on_demand", "subscription")


# --- time helpers -----------------------------------------------------------------------------------


def as_instant(value: dt.datetime | dt.date | None, name: str = "time") -> dt.datetime | None:
    """An aware UTC datetime: a date is its 00:00 UTC, a naive datetime is taken as UTC."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), UTC)
    raise TypeError(f"{name} must be a date or datetime, got {value!r}")


def _as_day(value: dt.datetime | dt.date | None) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return as_instant(value).date()
    return value


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """Nearest-rank percentile (`fraction` 0..1) of the values; None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


# --- deliveries ---------------------------------------------------------------------------------------


def outcome(row: Mapping[str, Any]) -> str:
    """emailed | failed | skipped | unknown | pending: what a ledger row amounts to (see the module docstring)."""
    status = row["status"]
    return status if status in ("emailed", "failed", "skipped", "unknown") else "pending"


def duration_seconds(row: Mapping[str, Any]) -> float | None:
    started, finished = row.get("started_at"), row.get("finished_at")
    if started is None or finished is None:
        return None
    return (finished - started).total_seconds()


def _counts(rows: list[dict], files_of) -> dict[str, Any]:
    """The figures of the module docstring over `rows`; `files_of(row)` gives the files that count."""
    outcomes = Counter(outcome(r) for r in rows)
    emailed_files = [f for r in rows if outcome(r) == "emailed" for f in files_of(r)]
    durations = [d for r in rows if (d := duration_seconds(r)) is not None]
    settled = outcomes["emailed"] + outcomes["failed"]
    median = pystats.median(durations) if durations else None
    return {
        "attempted": len(rows),
        "emailed": outcomes["emailed"],
        "failed": outcomes["failed"],
        "failed_transient": sum(
            1 for r in rows if outcome(r) == "failed" and r.get("error_kind") == ErrorKind.TRANSIENT
        ),
        "skipped": outcomes["skipped"],
        "unknown": outcomes["unknown"],
        "pending": outcomes["pending"],
        "retried": sum(1 for r in rows if (r.get("attempts") or 0) > 1),
        "success_rate": (outcomes["emailed"] / settled) if settled else None,
        "recipients": len({r["recipient"] for r in rows}),
        "deliveries": len({(r["subscription_id"], r["period_key"]) for r in rows}),
        "files": len(emailed_files),
        "bytes": sum(int(f.get("bytes") or 0) for f in emailed_files),
        "median_seconds": float(median) if median is not None else None,
        "p95_seconds": percentile(durations, 0.95),
    }


def _row_files(row: Mapping[str, Any]) -> list[dict]:
    files = row.get("files") or []
    if isinstance(files, str):  # a JSON column read back as text by some drivers
        files = json.loads(files)
    return list(files)


def _row_parts(row: Mapping[str, Any], subs: Mapping[int, Subscription]) -> tuple[set[str], set[str]]:
    """(datasets, formats) of a delivery row: from its files, else from its subscription."""
    files = _row_files(row)
    if files:
        return {f["dataset"] for f in files}, {f["format"] for f in files}
    sub = subs.get(row["subscription_id"])
    if sub is None:
        return set(), set()
    return set(sub.datasets), set(sub.formats)


def delivery_stats(
    eng: sa.Engine,
    since: dt.datetime | dt.date | None = None,
    until: dt.datetime | dt.date | None = None,
    business_id: int | None = None,
    *,
    storage: Storage | None = None,
) -> dict[str, Any]:
    """Delivery figures over ledger rows created in `[since, until)` (of one business, or all).

    Top-level figures (see the module docstring), `by_status`, `by_dataset` and `by_format` (the same
    figures), and `exports` (`export_stats` over periods ending in the window) when `storage` is given.
    """
    start, end = as_instant(since, "since"), as_instant(until, "until")
    rows = ledger.history(eng, business_id=business_id, since=start, until=end)
    subs = {s.id: s for s in find(eng)}
    parts = {r["id"]: _row_parts(r, subs) for r in rows}
    result: dict[str, Any] = {
        "since": start.isoformat() if start else None,
        "until": end.isoformat() if end else None,
        "business_id": business_id,
        **_counts(rows, _row_files),
        "by_status": dict(sorted(Counter(r["status"] for r in rows).items())),
    }
    by_dataset: dict[str, dict] = {}
    by_format: dict[str, dict] = {}
    for name in sorted({d for ds, _ in parts.values() for d in ds}, key=_order(DATASETS)):
        subset = [r for r in rows if name in parts[r["id"]][0]]
        by_dataset[name] = _counts(subset, lambda r, n=name: [f for f in _row_files(r) if f["dataset"] == n])
    for name in sorted({f for _, fs in parts.values() for f in fs}, key=_order(FORMATS)):
        subset = [r for r in rows if name in parts[r["id"]][1]]
        by_format[name] = _counts(subset, lambda r, n=name: [f for f in _row_files(r) if f["format"] == n])
    result["by_dataset"] = by_dataset
    result["by_format"] = by_format
    result["exports"] = export_stats(storage, start, end, business_id=business_id) if storage is not None else None
    return result


def _order(known: tuple[str, ...]):
    return lambda name: (known.index(name) if name in known else len(known), name)


# --- exports --------------------------------------------------------------------------------------------


def _export_kind(parts: list[str]) -> str | None:
    """The kind of an export folder from its manifest key's parts, None for anything else."""
    if len(parts) == 5 and parts[2] in PERIOD_FOLDERS:
        return parts[2]  # exports/{business}/{kind}/{key}/manifest.json
    if len(parts) == 5 and parts[2] == "on_demand":
        return "on_demand"  # exports/{business}/on_demand/{kind-key-run}/manifest.json
    if len(parts) == 7 and parts[2] == "subscriptions":
        return "subscription"  # exports/{business}/subscriptions/{id}/{kind}/{key}/manifest.json
    return None


def _last_day_from_path(kind: str, parts: list[str]) -> dt.date | None:
    """The period's last day as the folder names it, None when it does not (then the manifest says)."""
    try:
        if kind in PERIOD_FOLDERS:
            return period_for(kind, parts[3]).last_day
        if kind == "subscription":
            return period_for(parts[4], parts[5]).last_day
        if kind == "on_demand":  # {kind}-{key}-{run id prefix}
            period_kind, _, rest = parts[3].partition("-")
            return period_for(period_kind, rest.rsplit("-", 1)[0]).last_day
    except (ValueError, IndexError):
        return None
    return None


def export_stats(
    storage: Storage,
    since: dt.datetime | dt.date | None = None,
    until: dt.datetime | dt.date | None = None,
    *,
    business_id: int | None = None,
) -> dict[str, Any]:
    """Exports produced, from the manifests in storage: periods whose last day is in `[since, until)`.

    Kinds: daily, weekly, monthly (the period folders), on_demand, subscription (filtered renders).
    Returns periods (manifests), files and bytes in total, `by_kind` (periods, files, bytes),
    `by_dataset` and `by_format` (files, bytes) and the `businesses` seen.
    """
    first, end = _as_day(since), _as_day(until)
    prefix = f"exports/{business_id}/" if business_id is not None else "exports/"
    totals = {"periods": 0, "files": 0, "bytes": 0}
    by_kind: dict[str, dict] = {}
    by_dataset: dict[str, dict] = {}
    by_format: dict[str, dict] = {}
    businesses: set[int] = set()
    for key in storage.list(prefix):
        parts = key.split("/")
        if parts[-1] != MANIFEST or not key.startswith(prefix) or (kind := _export_kind(parts)) is None:
            continue
        last_day = _last_day_from_path(kind, parts)
        if kind in PERIOD_FOLDERS and last_day is None:
            continue  # not a period folder after all
        if last_day is not None and ((first and last_day < first) or (end and last_day >= end)):
            continue  # outside the window: the manifest need not be read
        manifest = json.loads(storage.read_bytes(key))
        if last_day is None:
            last_day = dt.date.fromisoformat(manifest["period"]["last_day"])
            if (first and last_day < first) or (end and last_day >= end):
                continue
        files = manifest.get("files", [])
        size = sum(int(f["bytes"]) for f in files)
        totals["periods"] += 1
        totals["files"] += len(files)
        totals["bytes"] += size
        entry = by_kind.setdefault(kind, {"periods": 0, "files": 0, "bytes": 0})
        entry["periods"] += 1
        entry["files"] += len(files)
        entry["bytes"] += size
        for f in files:
            for table, name in ((by_dataset, f["dataset"]), (by_format, f["format"])):
                item = table.setdefault(name, {"files": 0, "bytes": 0})
                item["files"] += 1
                item["bytes"] += int(f["bytes"])
        if parts[1].isdigit():
            businesses.add(int(parts[1]))
    return {
        **totals,
        "by_kind": {k: by_kind[k] for k in sorted(by_kind, key=_order(EXPORT_KINDS))},
        "by_dataset": {k: by_dataset[k] for k in sorted(by_dataset, key=_order(DATASETS))},
        "by_format": {k: by_format[k] for k in sorted(by_format, key=_order(FORMATS))},
        "businesses": sorted(businesses),
    }


# --- what fires next, what is overdue ------------------------------------------------------------------


def business_zones(storage: Storage) -> dict[int, str]:
    """business id -> IANA zone, as the archive last saw the businesses (`archive/businesses.json`)."""
    return {b.id: b.timezone for b in load_businesses(storage)}


def _base(sub: Subscription) -> dict[str, Any]:
    return {
        "subscription_id": sub.id,
        "business_id": sub.business_id,
        "name": sub.name,
        "frequency": sub.frequency,
        "when": sub.when,
        "recipients": list(sub.recipients),
    }


def upcoming(
    eng: sa.Engine,
    zones: Mapping[int, str],
    now: dt.datetime,
    limit: int | None = None,
    *,
    business_id: int | None = None,
) -> list[dict[str, Any]]:
    """The next fire (strictly after `now`) of every active subscription, soonest first.

    Each entry: subscription_id, business_id, name, frequency, when, recipients, fire_utc, fire_local
    (in the subscription's zone), timezone, period_kind and period_key (what that fire delivers) and
    error (None, or why the schedule cannot be evaluated, e.g. an unknown business zone; such
    entries come last with fire_utc None).
    """
    now = as_instant(now, "now")
    entries = []
    for sub in find(eng, business_id=business_id, active=True):
        tz = zones.get(sub.business_id)
        entry = _base(sub)
        try:
            fire = schedule.next_fire(sub, tz, now)
            zone = schedule.zone_of(sub, tz)
            kind, key = schedule.period_at(sub, tz, fire)
            entry.update(
                fire_utc=fire,
                fire_local=fire.astimezone(zone),
                timezone=zone.key,
                period_kind=kind,
                period_key=key,
                error=None,
            )
        except schedule.ScheduleError as exc:
            entry.update(
                fire_utc=None,
                fire_local=None,
                timezone=sub.timezone or tz,
                period_kind=sub.frequency,
                period_key=None,
                error=str(exc),
            )
        entries.append(entry)
    entries.sort(key=lambda e: (e["fire_utc"] is None, e["fire_utc"] or now, e["subscription_id"]))
    return entries[:limit] if limit else entries


def overdue(
    eng: sa.Engine,
    storage: Storage | None,
    zones: Mapping[int, str],
    now: dt.datetime,
    lookback_days: int = 7,
    *,
    business_id: int | None = None,
) -> list[dict[str, Any]]:
    """Fires of active subscriptions in `(now - lookback_days, now]` whose period is not delivered.

    Fires before the subscription was created are not looked at. A fire is delivered when its period
    has ledger rows and every one is `emailed` (or `skipped`: `only_if_data` with no data). Otherwise the
    entry says why (`reason`):
    - `failed`               some recipient failed (`detail`: how many, and the error)
    - `unknown`              some recipient's outcome is unknown (maybe delivered; `pos-exports resend`)
    - `in_progress`          rows are pending / processing / rendered but not sent yet
    - `waiting_for_archive`  no row yet, and the period's archive is incomplete (`detail`: what is missing)
    - `never_ran`            no row yet, and nothing in the archive is missing (no storage: not checked)
    - `schedule_error`       the schedule cannot be evaluated (e.g. no zone for the business)
    Entries are oldest fire first; each has the fields of `upcoming` plus fire_utc, fire_local,
    period_kind, period_key, reason, detail and statuses (ledger status -> rows).
    """
    now = as_instant(now, "now")
    since = now - dt.timedelta(days=lookback_days)
    entries = []
    for sub in find(eng, business_id=business_id, active=True):
        tz = zones.get(sub.business_id)
        start = max(since, sub.created_at) if sub.created_at else since  # nothing was due before it existed
        try:
            fires = schedule.due(sub, tz, start, now) if start < now else []
            zone = schedule.zone_of(sub, tz) if fires else None
        except schedule.ScheduleError as exc:
            entries.append(
                {
                    **_base(sub),
                    "fire_utc": None,
                    "fire_local": None,
                    "timezone": sub.timezone or tz,
                    "period_kind": sub.frequency,
                    "period_key": None,
                    "reason": "schedule_error",
                    "detail": str(exc),
                    "statuses": {},
                }
            )
            continue
        if not fires:
            continue
        by_key: dict[str, list[dict]] = {}
        for row in ledger.history(eng, subscription_id=sub.id):
            by_key.setdefault(row["period_key"], []).append(row)
        for fire, kind, key in fires:
            rows = by_key.get(key, [])
            reason, detail = _why(storage, sub, tz or "UTC", kind, key, rows, now)
            if reason is None:
                continue
            entries.append(
                {
                    **_base(sub),
                    "fire_utc": fire,
                    "fire_local": fire.astimezone(zone),
                    "timezone": zone.key,
                    "period_kind": kind,
                    "period_key": key,
                    "reason": reason,
                    "detail": detail,
                    "statuses": dict(sorted(Counter(r["status"] for r in rows).items())),
                }
            )
    entries.sort(key=lambda e: (e["fire_utc"] is not None, e["fire_utc"] or now, e["subscription_id"]))
    return entries


def _why(
    storage: Storage | None,
    sub: Subscription,
    zone: str,
    kind: str,
    key: str,
    rows: list[dict],
    now: dt.datetime,
) -> tuple[str | None, str]:
    if rows:
        outcomes = [outcome(r) for r in rows]
        if all(o in ("emailed", "skipped") for o in outcomes):
            return None, ""
        unknown = [r["recipient"] for r, o in zip(rows, outcomes, strict=True) if o == "unknown"]
        if unknown:
            return "unknown", (
                f"outcome unknown for {', '.join(unknown)} (maybe delivered; not sent again): check, then "
                f"`pos-exports resend {sub.id} --period {key} --yes`"
            )
        failed = [r for r, o in zip(rows, outcomes, strict=True) if o == "failed"]
        if failed:
            error = (failed[0].get("error") or "no error recorded").strip().splitlines()[0]
            who = ", ".join(r["recipient"] for r in failed)
            return "failed", f"{len(failed)} of {len(rows)} recipient(s) failed ({who}): {error}"
        waiting = [r for r, o in zip(rows, outcomes, strict=True) if o == "pending"]
        states = ", ".join(f"{r['recipient']} {r['status']}" for r in waiting)
        return "in_progress", f"not sent yet: {states}"
    if storage is not None:
        gaps = missing_archive(sub, sub.business_id, zone, period_for(kind, key), now)
        missing = [str(g) for g in gaps if not g.lost]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            return "waiting_for_archive", f"the archive lacks {', '.join(missing[:5])}{more}"
        if gaps:  # only snapshots never captured: it is delivered without them
            lost = ", ".join(str(g) for g in gaps)
            return "never_ran", f"no delivery was started; it goes without {lost} (snapshot never captured: lost)"
        return "never_ran", "no delivery was started although the archive is complete"
    return "never_ran", "no delivery was started (archive not checked)"


# --- The statistics as a table (the asset's metadata, the CLI) ---------------------------------------


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else percent_text(value)  # `15.47%`, as the files write it


def _fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown_table(stats: Mapping[str, Any]) -> str:
    header = "| | attempted | emailed | failed | retried | success | files | bytes | median s | p95 s |"
    lines = [header, "|" + " --- |" * 10]

    def line(label: str, c: Mapping[str, Any]) -> str:
        return (
            f"| {label} | {c['attempted']} | {c['emailed']} | {c['failed']} | {c['retried']} | "
            f"{_fmt_rate(c['success_rate'])} | {c['files']} | {c['bytes']} | "
            f"{_fmt_seconds(c['median_seconds'])} | {_fmt_seconds(c['p95_seconds'])} |"
        )

    lines.append(line("**all**", stats))
    lines += [line(f"dataset {name}", c) for name, c in stats["by_dataset"].items()]
    lines += [line(f"format {name}", c) for name, c in stats["by_format"].items()]
    exports = stats.get("exports")
    if exports is not None:
        lines += ["", "| exports | periods | files | bytes |", "| --- | --- | --- | --- |"]
        lines += [f"| {k} | {v['periods']} | {v['files']} | {v['bytes']} |" for k, v in exports["by_kind"].items()]
        lines.append(f"| **all** | {exports['periods']} | {exports['files']} | {exports['bytes']} |")
    return "\n".join(lines)
