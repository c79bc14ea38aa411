"""Renderer throughput and memory against their floors, measured in one run.

A synthetic sales report whose "Line items" section has 1,000,000 rows (receipt, product, SKU,
quantity, unit price, unit cost, discount, tax, total, COGS, profit, completed at), generated
deterministically as Arrow batches. Each measurement runs in its own child process, so each peak RSS
(ru_maxrss) is its own:

  csv-floor   `pyarrow.csv.write_csv` of the same raw table (no section layout, no value formatting)
  csv-floor-naive  the same, with the datetime column converted to naive seconds before the clock starts
              (Arrow prints tz-aware timestamps slowly; this floor leaves that cost out)
  csv         `render_csv` of the report
  xlsx-floor  an XlsxWriter constant_memory workbook, the same rows with `write_row` and no formats
              (money and datetimes converted to the numbers Excel stores, in Arrow, the cheapest way)
  xlsx        `render_xlsx` of the report
  pdf-1k      `render_pdf` of the report with a 1,000-row section
  pdf-1m      `render_pdf` of the report with the 1,000,000-row section (should take the same time)

For CSV and XLSX the rows are generated into memory before the clock starts (in both the floor and the
renderer); the PDF runs generate batches lazily, as the archive reader does. Targets: CSV and XLSX
>= 0.7x their floor, peak RSS < 600 MB.

    .venv/bin/python benchmarks/render_benchmark.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pos_exports.reports.model import Column, Figure, Report, Section  # noqa: E402

TZ = "Africa/Accra"
BATCH_ROWS = 64 * 1024
MONEY = pa.decimal128(18, 2)
PRODUCTS = [
    *(
        f"{adj} {noun}"
        for adj in ("Fresh", "Large", "Organic", "Spicy", "Classic")
        for noun in (
            "bread",
            "milk",
            "coffee",
            "rice 5kg",
            "tomatoes",
            "chicken",
            "soap",
            "juice",
            "tea",
            "sugar",
        )
    ),
    "Café au lait",
    "Łódź rye loaf",
    "抹茶ラテ",
    "حليب طازج",
    "-20% promo pack",
    "=2 for 1 deal",
    "+ extra shot",
]
COLUMNS = (
    Column("receipt", "Receipt"),
    Column("product", "Product"),
    Column("sku", "SKU"),
    Column("quantity", "Quantity", "int"),
    Column("unit_price", "Unit price", "money"),
    Column("unit_cost", "Unit cost", "money"),
    Column("discount", "Discount", "money"),
    Column("tax", "Tax", "money"),
    Column("total", "Total", "money"),
    Column("cogs", "COGS", "money"),
    Column("profit", "Profit", "money"),
    Column("completed_at", "Completed at", "datetime"),
)


def _money(cents: np.ndarray) -> pa.Array:
    """decimal128(18, 2) straight from integer cents (16-byte little-endian two's complement)."""
    cents = cents.astype(np.int64)
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)
    return pa.Array.from_buffers(MONEY, len(cents), [None, pa.py_buffer(words.tobytes())])


def line_item_batches(rows: int) -> Iterator[pa.RecordBatch]:
    start_us = int(dt.datetime(2025, 3, 1, tzinfo=dt.UTC).timestamp() * 1_000_000)
    month_us = 31 * 86_400 * 1_000_000
    products = pa.array(PRODUCTS)
    for index, first in enumerate(range(0, rows, BATCH_ROWS)):
        n = min(BATCH_ROWS, rows - first)
        rng = np.random.default_rng(index)
        ids = np.arange(first, first + n, dtype=np.int64)
        product = rng.integers(0, len(PRODUCTS), n)
        qty = rng.integers(1, 11, n)
        price = rng.integers(100, 50_000, n)
        cost = price * 6 // 10
        gross = qty * price
        discount = np.where(rng.random(n) < 0.2, gross // 20, 0)
        net = gross - discount
        tax = net * 15 // 100
        cogs = qty * cost
        when = start_us + (ids * month_us) // max(rows, 1)
        receipt = pc.binary_join_element_wise("R-", pc.utf8_lpad(pc.cast(pa.array(ids // 3), pa.string()), 8, "0"), "")
        sku = pc.binary_join_element_wise("SKU-", pc.utf8_lpad(pc.cast(pa.array(product), pa.string()), 5, "0"), "")
        yield pa.RecordBatch.from_arrays(
            [
                receipt,
                pc.take(products, pa.array(product)),
                sku,
                pa.array(qty, pa.int64()),
                _money(price),
                _money(cost),
                _money(discount),
                _money(tax),
                _money(net + tax),
                _money(cogs),
                _money(net - cogs),
                pa.array(when, pa.timestamp("us", tz=TZ)),
            ],
            names=[c.name for c in COLUMNS],
        )


def report(batches, rows: int) -> Report:
    start = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    return Report(
        dataset="sales",
        title="Sales report",
        business_id=1,
        business_name="Benchmark Foods",
        currency="GHS",
        timezone=TZ,
        period_kind="monthly",
        period_key="2025-03",
        period_label="March 2025",
        window_start=start,
        window_end=dt.datetime(2025, 4, 1, tzinfo=dt.UTC),
        summary=[Figure("Line items", rows, "int"), Figure("Net revenue", Decimal("123456.78"), "money")],
        sections=[Section("line_items", "Line items", COLUMNS, batches, rows)],
    )


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def xlsx_floor(batches: list[pa.RecordBatch], path: Path) -> int:
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    ws = wb.add_worksheet("Line items")
    ws.write_row(0, 0, [c.header for c in COLUMNS])
    row = 1
    for batch in batches:
        lists = []
        for column, arr in zip(COLUMNS, batch.columns, strict=True):
            if column.kind == "money":
                arr = pc.cast(arr, pa.float64())
            elif column.kind == "datetime":
                seconds = pc.cast(pc.cast(pc.local_timestamp(arr), pa.timestamp("s"), safe=False), pa.int64())
                arr = pc.add(pc.divide(seconds, 86400.0), 25569.0)
            lists.append(arr.to_pylist())
        for values in zip(*lists, strict=True):
            ws.write_row(row, 0, values)
            row += 1
    wb.close()
    return row - 1


def phase(name: str, rows: int, out: Path) -> dict:
    from pos_exports.render import render_csv, render_pdf, render_xlsx

    if name.startswith("pdf"):
        n = 1_000 if name == "pdf-1k" else rows
        rep = report(lambda: line_item_batches(n), n)
        base = _peak_mb()
        start = time.perf_counter()
        shown = render_pdf(rep, out / "r.pdf")
        seconds = time.perf_counter() - start
        return {
            "rows": n,
            "shown": shown["line_items"],
            "seconds": seconds,
            "peak_mb": _peak_mb(),
            "input_mb": base,
        }

    batches = list(line_item_batches(rows))  # in memory before the clock starts, for floor and renderer alike
    base = _peak_mb()
    start = time.perf_counter()
    if name == "csv-floor":
        import pyarrow.csv as pacsv

        pacsv.write_csv(pa.Table.from_batches(batches), out / "floor.csv")
        written = rows
    elif name == "csv-floor-naive":  # a stricter floor: datetimes already naive whole seconds (cheap to print)
        import pyarrow.csv as pacsv

        table = pa.Table.from_batches(batches)
        table = table.set_column(
            11,
            "completed_at",
            pc.cast(pc.local_timestamp(table["completed_at"]), pa.timestamp("s"), safe=False),
        )
        start = time.perf_counter()
        pacsv.write_csv(table, out / "floor.csv")
        written = rows
    elif name == "csv":
        written = render_csv(report(lambda: iter(batches), rows), out / "r.csv")["line_items"]
    elif name == "xlsx-floor":
        written = xlsx_floor(batches, out / "floor.xlsx")
    else:
        written = render_xlsx(report(lambda: iter(batches), rows), out / "r.xlsx")["line_items"]
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in out.iterdir())
    return {"rows": written, "seconds": seconds, "peak_mb": _peak_mb(), "input_mb": base, "bytes": size}


def _child(name: str, rows: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, "--phase", name, "--rows", str(rows), "--out", out]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name} failed:\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def _line(label: str, r: dict) -> str:
    return (
        f"{label:<22}: {r['rows']:>9,} rows {r['seconds']:7.2f}s {r['rows'] / r['seconds']:>11,.0f} rows/s  "
        f"peak {r['peak_mb']:4.0f} MB (input in memory {r['input_mb']:.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.rows, Path(args.out))))
        return

    results = {}
    for name in ("csv-floor", "csv-floor-naive", "csv", "xlsx-floor", "xlsx", "pdf-1k", "pdf-1m"):
        results[name] = r = _child(name, args.rows)
        print(_line(name, r), flush=True)
    print()
    for fmt in ("csv", "xlsx"):
        floor, real = results[f"{fmt}-floor"], results[fmt]
        ratio = (real["rows"] / real["seconds"]) / (floor["rows"] / floor["seconds"])
        print(
            f"{fmt.upper():<4} ratio to floor: {ratio:.2f}x (target >= 0.70); "
            f"peak RSS {real['peak_mb']:.0f} MB (target < 600 MB)"
        )
    naive, real = results["csv-floor-naive"], results["csv"]
    ratio = (real["rows"] / real["seconds"]) / (naive["rows"] / naive["seconds"])
    print(f"CSV  ratio to the stricter floor (datetimes pre-converted, not timed): {ratio:.2f}x")
    small, big = results["pdf-1k"], results["pdf-1m"]
    print(
        f"PDF  {small['seconds']:.2f}s for {small['rows']:,} rows vs {big['seconds']:.2f}s for "
        f"{big['rows']:,} rows (shows {big['shown']} rows; ratio {big['seconds'] / small['seconds']:.2f}); "
        f"peak RSS {big['peak_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
