"""Subscription validation: the pydantic models (`delivery/subscriptions.py` now) against the hand-written parsers
they replaced (the same module at a git revision, default f805b81), on the same 2,000 inputs, in one process, the
two sides alternated; CPU time (`time.process_time`), median of 5 rounds. Both must give the same subscriptions.
Usage: `python benchmarks/validation_benchmark.py [revision]` from the checkout."""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pos_exports.delivery import subscriptions as new

REVISION = sys.argv[1] if len(sys.argv) > 1 else "f805b81"
source = subprocess.run(
    ["git", "show", f"{REVISION}:pos_exports/delivery/subscriptions.py"], capture_output=True, text=True, check=True
).stdout
path = Path(tempfile.mkdtemp(prefix="validation-bench-")) / "old_subscriptions.py"
path.write_text(source)
spec = importlib.util.spec_from_file_location("old_subscriptions", path)
old = importlib.util.module_from_spec(spec)
sys.modules["old_subscriptions"] = old  # dataclasses look their module up
spec.loader.exec_module(old)

inputs = [
    {
        "business_id": i % 50 + 1,
        "name": f"Weekly {i}",
        "datasets": ["sales", "customers", "inventory"],
        "formats": ["xlsx", "csv"],
        "frequency": "weekly",
        "day_of_week": "monday",
        "at": "07:00",
        "recipients": [f"owner{i}@shop.example", f"books{i}@shop.example"],
        "filters": {"customer_type": "wholesale", "min_outstanding_balance": "100.5", "stock_status": "low_stock"},
        "only_if_data": "yes",
        "timezone": "Africa/Accra",
    }
    for i in range(2000)
]
assert [vars(old.validate(d)) for d in inputs[:50]] == [vars(new.validate(d)) for d in inputs[:50]]
times: dict[str, list[float]] = {"hand-written": [], "pydantic": []}
for _ in range(5):
    for name, module in (("hand-written", old), ("pydantic", new)):
        start = time.process_time()
        for data in inputs:
            module.validate(data)
        times[name].append(time.process_time() - start)
for name, rounds in times.items():
    median = statistics.median(rounds)
    shown = [round(r, 4) for r in rounds]
    print(f"{name:12} {median:.4f} CPU s per 2,000 ({median / 2000 * 1e6:.0f} µs each); rounds {shown}")
print(f"pydantic / hand-written: {statistics.median(times['pydantic']) / statistics.median(times['hand-written']):.2f}")
