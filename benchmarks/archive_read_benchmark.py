"""The Delta archive's read path at fleet scale (issue 12): is one business's read constant in N?

Builds, once per N (kept in --workdir), a demo POS database of N businesses and one day, and archives its
`sales` dataset as Delta tables (the archive's own code: every business staged and reconciled, one commit per
table). Then each probe is a fresh child process that reads the 4 sales tables (`read_table`) of --reads
businesses (spread over the ids) of that archive, and reports CPU ms per business read:

  per-business  each read on its own (as one export outside a run: a filter on business_id per read);
  shared        the reads inside one `shared_days()` block (as an exports run: each table-day read once at
                its pinned version and sliced per business);
  shared-all    the same for every business of the archive (as the exports run does: the whole-day reads
                are then shared by all N, not by --reads).

With `--before DIR` (a copy of an earlier checkout, e.g. `git archive main | tar -x -C DIR`) a third probe,
`before`, reads per business with that code: every probe alternates, --repeat times, in one run; medians printed.

    .venv/bin/python benchmarks/archive_read_benchmark.py --businesses 100,400,1000
    .venv/bin/python benchmarks/archive_read_benchmark.py --businesses 1000 --profile   # cProfile of one read
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DAY = dt.date(2026, 11, 30)
MODES = ("before", "per-business", "shared", "shared-all")


def build(work: Path, n: int) -> Path:
    """The Delta archive of DAY's sales for `n` demo businesses under `work` (reused when already built)."""
    root = work / "storage"
    if (root / "archive/tables/_reconciliation").exists():
        return root
    os.environ["POS_EXPORTS_STATE_URL"] = f"sqlite:///{work / 'state.db'}"
    from pos_exports.archive import delta
    from pos_exports.archive.read import save_businesses
    from pos_exports.archive.tables import DATASETS
    from pos_exports.periods import day_window
    from pos_exports.source import demo
    from pos_exports.source.database import connect, list_businesses
    from pos_exports.storage.base import LocalStorage

    db = work / "pos.sqlite"
    demo.build_sqlite(db, demo.DemoSpec(end_date=DAY, days=1, extra_businesses=max(n - 6, 0)))
    storage, ds = LocalStorage(root), DATASETS["sales"]
    with connect(f"sqlite:///{db}") as reader, tempfile.TemporaryDirectory(dir=work) as folder:
        businesses = [b for b in list_businesses(reader) if b.is_active]
        save_businesses(storage, businesses)
        now = max(day_window(DAY, b.timezone).end for b in businesses) + dt.timedelta(hours=1)
        staged = [
            delta.stage_business_day(reader, storage, ds, b, DAY, now=now, folder=Path(folder)) for b in businesses
        ]
        for _, outcome in delta.commit_dataset_day(storage, ds, DAY, staged, now):
            if isinstance(outcome, Exception):
                raise outcome
    return root


def probe(root: Path, reads: int, mode: str, profile: bool = False) -> float:
    """CPU ms per business of reading the 4 sales tables of `reads` businesses of the archive at `root`."""
    import contextlib

    from pos_exports.archive import read
    from pos_exports.archive.read import load_businesses, read_table
    from pos_exports.archive.tables import DATASETS
    from pos_exports.storage.base import LocalStorage

    storage = LocalStorage(root)
    ids = [b.id for b in load_businesses(storage)]
    chosen = ids[:: max(len(ids) // reads, 1)][:reads] if reads else ids
    read_table(storage, "sales", "sales", ids[0], [DAY])  # imports and first-use set-up are not the read path
    scope = read.shared_days() if mode.startswith("shared") else contextlib.nullcontext()
    profiler = cProfile.Profile() if profile else None
    start = time.process_time()
    with scope:
        if profiler:
            profiler.enable()
        for business in chosen:
            for table in DATASETS["sales"].tables:
                read_table(storage, "sales", table.name, business, [DAY])
        if profiler:
            profiler.disable()
    spent = time.process_time() - start
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    return 1000 * spent / len(chosen)


def _child(root: Path, reads: int, mode: str, before: Path | None) -> float:
    phase, code = ("per-business", ["--code", str(before)]) if mode == "before" else (mode, [])
    reads = 0 if mode == "shared-all" else reads
    cmd = [sys.executable, __file__, "--phase", phase, "--root", str(root), "--reads", str(reads), *code]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])["ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--businesses", default="100,400,1000", help="comma-separated N")
    parser.add_argument("--reads", type=int, default=50, help="businesses read per probe")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--profile", action="store_true", help="cProfile one per-business probe per N (stderr)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the archives here (default: a temp dir)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--before", type=Path, default=None, help="earlier code to compare with (a folder)")
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.code:
        sys.path.insert(0, str(args.code))
    if args.phase:
        print(json.dumps({"ms": probe(args.root, args.reads, args.phase, args.profile)}))
        return
    sizes, modes = [int(n) for n in args.businesses.split(",")], args.modes.split(",")
    if not args.before:
        modes = [m for m in modes if m != "before"]
    with tempfile.TemporaryDirectory(prefix="pos-readbench-") as tmp:
        base = args.workdir or Path(tmp)
        roots = {}
        for n in sizes:
            t = time.perf_counter()
            (base / f"n{n}").mkdir(parents=True, exist_ok=True)
            roots[n] = build(base / f"n{n}", n)
            print(f"N={n}: archive built in {time.perf_counter() - t:.0f} s (not measured)", flush=True)
        if args.profile:
            for n in sizes:
                print(f"--- profile N={n} (per-business)", file=sys.stderr, flush=True)
                cmd = [sys.executable, __file__, "--phase", "per-business", "--root", str(roots[n]), "--profile"]
                subprocess.run([*cmd, "--reads", str(args.reads)], check=True, stdout=subprocess.DEVNULL)
            return
        ms: dict[tuple[int, str], list[float]] = {}
        for _ in range(args.repeat):  # alternated: every N and mode once per round
            for n in sizes:
                for mode in modes:
                    ms.setdefault((n, mode), []).append(_child(roots[n], args.reads, mode, args.before))
    print(f"{'N':>6} " + " ".join(f"{m + ' ms/business':>28}" for m in modes))
    for n in sizes:
        cells = [f"{statistics.median(ms[n, m]):>8.1f} {str([round(x, 1) for x in ms[n, m]]):>19}" for m in modes]
        print(f"{n:>6} " + " ".join(cells))
    print(f"peak RSS of this driver {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
