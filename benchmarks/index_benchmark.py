"""The archive index at 10,000 businesses x 90 days: the retention coverage, the catch-up plan and a due
sensor tick with one daily subscription per business all due at once, answered from the state database
(SQLite by default, or POS_EXPORTS_STATE_URL) without touching the archive storage.
Usage: `python benchmarks/index_benchmark.py [businesses] [days]`."""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time

from pos_exports.core.clock import utc_now

BUSINESSES, DAYS = (int(a) for a in (sys.argv[1:3] if len(sys.argv) > 2 else ("10000", "90")))
work = tempfile.mkdtemp(prefix="index-bench-")
os.environ.setdefault("POS_EXPORTS_STATE_URL", f"sqlite:///{work}/state.db")
os.environ["POS_RETENTION_DAYS"] = str(DAYS + 1)
os.environ.setdefault("POS_EXPORTS_START_DATE", "2025-01-01")  # the catch-up calendar covers the 90 days

import dagster as dg  # noqa: E402

from pos_exports.archive.read import save_businesses  # noqa: E402
from pos_exports.archive.tables import DATASETS  # noqa: E402
from pos_exports.defs import catchup  # noqa: E402
from pos_exports.defs.deliveries import due_requests  # noqa: E402
from pos_exports.delivery import subscriptions  # noqa: E402
from pos_exports.operations import retention  # noqa: E402
from pos_exports.source.database import Business  # noqa: E402
from pos_exports.state import archive_index, engine  # noqa: E402
from pos_exports.storage.base import LocalStorage  # noqa: E402

TODAY = dt.date(2025, 6, 30)
NOW = dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.UTC)
days = [TODAY - dt.timedelta(days=i) for i in range(DAYS, 0, -1)]
businesses = [Business(i, f"Shop {i}", "UTC", "EUR", True) for i in range(1, BUSINESSES + 1)]
storage = LocalStorage(f"{work}/store")
save_businesses(storage, businesses)
eng = engine()
t0 = time.perf_counter()
with eng.begin() as conn:
    for name in DATASETS:
        for day in days:
            conn.execute(
                archive_index.insert(),
                [
                    dict(
                        dataset=name,
                        business_id=b.id,
                        day=day,
                        generation="g",
                        kind=DATASETS[name].kind,
                        rows=1,
                        bytes=1,
                        manifest_sha256="0" * 64,
                        published_at=NOW,
                    )
                    for b in businesses
                    if not (name == "sales" and b.id == 7 and day == days[10])  # one gap
                ],
            )
print(f"indexed {len(DATASETS) * BUSINESSES * DAYS:,} rows in {time.perf_counter() - t0:.1f} s")

t0, c0 = time.perf_counter(), time.process_time()
cov = retention.coverage(storage, TODAY, DAYS + 1, now=NOW, start=days[0])
print(
    f"coverage of {BUSINESSES:,} businesses x {DAYS} days x 4 datasets: {len(cov.gaps)} gap(s) "
    f"in {time.perf_counter() - t0:.2f} s ({time.process_time() - c0:.2f} CPU-s)"
)
with dg.instance_for_test() as instance:
    t0, c0 = time.perf_counter(), time.process_time()
    requests, _, _ = catchup.plan(storage, eng, instance, {}, NOW, 10)
    print(
        f"catch-up plan: {len(requests)} request(s) in {time.perf_counter() - t0:.2f} s "
        f"({time.process_time() - c0:.2f} CPU-s)"
    )

t0 = time.perf_counter()
for b in businesses:  # one daily subscription per business, every dataset, due at 08:00 for yesterday
    subscriptions.add(
        eng,
        {
            "business_id": b.id,
            "name": "Daily",
            "datasets": list(DATASETS),
            "formats": ["csv"],
            "frequency": "daily",
            "at": "08:00",
            "recipients": [f"owner{b.id}@shop.example"],
        },
        now=utc_now(),
    )
print(f"added {BUSINESSES:,} subscriptions in {time.perf_counter() - t0:.1f} s")
last, tick = dt.datetime.combine(days[-1], dt.time(7), dt.UTC), dt.datetime.combine(days[-1], dt.time(9), dt.UTC)
t0, c0 = time.perf_counter(), time.process_time()
requests, waiting, broken = due_requests(storage, eng, last, tick, [])
pairs = sum(len(r.run_config["ops"]["deliver_batch"]["config"]["items"]) for r in requests)
print(
    f"due sensor tick ({BUSINESSES:,} subscriptions due at once): {len(requests)} batch run(s) of {pairs:,} "
    f"pair(s), {len(waiting):,} waiting, {len(broken)} broken, in {time.perf_counter() - t0:.2f} s "
    f"({time.process_time() - c0:.2f} CPU-s)"
)
