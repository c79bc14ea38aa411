"""XLSX: one workbook per report, written by XlsxWriter in constant-memory mode (rows stream to disk).

Sheets: "Summary" first (title, business, period and time zone, currency, filters, notes, the
figures with number formats, then where each section's rows are), then one sheet per section with a
bold, filled, frozen header row, an autofilter and fitted column widths. Cells: money numbers
`#,##0.00`, int numbers, percent numbers `0.00%`, datetime real Excel datetimes (business time)
`yyyy-mm-dd hh:mm:ss`, date `yyyy-mm-dd`, text/json strings (always written as strings, never
formulas; text a spreadsheet would execute is neutralised with a leading apostrophe; characters XML
1.0 forbids are removed). A section of more than 1,048,575 rows continues on "Title (2)", "Title (3)"
..., header repeated. A text longer than Excel's 32,767-character cell limit is cut with an explicit
"[truncated ...]" marker and counted on the Summary sheet (the CSV holds the full text).

Speed: values are converted column-wise with pyarrow.compute (money via its exact decimal text to
float, datetimes straight to Excel serial numbers), the number formats are column formats, and rows go
out with `write_row`, so the per-cell cost is XlsxWriter's own. Determinism: the workbook's creation
date is `report.generated_at` and XlsxWriter gives every zip entry a fixed 1980 timestamp, so the same
report gives identical bytes.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from pos_exports.render.text import local_naive, neutralise, neutralise_array, xml_clean, xml_clean_array
from pos_exports.reports.model import Column, Report, Section

MAX_SHEET_ROWS = 1_048_576
MAX_DATA_ROWS = MAX_SHEET_ROWS - 1  # below the header row
MAX_CELL_CHARS = 32_767
MAX_WIDTH = 60
FIT_ROWS = 200
HEADER_FILL = "#2C3E50"
WORKBOOK_OPTIONS = {
    "constant_memory": True,
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
}
NUMBER_FORMATS = {
    "money": "#,##0.00",
    "percent": "0.00%",
    "datetime": "yyyy-mm-dd hh:mm:ss",
    "date": "yyyy-mm-dd",
}
_EXCEL_EPOCH_DAYS = 25569  # 1970-01-01 as an Excel serial day (1900 date system)
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")


def render_xlsx(report: Report, path: Path) -> dict[str, int]:
    """Write the report as an XLSX workbook; returns the data rows written per section key."""
    wb = xlsxwriter.Workbook(str(path), WORKBOOK_OPTIONS)
    try:
        created = report.generated_at
        if created.tzinfo is not None:
            created = created.astimezone(dt.UTC).replace(tzinfo=None)
        wb.set_properties({"title": xml_clean(report.title), "created": created})
        formats = _Formats(wb)
        names = _SheetNames()
        summary = wb.add_worksheet(names.claim("Summary"))
        next_row = _write_summary(summary, report, formats)
        rows: dict[str, int] = {}
        placements: list[tuple[str, int, list[str]]] = []
        truncated: list[str] = []
        for section in report.sections:
            count, sheets = _write_section(wb, section, formats, names, truncated)
            rows[section.key] = count
            placements.append((section.title, count, sheets))
        _write_placements(summary, next_row, placements, truncated, formats)
    finally:
        wb.close()
    return rows


class _Formats:
    def __init__(self, wb: xlsxwriter.Workbook) -> None:
        self.header = wb.add_format(
            {"bold": True, "font_color": "#FFFFFF", "bg_color": HEADER_FILL, "border": 1, "valign": "top"}
        )
        self.title = wb.add_format({"bold": True, "font_size": 14})
        self.bold = wb.add_format({"bold": True})
        self.kind = {kind: wb.add_format({"num_format": fmt}) for kind, fmt in NUMBER_FORMATS.items()}
        self.kind["int"] = wb.add_format({"num_format": "#,##0"})  # summary figures only
        self.top = wb.add_format({"valign": "top"})


class _SheetNames:
    """Unique (case-insensitively), valid Excel sheet names: <= 31 chars, none of []:*?/\\ ."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def claim(self, title: str, number: int = 1) -> str:
        base = _SHEET_NAME_BAD.sub(" ", xml_clean(title)).strip().strip("'").strip() or "Sheet"
        if base.lower() == "history":  # reserved by Excel
            base = "History data"
        n = number
        while True:
            suffix = "" if n == 1 else f" ({n})"
            name = base[: 31 - len(suffix)].rstrip() + suffix
            if name.lower() not in self.used:
                self.used.add(name.lower())
                return name
            n += 1


def _cell_text(value: str) -> str:
    return neutralise(xml_clean(value))


def _write_summary(ws: Worksheet, report: Report, formats: _Formats) -> int:
    tz = report.timezone
    ws.set_column(0, 0, 34)
    ws.set_column(1, 1, 48)
    ws.write_string(0, 0, _cell_text(report.title), formats.title)
    generated = local_naive(report.generated_at, tz).strftime("%Y-%m-%d %H:%M:%S")
    head = [
        ("Business", report.business_name),
        ("Period", f"{report.period_label} (time zone {tz})"),
        ("Time zone", tz),
        ("Currency", report.currency),
        ("Generated", f"{generated} ({tz})"),
    ]
    row = 2
    for label, value in head:
        ws.write_string(row, 0, label, formats.bold)
        ws.write_string(row, 1, _cell_text(str(value)))
        row += 1
    if report.filters:
        row += 1
        ws.write_string(row, 0, "Filters", formats.bold)
        row += 1
        for name, value in report.filters.items():
            shown = ", ".join(map(str, value)) if isinstance(value, list | tuple | set) else str(value)
            ws.write_string(row, 0, _cell_text(str(name)))
            if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
                ws.write_number(row, 1, float(value))  # a number stays a number (min_quantity = -5)
            else:
                ws.write_string(row, 1, _cell_text(shown))
            row += 1
    if report.notes:
        row += 1
        ws.write_string(row, 0, "Notes", formats.bold)
        row += 1
        for note in report.notes:
            ws.write_string(row, 0, _cell_text(note))
            row += 1
    row += 1
    ws.write_string(row, 0, "Figure", formats.header)
    ws.write_string(row, 1, "Value", formats.header)
    row += 1
    for fig in report.summary:
        ws.write_string(row, 0, _cell_text(fig.label))
        _write_figure(ws, row, 1, fig.value, fig.kind, tz, formats)
        row += 1
    return row + 1


def _write_figure(ws: Worksheet, row: int, col: int, value: object, kind: str, tz: str, formats: _Formats) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        ws.write_string(row, col, str(value))
    elif isinstance(value, dt.datetime):
        ws.write_datetime(row, col, local_naive(value, tz), formats.kind["datetime"])
    elif isinstance(value, dt.date):
        ws.write_datetime(row, col, value, formats.kind["date"])
    elif isinstance(value, int | float | Decimal):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            return
        fmt = formats.kind.get(kind) if kind in ("money", "percent", "int") else None
        if kind == "int" and not isinstance(value, int):
            fmt = None
        ws.write_number(row, col, value if isinstance(value, int) else number, fmt)
    else:
        ws.write_string(row, col, _cell_text(str(value)))


def _write_placements(
    ws: Worksheet,
    row: int,
    placements: list[tuple[str, int, list[str]]],
    truncated: list[str],
    formats: _Formats,
) -> None:
    if placements:
        ws.write_string(row, 0, "Section", formats.header)
        ws.write_string(row, 1, "Rows (sheets)", formats.header)
        row += 1
        for title, count, sheets in placements:
            ws.write_string(row, 0, _cell_text(title))
            ws.write_string(row, 1, f"{count:,} rows on " + ", ".join(f"'{s}'" for s in sheets))
            row += 1
    if truncated:
        row += 1
        shown = ", ".join(truncated[:20]) + (" ..." if len(truncated) > 20 else "")
        ws.write_string(
            row,
            0,
            f"{len(truncated):,} text cell(s) longer than Excel's {MAX_CELL_CHARS:,}-character limit "
            f"were cut (marked '[truncated ...]'); the full text is in the CSV: {shown}",
        )


# --- sections -------------------------------------------------------------------------------------------


def _write_section(
    wb: xlsxwriter.Workbook, section: Section, formats: _Formats, names: _SheetNames, truncated: list[str]
) -> tuple[int, list[str]]:
    columns = section.columns
    headers = [xml_clean(c.header) for c in columns]
    sheets: list[str] = []
    ws: Worksheet | None = None
    widths: list[float] | None = None
    row = MAX_SHEET_ROWS  # "full": the first chunk opens the first sheet
    total = 0

    def new_sheet() -> Worksheet:
        name = names.claim(section.title, len(sheets) + 1)
        sheets.append(name)
        sheet = wb.add_worksheet(name)
        for i, width in enumerate(widths or []):
            sheet.set_column(i, i, width, formats.kind.get(columns[i].kind) if columns[i].kind != "int" else None)
        sheet.freeze_panes(1, 0)
        for i, header in enumerate(headers):
            sheet.write_string(0, i, header, formats.header)
        return sheet

    for batch in _nonempty(section.batches()):
        start = 0
        while start < batch.num_rows:
            if row >= MAX_SHEET_ROWS:
                if ws is not None:
                    ws.autofilter(0, 0, row - 1, len(columns) - 1)
                if widths is None:
                    lists = _column_lists(batch.slice(0, FIT_ROWS), columns, sheets, 1, [])
                    widths = _fit_widths(headers, columns, lists)
                ws = new_sheet()
                row = 1
            take = min(batch.num_rows - start, MAX_SHEET_ROWS - row)
            chunk = batch.slice(start, take)
            lists = _column_lists(chunk, columns, sheets, row, truncated)
            write_row = ws.write_row
            for values in zip(*lists, strict=True):
                write_row(row, 0, values)
                row += 1
            start += take
            total += take
    if ws is None:  # no rows: the header alone
        widths = _fit_widths(headers, columns, [[] for _ in columns])
        ws = new_sheet()
        row = 1
    ws.autofilter(0, 0, max(row - 1, 0), max(len(columns) - 1, 0))
    return total, sheets


def _nonempty(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if batch.num_rows:
            yield batch


def _column_lists(
    batch: pa.RecordBatch,
    columns: tuple[Column, ...],
    sheets: list[str],
    first_row: int,
    truncated: list[str],
) -> list[list]:
    out = []
    for j, c in enumerate(columns):
        values = xlsx_values(batch.column(c.name), c.kind)
        if c.kind in ("text", "json") and _has_long(batch.column(c.name)):
            for i, value in enumerate(values):
                if value is not None and _utf16_len(value) > MAX_CELL_CHARS:
                    values[i] = fit_cell_text(value)
                    truncated.append(f"'{sheets[-1] if sheets else ''}'!{_col_letter(j)}{first_row + i + 1}")
        out.append(values)
    return out


def _has_long(arr: pa.Array) -> bool:
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return False
    lengths = pc.binary_length(arr)  # UTF-8 bytes >= UTF-16 units, a cheap pre-filter
    return bool(len(arr)) and (pc.max(lengths).as_py() or 0) >= MAX_CELL_CHARS  # +1 for an apostrophe


def xlsx_values(arr: pa.Array, kind: str) -> list:
    """A column of a batch as the Python values to write (numbers, Excel serials, clean strings, None)."""
    t = arr.type
    if kind == "money":
        if pa.types.is_decimal(t):  # via its exact text: the float nearest to the decimal
            arr = pc.cast(pc.cast(arr, pa.string()), pa.float64())
        else:
            arr = pc.cast(arr, pa.float64())
        return arr.to_pylist()
    if kind == "percent":
        arr = pc.cast(arr, pa.float64())
        return pc.if_else(pc.is_finite(arr), arr, pa.scalar(None, pa.float64())).to_pylist()
    if kind == "int":
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            return arr.to_pylist()
        return _strings(pc.cast(arr, pa.string()))
    if kind == "datetime" and pa.types.is_timestamp(t):
        if t.tz is not None:
            arr = pc.local_timestamp(arr)
        seconds = pc.cast(pc.cast(arr, pa.timestamp("s"), safe=False), pa.int64())
        return pc.add(pc.divide(seconds, 86400.0), float(_EXCEL_EPOCH_DAYS)).to_pylist()
    if kind == "date" and (pa.types.is_date(t) or pa.types.is_timestamp(t)):
        if pa.types.is_timestamp(t) and t.tz is not None:
            arr = pc.local_timestamp(arr)
        days = pc.cast(pc.cast(arr, pa.date32()), pa.int32())
        return pc.add(pc.cast(days, pa.int64()), _EXCEL_EPOCH_DAYS).to_pylist()
    return _strings(arr)


def _strings(arr: pa.Array) -> list:
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return neutralise_array(xml_clean_array(arr)).to_pylist()


def _utf16_len(value: str) -> int:
    return len(value) if value.isascii() else len(value.encode("utf-16-le")) // 2


def fit_cell_text(value: str) -> str:
    """A text cut to Excel's cell limit, with an explicit marker (the CSV holds the full text)."""
    total = len(value)
    marker_len = len(f"… [truncated: showing {total:,} of {total:,} characters; full text in the CSV]")
    kept = value.encode("utf-16-le")[: 2 * (MAX_CELL_CHARS - marker_len)].decode("utf-16-le", errors="ignore")
    return f"{kept}… [truncated: showing {len(kept):,} of {total:,} characters; full text in the CSV]"


def _col_letter(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(65 + rem) + name
    return name


_FIXED_WIDTHS = {"datetime": 19, "date": 10}


def _fit_widths(headers: list[str], columns: tuple[Column, ...], lists: list[list]) -> list[float]:
    widths = []
    for header, column, values in zip(headers, columns, lists, strict=True):
        width = _text_width(header) * 1.15 + 2  # bold, plus the autofilter button
        kind = column.kind
        if kind in _FIXED_WIDTHS:
            width = max(width, _FIXED_WIDTHS[kind] + 2)
        else:
            for value in values:
                if value is None:
                    continue
                if kind == "money":
                    shown = f"{value:,.2f}"
                elif kind == "percent":
                    shown = f"{value * 100:.2f}%"
                else:
                    shown = str(value)
                width = max(width, _text_width(shown) + 2)
        widths.append(round(min(max(width, 8), MAX_WIDTH), 1))
    return widths


def _text_width(text: str) -> float:
    longest = 0.0
    for line in text[:400].splitlines() or [""]:
        if line.isascii():
            longest = max(longest, len(line))
        else:
            longest = max(longest, sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line))
    return longest
