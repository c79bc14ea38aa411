"""The daily archive in both layouts (POS_EXPORTS_ARCHIVE_LAYOUT=folders | delta) on the same demo day.

Builds a demo POS database (SQLite) of N businesses and one day, archives the day's four datasets in one
Dagster run per layout (each in a fresh storage folder and state database), and prints per layout the
wall time, CPU seconds, files written and files per table-day, and the delta/folders ratios of one run.

    .venv/bin/python benchmarks/archive_layout_benchmark.py --businesses 200
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--businesses", type=int, default=200)
    parser.add_argument("--day", type=dt.date.fromisoformat, default=dt.date(2025, 3, 20))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="layout-bench-"))
    os.environ["POS_EXPORTS_START_DATE"] = "2025-01-01"
    import dagster as dg

    from pos_exports.defs.archive import daily_archive
    from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource
    from pos_exports.source import demo

    extra = max(args.businesses - 6, 0)
    demo.build_sqlite(work / "pos.sqlite", demo.DemoSpec(end_date=args.day, days=1, extra_businesses=extra))
    now = dt.datetime.combine(args.day, dt.time(14), dt.UTC) + dt.timedelta(days=1)
    figures = {}
    for layout in ("folders", "delta"):
        os.environ["POS_EXPORTS_ARCHIVE_LAYOUT"] = layout
        os.environ["POS_EXPORTS_STATE_URL"] = f"sqlite:///{work}/state-{layout}.db"
        root = work / layout
        wall, cpu = time.perf_counter(), _cpu()
        result = dg.materialize(
            [daily_archive],
            partition_key=args.day.isoformat(),
            resources={
                "pos_database": PosDatabase(url=f"sqlite:///{work}/pos.sqlite"),
                "storage": StorageResource(root=str(root)),
                "clock": ClockResource.at(now),
            },
            raise_on_error=False,
        )
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        assert result.success, layout
        files = [p for p in (root / "archive").rglob("*") if p.is_file()]
        data = [p for p in files if p.suffix == ".parquet" and "_reconciliation" not in str(p)]
        figures[layout] = {"wall_s": wall, "cpu_s": cpu, "files": len(files), "data_files": len(data)}
    print(f"{args.businesses} businesses, one day, four datasets (9 tables)")
    for layout, f in figures.items():
        print(
            f"{layout:8} wall {f['wall_s']:7.2f} s  cpu {f['cpu_s']:7.2f} s  files {f['files']:6d}  "
            f"data files {f['data_files']:6d}"
        )
    d, fo = figures["delta"], figures["folders"]
    print(
        f"delta/folders: wall {d['wall_s'] / fo['wall_s']:.2f}x, cpu {d['cpu_s'] / fo['cpu_s']:.2f}x, "
        f"files {d['files'] / fo['files']:.3f}x"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
