"""Time comes from the edge (issue 13): the ledger, notify, subscription, delivery and operations functions take
`now` (or the caller's clock) and never read the wall clock themselves; the wiring (`defs/`: ClockResource), the
CLI (`cli.kit.now`) and the service's routes pass it."""

from __future__ import annotations

import ast
import datetime as dt
import importlib
import inspect
from pathlib import Path

import pytest

import pos_exports

PACKAGE = Path(pos_exports.__file__).parent
# write_outbox names its file with the wall clock: a unique, sortable file name, not a time of the domain (two
# sends of one message at one frozen `now` must not overwrite each other)
ALLOWED = {("delivery/email.py", "write_outbox")}
WALL_CLOCKS = {"utc_now", "now", "utcnow", "today", "time", "time_ns"}


def _wall_clock_reads(path: Path) -> list[tuple[str, int, str]]:
    """(function, line, call) for every call of a wall clock in the module at `path`."""
    out = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            owner = ast.unparse(f.value) if isinstance(f, ast.Attribute) else ""
            if name == "utc_now" or (
                name in WALL_CLOCKS and owner in {"dt.datetime", "datetime.datetime", "datetime", "dt.date", "time"}
            ):
                out.append((fn.name, node.lineno, ast.unparse(f)))
    return out


def test_no_delivery_or_operations_function_reads_the_wall_clock():
    found = []
    for layer in ("delivery", "operations"):
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            rel = path.relative_to(PACKAGE).as_posix()
            found += [(rel, *r) for r in _wall_clock_reads(path) if (rel, r[0]) not in ALLOWED]
    assert found == []


@pytest.mark.parametrize(
    "module",
    [
        "pos_exports.delivery.ledger",
        "pos_exports.delivery.notify",
        "pos_exports.delivery.subscriptions",
        "pos_exports.delivery.deliver",
        "pos_exports.delivery.downloads",
        "pos_exports.delivery.email",
        "pos_exports.operations.catchup",
        "pos_exports.operations.tokens",
    ],
)
def test_stamping_functions_take_now_from_the_caller(module):
    """Every public function with a `now` parameter requires it (no silent fall-back to the wall clock); only
    `deliver` may leave out `now`, which is then its required `clock`'s first reading."""
    mod = importlib.import_module(module)
    optional = []
    for name, fn in inspect.getmembers(mod, inspect.isfunction):
        if fn.__module__ != module:
            continue
        params = inspect.signature(fn).parameters
        if "now" in params and params["now"].default is not inspect.Parameter.empty:
            if name == "deliver" and params["clock"].default is inspect.Parameter.empty:
                continue
            optional.append(name)
    assert optional == []


def test_a_subscription_and_its_ledger_rows_carry_the_callers_time(tmp_path):
    """With the caller's `now` far from the wall clock, what is stored is the caller's time."""
    from pos_exports.delivery import ledger, notify, subscriptions
    from pos_exports.state import alerts, engine

    eng = engine(f"sqlite:///{tmp_path / 'state.db'}")
    at = dt.datetime(2025, 3, 10, 6, 0, tzinfo=dt.UTC)
    sub = subscriptions.add(
        eng,
        {
            "business_id": 1,
            "name": "Daily sales",
            "datasets": ["sales"],
            "formats": ["csv"],
            "frequency": "daily",
            "at": "07:00",
            "recipients": ["owner@shop.example"],
        },
        now=at,
    )
    later = at + dt.timedelta(minutes=5)
    paused = subscriptions.set_active(eng, sub.id, False, now=later)
    assert _utc(subscriptions.get(eng, sub.id).created_at) == at and _utc(paused.updated_at) == later
    [row] = ledger.open_rows(eng, sub.id, 1, "daily", "2025-03-09", sub.recipients, "run-1", now=later)
    assert ledger.mark_processing(eng, [row["id"]], "run-1", now=later) == [row["id"]]
    finished = later + dt.timedelta(minutes=1)
    assert ledger.mark_skipped(eng, [row["id"]], "skipped: no data", now=finished) == 1
    [done] = ledger.history(eng, 1, sub.id)
    assert _utc(done["created_at"]) == later and _utc(done["started_at"]) == later
    assert _utc(done["finished_at"]) == finished
    notify.queue(eng, "failure", "subject", "body", ["team@pos.example"], now=at)
    with eng.connect() as conn:
        assert _utc(conn.execute(alerts.select()).one().created_at) == at


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
