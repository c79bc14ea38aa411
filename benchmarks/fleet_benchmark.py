"""Fleet benchmark (issue 12): one day of N demo businesses through archive, exports and deliveries.

Builds a demo POS database (SQLite) with N businesses and one day of data, then on a fresh DAGSTER_HOME and
storage, as the daemon would, in this process:
  archive     the daily archive run of that day (event datasets, then snapshots), `pos-exports` style;
  exports     the daily exports run of that day (every dataset, every format, every business);
  deliveries  one daily subscription per business (every dataset and format, to the outbox: no SMTP);
              `due_subscriptions_sensor` is evaluated with `build_sensor_context` at 12:00 UTC the next
              day and its run requests are executed in process (`delivery_batch_job.execute_in_process`),
              tick after tick until nothing is due;
and times one tick each of due_subscriptions_sensor, catchup_sensor and retention_guard_sensor afterwards.
Per stage: wall s, CPU s (self + children), CPU s per business; Dagster runs launched, files written under
storage, peak RSS; then the naive pandas peer (`naive_peer_benchmark.py`) and the project's sales export in the
same formats, each in a child process on the same database and archive. The driver runs N and N/4 each in its
own child process (own peak RSS) and prints the
per-business cost of both and the extrapolation to 10,000 businesses.

    .venv/bin/python benchmarks/fleet_benchmark.py --businesses 1000 [--also 500] [--day YYYY-MM-DD] [--workdir DIR]
    .venv/bin/python benchmarks/fleet_benchmark.py --businesses 10000   # the 10,000-business day itself
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pos_exports.core.clock import utc_now

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FORMATS = ["xlsx", "csv", "pdf"]


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


class _Stage:
    def __init__(self, stages: dict, name: str) -> None:
        self.stages, self.name = stages, name

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), _cpu()

    def __exit__(self, *exc) -> None:
        self.stages[self.name] = {"wall": time.perf_counter() - self.wall, "cpu": _cpu() - self.cpu}


def measure(n: int, day: dt.date, work: Path) -> dict:
    """One fleet day of `n` businesses in `work` (a fresh folder); returns the figures as a dict."""
    work.mkdir(parents=True, exist_ok=True)
    storage_root, home = work / "storage", work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    os.environ.update(
        DAGSTER_HOME=str(home),
        POS_EXPORTS_STORAGE=str(storage_root),
        POS_DATABASE_URL=f"sqlite:///{work / 'pos.sqlite'}",
        POS_EXPORTS_START_DATE=day.isoformat(),
    )
    os.environ.pop("POS_EXPORTS_SMTP_URL", None)
    os.environ.pop("POS_EXPORTS_STATE_URL", None)
    import dagster as dg

    from pos_exports import cli
    from pos_exports.archive.tables import DATASETS
    from pos_exports.defs import catchup, retention
    from pos_exports.defs import deliveries as delivery
    from pos_exports.defs.resources import ClockResource, StorageResource
    from pos_exports.delivery import subscriptions
    from pos_exports.reports import BUILDERS
    from pos_exports.source import demo
    from pos_exports.state import engine

    stages: dict[str, dict] = {}
    with _Stage(stages, "build POS db (not counted)"):
        demo.build_sqlite(work / "pos.sqlite", demo.DemoSpec(end_date=day, days=1, extra_businesses=max(n - 6, 0)))
    events = [k for k, d in DATASETS.items() if d.kind == "event"]
    snaps = [k for k, d in DATASETS.items() if d.kind == "snapshot"]
    with _Stage(stages, "archive"):
        assert cli.run_archive(day, day, events, []) and cli.run_archive(day, day, snaps, [])
    eng = engine()  # the subscriptions exist before the day's exports run (which renders what they ask for)
    for b in range(1, n + 1):
        subscriptions.add(
            eng,
            {
                "business_id": b,
                "name": "Fleet daily",
                "datasets": sorted(BUILDERS),
                "formats": FORMATS,
                "frequency": "daily",
                "at": "00:30",  # due by 12:00 UTC the next day in every zone (-11:30..+14)
                "recipients": [f"owner{b}@fleet.example"],
            },
            now=utc_now(),
        )
    with _Stage(stages, "exports"):
        assert cli._execute("daily_exports_job", run_config={}, partition_key=day.isoformat()).success
    now = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(12), dt.UTC)
    resources = {"storage": StorageResource(root=str(storage_root)), "clock": ClockResource.at(now)}
    runs, cursor, ticks = 2 + 1, json.dumps({"checked_at": (now - dt.timedelta(hours=30)).isoformat()}), []
    with _Stage(stages, "deliveries"), dg.DagsterInstance.get() as instance:
        while True:
            context = dg.build_sensor_context(cursor=cursor, resources=resources, instance=instance)
            start = time.perf_counter()
            result = delivery.due_subscriptions_sensor(context)
            ticks.append(time.perf_counter() - start)
            cursor = context.cursor
            if not isinstance(result, list):
                break
            for request in result:
                delivery.delivery_batch_job.execute_in_process(
                    run_config=request.run_config, resources=resources, instance=instance, tags=request.tags
                )
                runs += 1
    tick_s = {"due_subscriptions_sensor (max over ticks)": max(ticks)}
    with dg.DagsterInstance.get() as instance:
        for sensor in (catchup.catchup_sensor, retention.retention_guard_sensor):
            context = dg.build_sensor_context(resources=resources, instance=instance)
            start = time.perf_counter()
            sensor(context)
            tick_s[sensor.name] = time.perf_counter() - start
    outbox = storage_root / "outbox"
    # The peer, on the same database in the same run: the naive pandas script (sales lines, XLSX + CSV) and
    # the project's sales export in the same two formats, each a fresh child process (imports included).
    from benchmarks.naive_peer_benchmark import child_cpu

    (work / "naive").mkdir()
    naive = ["--phase", "naive", "--db", work / "pos.sqlite", "--out", work / "naive", "--day", day]
    sales = ["--phase", "exports", "--root", storage_root, "--datasets", "sales", "--formats", "xlsx,csv", "--day", day]
    naive_cpu, sales_cpu = child_cpu(naive, quiet=True), child_cpu(sales, quiet=True)
    return {
        "peer": {"naive pandas script (sales, XLSX+CSV)": naive_cpu, "project sales export (XLSX+CSV)": sales_cpu},
        "businesses": n,
        "stages": stages,
        "runs": runs,
        "ticks": len(ticks),
        "tick_s": tick_s,
        "files": _files(storage_root),
        "emails": _files(outbox) if outbox.exists() else 0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _child(n: int, day: dt.date, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--phase", "--businesses", str(n), "--day", str(day), "--workdir", str(work)]
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)  # its log on our stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _report(results: list[dict]) -> None:
    print(f"{'stage':28} " + " ".join(f"{'N=' + str(r['businesses']):>34}" for r in results))
    print(f"{'':28} " + " ".join(f"{'wall s':>10} {'CPU s':>10} {'CPU ms/biz':>12}" for _ in results))
    for name in results[0]["stages"]:
        cells = []
        for r in results:
            s = r["stages"][name]
            cells.append(f"{s['wall']:>10.1f} {s['cpu']:>10.1f} {1000 * s['cpu'] / r['businesses']:>12.1f}")
        print(f"{name:28} " + " ".join(cells))
    for key in ("runs", "ticks", "files", "emails", "peak_rss_mb"):
        print(f"{key:28} " + " ".join(f"{r[key]:>34.0f}" for r in results))
    for name in results[0]["tick_s"]:
        print(f"tick {name:23} " + " ".join(f"{r['tick_s'][name]:>33.2f}s" for r in results))
    for name in results[0]["peer"]:
        print(f"peer {name:40} " + " ".join(f"{r['peer'][name]:>10.1f} CPU s" for r in results))
    for r in results:
        naive, mine = r["peer"].values()
        print(
            f"N={r['businesses']}: project / naive script CPU (sales, XLSX+CSV) = {mine / naive:.2f}x (target <= 0.50)"
        )
    counted = ("archive", "exports", "deliveries")
    for r in results:
        wall = sum(r["stages"][s]["wall"] for s in counted)
        cpu = sum(r["stages"][s]["cpu"] for s in counted)
        print(
            f"N={r['businesses']}: {wall:.1f} s wall, {cpu / r['businesses']:.3f} CPU s/business -> 10,000 businesses "
            f"~ {wall / r['businesses'] * 10_000 / 60:.1f} min wall ({cpu / r['businesses'] * 10_000 / 60:.1f} CPU min)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--businesses", type=int, default=1000, help="N, at least 6 (the fixed demo set)")
    parser.add_argument(
        "--day",
        type=dt.date.fromisoformat,
        default=None,
        help="YYYY-MM-DD, recent enough for snapshots (default: the latest day ended in every zone)",
    )
    parser.add_argument("--workdir", type=Path, help="where to build (default: a temporary folder)")
    parser.add_argument("--no-quarter", action="store_true", help="skip the N/4 run (per-business constancy)")
    parser.add_argument(
        "--also", default="", help="more fleet sizes to run before N, comma-separated (e.g. 500: N/4, 500 and N)"
    )
    parser.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.businesses < 6:
        parser.error(f"--businesses: at least 6 (the fixed demo set), got {args.businesses}")
    if args.day is None:  # the latest day that has ended in every zone (its snapshots are still capturable)
        from pos_exports.defs.archive import archive_partitions

        args.day = dt.date.fromisoformat(archive_partitions.get_last_partition_key())
    if args.phase:
        print(json.dumps(measure(args.businesses, args.day, args.workdir)))
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        sizes = [] if args.no_quarter else [max(args.businesses // 4, 6)]
        sizes = sorted({*sizes, *(int(n) for n in args.also.split(",") if n), args.businesses})
        _report([_child(n, args.day, Path(tmp) / f"n{n}") for n in sizes])


if __name__ == "__main__":
    main()
