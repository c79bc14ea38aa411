"""Domain rules of the exports as plain functions (docs/reports.md), tested directly.

Money is `Decimal` (2 places) or Arrow `decimal128(18, 2)`, never a float; percents are float ratios.
Each rule exists once for Python values and, where a builder needs it over whole columns, once over
Arrow arrays with exactly the same meaning.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
import pyarrow.compute as pc

MONEY = pa.decimal128(18, 2)
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def money(value: Decimal | int | str | None) -> Decimal:
    """An exact amount with 2 places (None counts as 0)."""
    return ZERO if value is None else Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


# --- sales -----------------------------------------------------------------------------------------


def line_net(quantity: int, unit_price: Decimal, discount: Decimal) -> Decimal:
    """Line net revenue (tax excluded) = quantity * unit price - discount."""
    return money(quantity * unit_price - discount)


def line_cogs(quantity: int, unit_cost: Decimal) -> Decimal:
    """Line cost of goods sold = quantity * unit cost."""
    return money(quantity * unit_cost)


def gross_profit(net_revenue: Decimal, cogs: Decimal) -> Decimal:
    return money(net_revenue - cogs)


def margin(profit: Decimal, net_revenue: Decimal) -> float | None:
    """Gross margin as a ratio (0.25 = 25 %); None (blank) when net revenue is 0."""
    if not net_revenue:
        return None
    return float(Decimal(profit) / Decimal(net_revenue))


def net_after_refunds(net_revenue: Decimal, refunds: Decimal) -> Decimal:
    """Net sales after refunds: net revenue less the refunds issued in the period (as the POS records them)."""
    return money(Decimal(net_revenue) - Decimal(refunds))


def change_ratio(current: Decimal | int, previous: Decimal | int | None) -> float | None:
    """The change from the previous period as a ratio (0.25 = +25 %); None when there is no previous figure or
    it is 0 (a change from nothing has no percentage)."""
    if previous is None or not previous:
        return None
    return float((Decimal(current) - Decimal(previous)) / abs(Decimal(previous)))


def average(total: Decimal, count: int) -> Decimal | None:
    """An average amount rounded half-up to the cent; None when there is nothing to average."""
    return money(Decimal(total) / count) if count else None


def _as_decimal(values: pa.Array | pa.ChunkedArray, scale: int = 0) -> pa.Array | pa.ChunkedArray:
    if pa.types.is_decimal(values.type):
        return values
    return pc.cast(values, pa.decimal128(18, scale))


def to_money(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Back to decimal128(18, 2): exact (a value that does not fit is an error, never rounded)."""
    return pc.cast(_as_decimal(values), MONEY)


def net_array(quantity, unit_price, discount):
    """`line_net` over Arrow columns (exact decimal arithmetic)."""
    return to_money(pc.subtract(pc.multiply(_as_decimal(quantity), unit_price), discount))


def cogs_array(quantity, unit_cost):
    """`line_cogs` over Arrow columns."""
    return to_money(pc.multiply(_as_decimal(quantity), unit_cost))


def margin_array(profit, net_revenue):
    """`margin` over Arrow columns: float64 ratio, null where net revenue is 0 or null."""
    zero = pc.equal(net_revenue, pa.scalar(ZERO, net_revenue.type))
    ratio = pc.divide(pc.cast(profit, pa.float64()), pc.cast(net_revenue, pa.float64()))
    return pc.if_else(pc.fill_null(zero, True), pa.scalar(None, pa.float64()), ratio)


def money_sum(values) -> Decimal:
    """The exact sum of a decimal column (0.00 when empty or all null)."""
    if len(values) == 0:
        return ZERO
    return money(pc.sum(values).as_py())


# --- credit ----------------------------------------------------------------------------------------

BUCKETS = ("0-30", "31-60", "61-90", "91+")


def aging_bucket(age_days: int) -> int:
    """The index in BUCKETS of an open amount `age_days` old (0-30, 31-60, 61-90, 91+)."""
    if age_days <= 30:
        return 0
    if age_days <= 60:
        return 1
    if age_days <= 90:
        return 2
    return 3


@dataclass(frozen=True)
class Aging:
    balance: Decimal  # the outstanding balance: sum of every amount
    buckets: tuple[Decimal, Decimal, Decimal, Decimal]  # 0-30, 31-60, 61-90, 91+; sum to a positive balance
    oldest_open: dt.date | None  # local date of the oldest charge still (partly) open


def fifo_aging(entries: Iterable[tuple[dt.date, Decimal]], as_of: dt.date) -> Aging:
    """FIFO credit aging of one customer's ledger.

    `entries` are (business-local date, amount), oldest first. Every negative amount (payments, negative
    adjustments) settles the oldest open positive amounts first; what is left open of each positive amount
    is aged by `as_of - its date` in days. A customer in credit (negative balance) has empty buckets.
    """
    positives: list[tuple[dt.date, Decimal]] = []
    credit = ZERO
    balance = ZERO
    for day, amount in entries:
        amount = money(amount)
        balance += amount
        if amount > 0:
            positives.append((day, amount))
        else:
            credit -= amount
    buckets = [ZERO, ZERO, ZERO, ZERO]
    oldest: dt.date | None = None
    if balance > 0:
        for day, amount in positives:  # oldest first
            settled = min(credit, amount)
            credit -= settled
            left = amount - settled
            if left > 0:
                buckets[aging_bucket((as_of - day).days)] += left
                oldest = day if oldest is None else min(oldest, day)
    return Aging(balance, (buckets[0], buckets[1], buckets[2], buckets[3]), oldest)


NEAR_LIMIT = Decimal("0.8")


def credit_status(balance: Decimal, credit_limit: Decimal | None, is_blocked: bool) -> str:
    """blocked; else over_limit (balance > limit > 0); else near_limit (balance >= 80 % of a limit > 0);
    else good. A balance of exactly the limit is near_limit, not over it."""
    if is_blocked:
        return "blocked"
    limit = credit_limit or ZERO
    if limit > 0 and balance > limit:
        return "over_limit"
    if limit > 0 and balance >= NEAR_LIMIT * limit:
        return "near_limit"
    return "good"


def available_credit(balance: Decimal, credit_limit: Decimal | None) -> Decimal | None:
    """What the customer may still charge: limit - balance, never below 0; None without a limit."""
    if not credit_limit or credit_limit <= 0:
        return None
    return money(max(credit_limit - balance, ZERO))


# --- inventory -------------------------------------------------------------------------------------


def stock_status(quantity: int, reorder_level: int) -> str:
    """out_of_stock if quantity <= 0; low_stock if quantity <= reorder level; else in_stock."""
    if quantity <= 0:
        return "out_of_stock"
    if quantity <= reorder_level:
        return "low_stock"
    return "in_stock"


@dataclass(frozen=True)
class Valuation:
    value_at_cost: Decimal  # max(quantity, 0) * unit cost
    value_at_retail: Decimal  # max(quantity, 0) * selling price
    margin: Decimal  # selling price - unit cost (per unit)
    margin_pct: float | None  # margin / selling price; None when the price is 0


def valuation(quantity: int, unit_cost: Decimal, selling_price: Decimal) -> Valuation:
    on_hand = max(quantity, 0)
    unit_margin = money(selling_price - unit_cost)
    pct = float(unit_margin / selling_price) if selling_price else None
    return Valuation(money(on_hand * unit_cost), money(on_hand * selling_price), unit_margin, pct)


def stock_status_array(quantity, reorder_level):
    """`stock_status` over Arrow columns."""
    return pc.if_else(
        pc.less_equal(quantity, 0),
        "out_of_stock",
        pc.if_else(pc.less_equal(quantity, reorder_level), "low_stock", "in_stock"),
    )


def valuation_arrays(quantity, unit_cost, selling_price) -> dict[str, pa.Array]:
    """`valuation` over Arrow columns: value_at_cost, value_at_retail, margin, margin_pct."""
    on_hand = pc.max_element_wise(quantity, pa.scalar(0, quantity.type))
    unit_margin = to_money(pc.subtract(selling_price, unit_cost))
    return {
        "value_at_cost": cogs_array(on_hand, unit_cost),
        "value_at_retail": cogs_array(on_hand, selling_price),
        "margin": unit_margin,
        "margin_pct": margin_array(unit_margin, selling_price),
    }


# --- audit -----------------------------------------------------------------------------------------


def counts_by(values: Iterable[Hashable] | Counter) -> list[tuple[Hashable, int]]:
    """(value, count) by count, highest first; ties in the value's text order (stable output)."""
    counter = values if isinstance(values, Counter) else Counter(values)
    return sorted(counter.items(), key=lambda kv: (-kv[1], "" if kv[0] is None else str(kv[0])))


@dataclass(frozen=True)
class UserCount:
    user_id: int | None  # None: events without a user (system)
    email: str | None
    name: str | None
    events: int


def top_users(events: Iterable[tuple[int | None, str | None, str | None]], limit: int = 10) -> list[UserCount]:
    """The users with the most events, from (user id, email, name) per event."""
    counts: Counter = Counter()
    who: dict[int | None, tuple[str | None, str | None]] = {}
    for user_id, email, name in events:
        counts[user_id] += 1
        who.setdefault(user_id, (email, name))
    return rank_users(counts, who, limit)


def rank_users(
    counts: Counter, who: dict[int | None, tuple[str | None, str | None]], limit: int = 10
) -> list[UserCount]:
    """Event counts per user id ranked highest first; ties by email, events without a user last."""
    ranked = sorted(
        counts.items(), key=lambda kv: (-kv[1], kv[0] is None, (who.get(kv[0]) or ("",))[0] or "", kv[0] or 0)
    )
    return [UserCount(uid, *(who.get(uid) or (None, None)), n) for uid, n in ranked[:limit]]


def pretty_json(text: str | None) -> str | None:
    """Indented, readable JSON (as `json.dumps(..., indent=2, ensure_ascii=False)`), numbers kept exactly as
    written (`13.20` stays `13.20`, never a float); the text as it is when NULL or not valid JSON."""
    if text is None:
        return None
    try:
        value = json.loads(text, parse_float=Decimal)
    except (ValueError, TypeError):
        return text
    return _dump(value, 0)


def _dump(value: object, level: int) -> str:
    inner, outer = "  " * (level + 1), "  " * level
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = (f"{inner}{json.dumps(k, ensure_ascii=False)}: {_dump(v, level + 1)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + f"\n{outer}}}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(f"{inner}{_dump(v, level + 1)}" for v in value) + f"\n{outer}]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
