"""CSV: one sectioned UTF-8 file (with a byte-order mark, so Excel reads accents right) per report.

Layout, for the summary first (columns Figure,Value) and then each section in order:

    <section title>
    <header row>
    <rows ...>
    <empty line>

Values: money `1234.50` (no thousands separator, no currency symbol), percent as the percentage with
two decimals (`15.47`, and the header says `%`: `Margin %`), datetime `YYYY-MM-DD HH:MM:SS` in
business time, date `YYYY-MM-DD`, null empty; text that a spreadsheet would execute is neutralised
(`'=SUM(A1)`). Full data, never truncated. Rows are transformed with pyarrow.compute and written by
pyarrow's CSV writer batch by batch, so a section of millions of rows streams at Arrow speed.
"""

from __future__ import annotations

import csv
import io
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


def render_csv(report: Report, path: Path) -> dict[str, int]:
    """Write the report as one sectioned CSV file; returns the data rows written per section key."""
    rows: dict[str, int] = {}
    with open(path, "wb") as out:
        out.write(BOM)
        _write_lines(out, [["Summary"], ["Figure", "Value"], *summary_rows(report), []])
        for section in report.sections:
            rows[section.key] = _write_section(out, section)
    return rows


def summary_rows(report: Report) -> list[list[str]]:
    """The summary as Figure,Value rows (plain CSV forms of the values)."""
    tz = report.timezone
    lines = [
        ["Report", report.title],
        ["Business", report.business_name],
        ["Period", report.period_label],
        ["Time zone", tz],
        ["Currency", report.currency],
        ["Generated", figure_text(report.generated_at, "datetime", tz, display=False) + f" ({tz})"],
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
        if isinstance(fig.value, str) or fig.kind in ("text", "json"):
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
    _write_lines(out, [[neutralise(section.title)], [neutralise(csv_header(c)) for c in section.columns]])
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
    out.write(b"\n")
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
