"""Delivery planning, plain functions of the state database and the archive index: which (subscription, period)s
are due and ready to send, and what the subscriptions ask of the period exports."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from pos_exports import state
from pos_exports.archive.read import load_businesses
from pos_exports.delivery import ledger, subscriptions
from pos_exports.delivery.deliver import archive_gaps
from pos_exports.delivery.schedule import due
from pos_exports.delivery.subscriptions import filters_for, find
from pos_exports.reports.period import period_for
from pos_exports.storage import Storage


def wanted_files(kind: str, eng: sa.Engine | None = None) -> set[tuple[int, str, str]]:
    """(business_id, dataset, format) that an active subscription of this frequency reads from the period's
    stored exports. A filtered subscription renders into its own folder, so it asks for nothing here."""
    return {
        (sub.business_id, d, f)
        for sub in subscriptions.find(eng or state.engine(), active=True)
        if sub.frequency == kind and not any(filters_for(sub, d) for d in sub.datasets)  # as deliver._files
        for d in sub.datasets
        for f in sub.formats
    }


def due_pairs(
    storage: Storage, eng: sa.Engine, last: dt.datetime, now: dt.datetime, waiting: list, max_pairs: int
) -> tuple[list[tuple[int, str, str]], list, dict[int, str]]:
    """The due (subscription, kind, key)s whose archive is complete, oldest fire first, at most `max_pairs`; the
    rest keep waiting (second value, for the sensor's cursor: archive incomplete, or over the limit: the next
    ticks). The ledger is read once for all the pairs (`ledger.delivered`) and the archive
    index once per dataset (`archive_gaps`); no storage call but the business list.

    Each subscription is evaluated on its own: one that cannot be (an unknown time zone, a broken schedule)
    is skipped and returned in the third value ({subscription id: why}); the others launch.
    """
    businesses = {b.id: b for b in load_businesses(storage)}
    subs = {s.id: s for s in find(eng, active=True)}
    broken: dict[int, str] = {}
    candidates = _candidates(subs, businesses, waiting, last, now, broken)
    ordered = sorted(candidates.items(), key=lambda c: (c[1], c[0][0], c[0][2]))
    ordered = [(pair, fire) for pair, fire in ordered if pair[0] not in broken]
    done = ledger.delivered(eng, [(sub_id, key) for (sub_id, _, key), _ in ordered])  # one query per tick
    wanted: dict[tuple[int, str, str], tuple] = {}
    for (sub_id, kind, key), _ in ordered:
        if (sub_id, key) in done:
            continue
        sub = subs[sub_id]
        if (business := businesses.get(sub.business_id)) is None:
            continue  # not in the archive's business list yet: it waits
        try:
            wanted[(sub_id, kind, key)] = (sub, sub.business_id, business.timezone, period_for(kind, key))
        except Exception as exc:
            broken[sub_id] = _why(exc)
    ready: dict[tuple[int, str, str], bool] = {}
    try:
        gaps = archive_gaps(list(wanted.values()), now, eng)
        ready = {pair: not any(not g.lost for g in found) for pair, found in zip(wanted, gaps, strict=True)}
    except Exception as exc:  # the index cannot be read: nothing is ready, say so
        broken.update({sub_id: _why(exc) for sub_id, _, _ in wanted})
    pairs, still_waiting = [], []
    for (sub_id, kind, key), fire in ordered:
        entry = [sub_id, kind, key, fire.isoformat()]
        if len(pairs) >= max_pairs:
            still_waiting.append(entry)  # the next tick takes it, oldest first
            continue
        if (sub_id, key) in done or sub_id in broken:
            continue  # delivered already (a re-evaluated tick launches nothing), or reported
        if not ready.get((sub_id, kind, key)):
            still_waiting.append(entry)  # wait for the archive rather than send a partial period
            continue
        pairs.append((sub_id, kind, key))
    return (
        pairs,
        still_waiting,
        {i: f"subscription {i} ({subs[i].name}) of business {subs[i].business_id}: {why}" for i, why in broken.items()},
    )


def _candidates(subs: dict, businesses: dict, waiting: list, last: dt.datetime, now: dt.datetime, broken: dict):
    """{(subscription, kind, key): fire} of the pairs waiting from earlier ticks and the fires of `(last, now]`;
    a subscription that cannot be evaluated goes to `broken` (isolated: the others go on)."""
    candidates: dict[tuple[int, str, str], dt.datetime] = {}
    for w in waiting:  # [sub, kind, key, fire] (or [sub, kind, key] from an older cursor)
        if w[0] in subs:
            candidates[(w[0], w[1], w[2])] = dt.datetime.fromisoformat(w[3]) if len(w) > 3 else last
    for sub in subs.values():
        if (business := businesses.get(sub.business_id)) is not None:
            try:
                for fire, kind, key in due(sub, business.timezone, last, now):
                    candidates.setdefault((sub.id, kind, key), fire)
            except Exception as exc:  # isolate: one broken subscription never stops the others
                broken[sub.id] = _why(exc)
    return candidates


def _why(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
