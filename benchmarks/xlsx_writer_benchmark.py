"""Faster XLSX writers against XlsxWriter: speed on the sales sheet and fidelity on what our tests check.

Speed: the line-items sheet of `render_benchmark.py` (receipt, product, SKU, quantity, seven money columns,
completed at; 200,000 rows by default), in memory before the clock starts, each writer in its own child:

  xlsxwriter-floor  XlsxWriter constant_memory, `write_row`, no formats (render_benchmark's XLSX floor)
  render_xlsx       our renderer (XlsxWriter + bulk row XML): the whole workbook, Summary included
  rustpy            rustpy-xlsxwriter (the Rust rust_xlsxwriter): a pandas frame of the same converted
                    values, column formats, header format, frozen header, autofilter, widths
  pyexcelerate      PyExcelerate: the same rows as lists, column styles (format, width), header style,
                    frozen header, autofilter

Fidelity: each candidate renders `sample_report()` (pos_exports_tests/render/sample.py) as closely as its API
allows, and `xlsx_fidelity.check_workbook` lists which of the properties our XLSX tests check it keeps.
The candidates are in the `bench` extra:

    .venv/bin/pip install -e '.[test,bench]'
    .venv/bin/python benchmarks/xlsx_writer_benchmark.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from render_benchmark import COLUMNS, line_item_batches, report, xlsx_floor  # noqa: E402

from pos_exports.render.xlsx import (  # noqa: E402
    HEADER_FILL,
    NUMBER_FORMATS,
    _column_lists,
    _fit_widths,
    _SheetNames,
    render_xlsx,
)
from pos_exports.reports.model import Report  # noqa: E402

WRITERS = ("xlsxwriter-floor", "render_xlsx", "rustpy", "pyexcelerate")


# --- the candidates, writing a Report as closely to render_xlsx as their APIs allow ------------------------


def _summary_rows(rep: Report, sections: list) -> list[tuple[str, object, str]]:
    """(label, value, kind) rows of the Summary sheet, the values as render_xlsx writes them."""
    from pos_exports.render.xlsx import _cell_text, local_naive

    tz = rep.timezone
    rows: list[tuple[str, object, str]] = [
        ("Business", _cell_text(rep.business_name), "text"),
        ("Period", f"{rep.period_label} (time zone {tz})", "text"),
        ("Time zone", tz, "text"),
        ("Currency", rep.currency, "text"),
        ("Generated", local_naive(rep.generated_at, tz).strftime("%Y-%m-%d %H:%M:%S"), "text"),
    ]
    for name, value in rep.filters.items():
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        rows.append((str(name), float(value) if numeric else _cell_text(str(value)), "text"))
    for fig in rep.summary:
        value = fig.value
        if hasattr(value, "hour"):
            value = local_naive(value, tz)
        elif hasattr(value, "year"):
            import datetime as dt

            value = dt.datetime(value.year, value.month, value.day)
        elif isinstance(value, str):
            value = _cell_text(value)
        elif value is not None and not isinstance(value, int | float):
            value = float(value)
        rows.append((_cell_text(fig.label), value, fig.kind))
    for section, (name, _, _, lists, _, _) in zip(rep.sections, sections, strict=True):
        count = len(lists[0]) if lists else 0
        rows.append((_cell_text(section.title), f"{count:,} rows on '{name}'", "text"))
    truncated = sections[-1][5] if sections else []
    if truncated:
        note = f"{len(truncated):,} text cell(s) longer than Excel's 32,767-character limit were cut: "
        rows.append((note + ", ".join(truncated), None, "text"))
    return rows


def _sections(rep: Report) -> list[tuple[str, list[str], list[str], list[list], list[float], int]]:
    """(sheet name, headers, kinds, column value lists, widths, cells cut so far) per section."""
    names = _SheetNames()
    names.claim("Summary")
    out = []
    truncated: list[str] = []
    for section in rep.sections:
        batches = [b for b in section.batches() if b.num_rows]
        headers = [c.header for c in section.columns]
        name = names.claim(section.title)
        if batches:
            table = pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
            lists = _column_lists(table, section.columns, [name], 1, truncated)
        else:
            lists = [[] for _ in section.columns]
        widths = _fit_widths(headers, section.columns, [v[:200] for v in lists])
        out.append((name, headers, [c.kind for c in section.columns], lists, widths, list(truncated)))
    return out


def render_rustpy(rep: Report, path: Path) -> None:
    import pandas as pd
    import rustpy_xlsxwriter as rx

    header = rx.Format().set_bold().set_font_color("#FFFFFF").set_background_color(HEADER_FILL).set_border("thin")
    kind_format = {kind: rx.Format().set_num_format(fmt) for kind, fmt in NUMBER_FORMATS.items()}
    kind_format["int"] = rx.Format().set_num_format("#,##0")
    sections = _sections(rep)
    summary = _summary_rows(rep, sections)
    sheets: list[tuple[str, object]] = [
        ("Summary", pd.DataFrame({"Figure": [r[0] for r in summary], "Value": [r[1] for r in summary]}, dtype=object))
    ]
    title = rx.Format().set_bold().set_font_size(14)
    opts: dict[str, dict] = {
        "column_formats": {},
        "column_widths": {"Summary": [34, 48]},
        "header_format": {"general": header},
        "autofilter": {},
        "header_row": {"Summary": 2},  # the title above the table, as a one-row merge (the API's only way)
        "merge_ranges": {"Summary": [(0, 0, 0, 1, rep.title, title)]},
        "row_formats": {"Summary": {i + 3: kind_format[r[2]] for i, r in enumerate(summary) if r[2] in kind_format}},
    }
    for name, headers, kinds, lists, widths, _ in sections:
        frame = {  # typed columns where the values are numbers (float64: rustpy reads them as arrays)
            h: pd.Series(v, dtype="float64" if k in ("money", "percent", "datetime", "date") else object)
            for h, k, v in zip(headers, kinds, lists, strict=True)
        }
        sheets.append((name, pd.DataFrame(frame)))
        opts["column_formats"][name] = [kind_format.get(k) if k != "int" else None for k in kinds]
        opts["column_widths"][name] = widths
        opts["autofilter"][name] = True
    rx.write_worksheets(sheets, str(path), freeze_panes={"general": {"row": 1, "col": 0}}, **opts)


def render_pyexcelerate(rep: Report, path: Path) -> None:
    from pyexcelerate import Color, Fill, Font, Format, Panes, Style, Workbook

    wb = Workbook()
    header = Style(font=Font(bold=True, color=Color(255, 255, 255)), fill=Fill(background=Color(0x2C, 0x3E, 0x50)))
    kind_format = {kind: Format(fmt) for kind, fmt in NUMBER_FORMATS.items()}
    kind_format["int"] = Format("#,##0")
    sections = _sections(rep)
    summary = _summary_rows(rep, sections)
    ws = wb.new_sheet("Summary", data=[[rep.title], [], *[[r[0], r[1]] for r in summary]])
    ws.set_cell_style(1, 1, Style(font=Font(bold=True, size=14)))
    for i, (_, _, kind) in enumerate(summary):
        if kind in kind_format:
            ws.set_cell_style(i + 3, 2, Style(format=kind_format[kind]))
    for name, headers, kinds, lists, widths, _ in sections:
        rows = [headers, *(list(r) for r in zip(*lists, strict=True))]
        ws = wb.new_sheet(name, data=rows)
        for j, (kind, width) in enumerate(zip(kinds, widths, strict=True), start=1):
            fmt = kind_format.get(kind) if kind != "int" else None
            ws.set_col_style(j, Style(size=width, format=fmt))
            ws.set_cell_style(1, j, header)
        ws.panes = Panes(0, 1)
        ws.auto_filter = True
    wb.save(str(path))


CANDIDATES = {"rustpy": render_rustpy, "pyexcelerate": render_pyexcelerate}


# --- speed ---------------------------------------------------------------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase(name: str, rows: int, out: Path) -> dict:
    batches = list(line_item_batches(rows))
    rep = report(lambda: iter(batches), rows)
    path = out / f"{name}.xlsx"
    start = time.perf_counter()
    cpu = time.process_time()
    if name == "xlsxwriter-floor":
        xlsx_floor(batches, path)
    elif name == "render_xlsx":
        render_xlsx(rep, path)
    else:
        CANDIDATES[name](rep, path)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"rows": rows, "seconds": seconds, "cpu": cpu, "peak_mb": _peak_mb(), "bytes": path.stat().st_size}


def fidelity(name: str, out: Path) -> dict:
    from pos_exports_tests.render.sample import sample_report
    from pos_exports_tests.render.xlsx_fidelity import check_workbook

    write = render_xlsx if name == "render_xlsx" else CANDIDATES[name]
    path = out / f"{name}-fidelity.xlsx"
    write(sample_report(), path)

    def again(target: Path) -> None:
        time.sleep(1.1)  # a writer that stamps the time of writing shows it
        write(sample_report(), target)

    return check_workbook(path, again)


def _child(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--fidelity", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.rows, Path(args.out))))
        return
    if args.fidelity:
        print(json.dumps(fidelity(args.fidelity, Path(args.out))))
        return

    with tempfile.TemporaryDirectory() as out:
        speed = {name: _child(["--phase", name, "--rows", str(args.rows), "--out", out]) for name in WRITERS}
        checks = {name: _child(["--fidelity", name, "--out", out]) for name in ("render_xlsx", *CANDIDATES)}
    floor = speed["xlsxwriter-floor"]
    print(f"{args.rows:,} rows of the sales sheet ({len(COLUMNS)} columns), each writer in its own process:")
    for name, r in speed.items():
        if "error" in r:
            print(f"  {name:<17} failed: {r['error']}")
            continue
        ratio = floor["seconds"] / r["seconds"] if "seconds" in floor else float("nan")
        print(
            f"  {name:<17} {r['seconds']:7.2f} s  {r['cpu']:7.2f} CPU-s  {r['rows'] / r['seconds']:>9,.0f} rows/s  "
            f"{ratio:5.2f}x the floor  peak {r['peak_mb']:4.0f} MB  {r['bytes'] / 1e6:5.1f} MB file"
        )
    print("\nFidelity (xlsx_fidelity.PROPERTIES on sample_report()):")
    for name, results in checks.items():
        if "error" in results:
            print(f"  {name}: could not write the report: {results['error']}")
            continue
        lost = {prop: found for prop, found in results.items() if found is not None}
        print(f"  {name}: keeps {len(results) - len(lost)} of {len(results)}")
        for prop, found in lost.items():
            print(f"    LOST {prop}: {found}")


if __name__ == "__main__":
    main()
