"""The daily exports of 50 businesses against the naive pandas script, CPU seconds, in one run.

Builds the demo POS database (SQLite, `DemoSpec(extra_businesses=45)`: 50 businesses, one day) and its
archive (the real archive code, untimed), then runs each side in its own child process, three times,
alternating, and takes the median CPU seconds (user + system of the child, interpreter start-up and
imports included: what running the script costs):

  naive    the naive script: per business one SQL (the day's completed line items with their sale and
           product, UTC window of the business's local day) into pandas, `to_excel` and `to_csv`;
  exports  the project: `export_available` of the day for every business, XLSX and CSV, from the
           archive (report building, summaries, sections, manifest, SHA-256: the richer files).

Prints both and the ratio exports/naive (target <= 0.5). `--formats xlsx,csv,pdf` adds PDF to the
project's side only (the naive script has no PDF), to see what the PDFs cost.

    .venv/bin/python benchmarks/naive_peer_benchmark.py [--sales-per-day 60] [--datasets sales,...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DAY = dt.date(2025, 3, 4)

NAIVE_SQL = """
SELECT s.receipt_number, s.status, s.sale_type, s.payment_type, s.completed_at,
       p.name AS product, p.sku, i.quantity, i.unit_price_cents / 100.0 AS unit_price,
       i.unit_cost_cents / 100.0 AS unit_cost, i.discount_cents / 100.0 AS discount,
       i.tax_cents / 100.0 AS tax, i.total_cents / 100.0 AS total
FROM sale_items i JOIN sales s ON s.id = i.sale_id JOIN products p ON p.id = i.product_id
WHERE s.business_id = ? AND s.status <> 'draft' AND s.completed_at >= ? AND s.completed_at < ?
ORDER BY s.completed_at, s.id, i.id
"""


def naive(db: Path, out: Path, day: dt.date = DAY) -> None:
    """The naive script (what a team writes in an afternoon)."""
    import sqlite3

    import pandas as pd

    from pos_exports.periods import day_window

    con = sqlite3.connect(db)
    for bid, tz in con.execute("SELECT id, timezone FROM businesses WHERE is_active ORDER BY id").fetchall():
        win = day_window(day, tz)
        df = pd.read_sql_query(NAIVE_SQL, con, params=(bid, win.start.isoformat(), win.end.isoformat()))
        df.to_excel(out / f"{bid}.xlsx", sheet_name="Sales", index=False)
        df.to_csv(out / f"{bid}.csv", index=False)


def exports(root: Path, datasets: list[str], formats: list[str], day: dt.date = DAY) -> None:
    from pos_exports.archive.read import load_businesses, shared_days
    from pos_exports.exports.produce import export_available
    from pos_exports.reports.period import daily
    from pos_exports.storage.base import LocalStorage

    storage = LocalStorage(root)
    with shared_days():  # as the exports run reads the archive
        for business in load_businesses(storage):
            if business.is_active:
                export_available(storage, business, daily(day), [(d, f) for d in datasets for f in formats])


def prepare(base: Path, sales_per_day: int) -> tuple[Path, Path]:
    """The demo database and its archive of DAY (every dataset, captured an hour after the day ended)."""
    from pos_exports.archive.extract import archive_business_day
    from pos_exports.archive.read import save_businesses
    from pos_exports.archive.tables import DATASETS
    from pos_exports.periods import day_window
    from pos_exports.source.database import connect, list_businesses
    from pos_exports.source.demo import DemoSpec, build_sqlite
    from pos_exports.storage.base import LocalStorage

    db, root = base / "pos.sqlite", base / "archive"
    spec = DemoSpec(end_date=DAY, days=1, sales_per_day=sales_per_day, extra_businesses=45)
    counts = build_sqlite(db, spec)
    storage = LocalStorage(root)
    with connect(f"sqlite:///{db}") as reader:
        businesses = list_businesses(reader)
        save_businesses(storage, businesses)
        for business in (b for b in businesses if b.is_active):
            now = day_window(DAY, business.timezone).end + dt.timedelta(hours=1)
            for ds in DATASETS.values():
                archive_business_day(reader, storage, ds, business, DAY, now=now)
    active = sum(b.is_active for b in businesses)
    print(f"demo: {active} active businesses, {counts['sales']:,} sales, {counts['sale_items']:,} line items")
    return db, root


def child_cpu(args: list, script: Path | str = __file__, quiet: bool = False) -> float:
    """CPU seconds (user + system) of one child Python process running `script` (default this one) with `args`
    (the fleet benchmark runs this script's phases through it too)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.DEVNULL if quiet else None
    subprocess.run([sys.executable, str(script), *map(str, args)], check=True, stdout=out)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales-per-day", type=int, default=60, help="per storefront")
    parser.add_argument("--datasets", default="sales,customers,inventory,audit_log")
    parser.add_argument("--formats", default="xlsx,csv")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--day", type=dt.date.fromisoformat, default=DAY, help=argparse.SUPPRESS)  # fleet benchmark
    args = parser.parse_args()
    datasets, formats = args.datasets.split(","), args.formats.split(",")

    if args.phase == "naive":
        return naive(Path(args.db), Path(args.out), args.day)
    if args.phase == "exports":
        return exports(Path(args.root), datasets, formats, args.day)

    with tempfile.TemporaryDirectory(prefix="pos-naive-") as tmp:
        base = Path(tmp)
        t = time.perf_counter()
        db, root = prepare(base, args.sales_per_day)
        print(f"built and archived in {time.perf_counter() - t:.1f}s (not measured)")
        cpu: dict[str, list[float]] = {"naive": [], "exports": []}
        for i in range(args.repeat):
            out = base / f"naive-{i}"
            out.mkdir()
            cpu["naive"].append(child_cpu(["--phase", "naive", "--db", str(db), "--out", str(out)]))
            # each repetition writes the same folders again (published atomically, as a re-run does)
            common = ["--datasets", args.datasets, "--formats", args.formats]
            cpu["exports"].append(child_cpu(["--phase", "exports", "--root", str(root), *common]))
    naive_s, mine_s = statistics.median(cpu["naive"]), statistics.median(cpu["exports"])
    print(f"naive pandas script   : median {naive_s:6.2f} CPU-s  {[round(c, 2) for c in cpu['naive']]}")
    print(f"project daily exports : median {mine_s:6.2f} CPU-s  {[round(c, 2) for c in cpu['exports']]}")
    print(f"  ({','.join(datasets)}; {','.join(formats)})")
    print(f"ratio exports/naive   : {mine_s / naive_s:.2f}x (target <= 0.50)")


if __name__ == "__main__":
    main()
