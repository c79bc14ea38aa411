"""CSV: one table per file, each UTF-8 with a byte-order mark (so Excel reads accents right) and one header row,
so `pandas.read_csv` or any BI tool reads each file as it is.

Files of one report (docs/reports.md, "CSV files"), for the dataset `sales`:

    sales.csv               the dataset's main table (`MAIN_SECTIONS`; the first section otherwise)
    sales-summary.csv       Figure,Value: report, business, period, time zone, currency, filters, notes, figures
    sales-{key}.csv         every other section of the report, by its key (`sales-line_items.csv`, ...)

so a section added to a report becomes a file of its own. Values: money `1234.50` (no thousands
separator, no currency symbol), percent as the percentage with two decimals (`15.47`, and the header
says `%`: `Margin %`), datetime `YYYY-MM-DD HH:MM:SS` in business time, date `YYYY-MM-DD`, null empty,
codes as they are (`mobile_money`); text that a spreadsheet would execute is neutralised (`'=SUM(A1)`,
`render.text.needs_neutralising`). Full data, never truncated. Rows are transformed with
pyarrow.compute and written by pyarrow's CSV writer batch by batch, so a section of millions of rows
streams at Arrow speed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pos_exports.render.text import figure_text, neutralise, neutralise_array, percent_header
from pos_exports.reports.model import Column, Report, Section

BOM = b"\xef\xbb\xbf"
_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, delimiter=",", quoting_style="needed")
# The section each dataset's plain `{dataset}.csv` holds: the table a reader of that dataset means.
MAIN_SECTIONS = {
    "sales": "sales",
    "customers": "customer_details",
    "inventory": "stock_items",
    "audit_log": "audit_logs",
}
SUMMARY = "summary"


@dataclass(frozen=True)
class CsvFile:
    """One CSV file of a report: `{dataset}{suffix}.csv`, holding the table `key` (a section, or the summary)."""

    suffix: str  # "" (the main table), "-summary", "-line_items"
    key: str
    write: Callable[[Path], int]  # writes the file, returns its data rows


def csv_files(report: Report) -> list[CsvFile]:
    """The report's CSV files, the main table first, then the summary, then the other sections in order."""
    main_key = MAIN_SECTIONS.get(report.dataset)
    if not any(s.key == main_key for s in report.sections):
        main_key = report.sections[0].key if report.sections else None
    main = [CsvFile("", s.key, _section_writer(s)) for s in report.sections if s.key == main_key]
    summary = CsvFile(f"-{SUMMARY}", SUMMARY, lambda path: _write_file(path, _write_summary, report))
    others = [CsvFile(f"-{s.key}", s.key, _section_writer(s)) for s in report.sections if s.key != main_key]
    files = [*main, summary, *others]
    suffixes = [f.suffix for f in files]
    assert len(set(suffixes)) == len(suffixes), f"CSV file names collide: {suffixes}"
    return files


def _section_writer(section: Section) -> Callable[[Path], int]:
    return lambda path: _write_file(path, _write_section, section)


def _write_file(path: Path, write: Callable, subject) -> int:
    with open(path, "wb") as out:
        out.write(BOM)
        return write(out, subject)


def render_csv(report: Report, path: Path) -> dict[str, int]:
    """Write every CSV file of the report beside `path` (`sales.csv`, `sales-summary.csv`, ...: `path` names the
    main one); returns the data rows written per section key."""
    rows: dict[str, int] = {}
    for part in csv_files(report):
        count = part.write(path.with_name(f"{path.stem}{part.suffix}{path.suffix}"))
        if part.key != SUMMARY:
            rows[part.key] = count
    return rows


def _write_summary(out: BinaryIO, report: Report) -> int:
    lines = summary_rows(report)
    _write_lines(out, [["Figure", "Value"], *lines])
    return len(lines)


def summary_rows(report: Report) -> list[list[str]]:
    """The summary as Figure,Value rows (plain CSV forms of the values)."""
    tz = report.timezone
    lines = [
        ["Report", report.title],
        ["Business", report.business_name],
        ["Period", report.period_label],
        ["Time zone", tz],
        ["Currency", report.currency],
    ]
    lines = [[neutralise(cell) for cell in line] for line in lines]
    for name, value in report.filters.items():
        text = _filter_text(value)
        numeric = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
        lines.append([neutralise(f"Filter: {name}"), text if numeric else neutralise(text)])
    lines += [["Note", neutralise(note)] for note in report.notes]
    for fig in report.summary:
        label = percent_header(fig.label) if fig.kind == "percent" else fig.label
        value = figure_text(fig.value, fig.kind, tz, display=False)
        if isinstance(fig.value, str) or fig.kind in ("text", "json", "code"):
            value = neutralise(value)  # numbers (a negative amount) stay numbers
        lines.append([neutralise(label), value])
    return lines


def _filter_text(value: object) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def csv_header(column: Column) -> str:
    return percent_header(column.header) if column.kind == "percent" else column.header


def _write_lines(out: BinaryIO, lines: list[list[str]]) -> None:
    """Lines written as given (callers neutralise what is text)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for line in lines:
        writer.writerow(line)
    out.write(buf.getvalue().encode("utf-8"))


def _write_section(out: BinaryIO, section: Section) -> int:
    _write_lines(out, [[neutralise(csv_header(c)) for c in section.columns]])
    out.flush()
    count = 0
    writer: pacsv.CSVWriter | None = None
    try:
        for batch in section.batches():
            if not batch.num_rows:
                continue
            table = transform_batch(batch, section.columns)
            if writer is None:
                writer = pacsv.CSVWriter(out, table.schema, write_options=_WRITE_OPTIONS)
            writer.write_batch(table)
            count += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return count


def transform_batch(batch: pa.RecordBatch, columns: tuple[Column, ...]) -> pa.RecordBatch:
    """The batch's report columns as CSV-ready Arrow arrays (see the module docstring)."""
    arrays = [csv_array(batch.column(c.name), c.kind) for c in columns]
    return pa.RecordBatch.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])


def csv_array(arr: pa.Array, kind: str) -> pa.Array:
    t = arr.type
    if kind == "money":
        if pa.types.is_decimal(t):
            return arr  # the writer prints decimals plainly with their scale: 1234.50
        return pc.cast(pc.round(pc.cast(arr, pa.float64()), 2), pa.decimal128(20, 2))
    if kind == "percent":
        ratio = pc.cast(arr, pa.float64())
        ratio = pc.if_else(pc.is_finite(ratio), ratio, pa.scalar(None, pa.float64()))
        return pc.cast(pc.round(pc.multiply(ratio, 100.0), 2), pa.decimal128(38, 2))
    if kind == "datetime":
        if pa.types.is_timestamp(t):
            if t.tz is not None:
                arr = pc.local_timestamp(arr)
            return pc.cast(arr, pa.timestamp("s"), safe=False)  # 2025-03-09 10:00:00
        return neutralise_array(pc.cast(arr, pa.string()))
    if kind == "date":
        if pa.types.is_timestamp(t):
            arr = pc.local_timestamp(arr) if t.tz is not None else arr
            return pc.cast(arr, pa.date32())
        return arr if pa.types.is_date(t) else neutralise_array(pc.cast(arr, pa.string()))
    if kind == "int":
        return arr if pa.types.is_integer(t) else pc.cast(arr, pa.string())
    # text, json
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        arr = pc.cast(arr, pa.string())
    return neutralise_array(arr)
