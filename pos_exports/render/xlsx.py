"""XLSX: one workbook per report, written by XlsxWriter in constant-memory mode (rows stream to disk).

Sheets: "Summary" first (title, business, period and time zone, currency, filters, notes, the
figures with number formats, then where each section's rows are), then one sheet per section with a
bold, filled, frozen header row, an autofilter and fitted column widths. Printing: every sheet landscape,
fitted to the page width, with a print title (business, report and sheet, period) and "Page X of Y"; a
section's header row repeats on every printed page; the Summary wraps long text in its cells (label
and value side by side, each wrapped in its column). Codes are shown as words (`Mobile money`). Cells: money numbers
`#,##0.00`, int numbers, percent numbers `0.00%`, datetime real Excel datetimes (business time)
`yyyy-mm-dd hh:mm:ss`, date `yyyy-mm-dd`, text/json strings (always written as string cells, which a
spreadsheet never evaluates, so `+201 55 555 0512` or `=SUM(A1)` is shown exactly as it is, without the
apostrophe the CSV needs; characters XML 1.0 forbids are removed). A section of more than 1,048,575 rows
continues on "Title (2)", "Title (3)" ..., header repeated. A text longer than Excel's 32,767-character
cell limit is cut with an explicit "[truncated ...]" marker and counted on the Summary sheet (the CSV
holds the full text).

Speed: section rows never go through Python cell by cell. Each chunk's `<row>` XML is built column-wise
with pyarrow.compute, exactly as XlsxWriter's constant-memory writer would emit it (inline strings with
its escapes, each cell styled with its column format; money as its exact decimal text, other numbers as
the shortest text of the same float), and handed to XlsxWriter's row stream (`rows_xml`); XlsxWriter still
writes everything else (styles, sheet set-up, Summary, zip). A chunk with a value that needs XlsxWriter's
per-cell checks (text over the cell limit, NaN/inf, integers >= 1e15) is written with `write_row`.
Column widths come from the first rows, computed on Arrow maxima where the width follows from them.
A workbook of up to `IN_MEMORY_ROWS` section rows is zipped from memory (no temporary file per part), a larger
one through XlsxWriter's temporary files; both give the same bytes (`_PartInfo`).
Determinism: the workbook's creation date is `report.generated_at` and XlsxWriter gives every zip entry
a fixed 1980 timestamp, so the same report gives identical bytes.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import stat
import unicodedata
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xlsxwriter
import xlsxwriter.workbook
from xlsxwriter.worksheet import Worksheet

from pos_exports.render.text import (
    XML_ILLEGAL_RE2,
    code_word,
    code_words_array,
    local_naive,
    xml_clean,
    xml_clean_array,
)
from pos_exports.reports.model import Column, Report, Section

MAX_SHEET_ROWS = 1_048_576
MAX_DATA_ROWS = MAX_SHEET_ROWS - 1  # below the header row
MAX_CELL_CHARS = 32_767
MAX_WIDTH = 60
FIT_ROWS = 200
XML_CHUNK_ROWS = 16_384  # rows turned into XML at once (bounds the text held in memory)
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
# A workbook of at most this many section rows is zipped from memory (see _PartInfo): about 600 bytes of sheet
# XML a row, so at most ~12 MB of parts, held twice (as text, then as bytes) while they are zipped.
IN_MEMORY_ROWS = 20_000
_EXCEL_EPOCH_DAYS = 25569  # 1970-01-01 as an Excel serial day (1900 date system)
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")


def render_xlsx(report: Report, path: Path) -> dict[str, int]:
    """Write the report as an XLSX workbook; returns the data rows written per section key."""
    wb = xlsxwriter.Workbook(str(path), WORKBOOK_OPTIONS)
    small = sum(s.row_count for s in report.sections) <= IN_MEMORY_ROWS
    if small:  # every sheet's rows stream to memory, not to a temporary file
        wb.worksheet_class = _MemoryRows
    try:
        created = report.generated_at
        if created.tzinfo is not None:
            created = created.astimezone(dt.UTC).replace(tzinfo=None)
        wb.set_properties({"title": xml_clean(report.title), "created": created})
        formats = _Formats(wb)
        names = _SheetNames()
        summary = wb.add_worksheet(names.claim("Summary"))
        truncated: list[str] = []
        _page_setup(summary, report, "Summary", header_row=False)
        next_row = _write_summary(summary, report, formats, truncated)
        rows: dict[str, int] = {}
        placements: list[tuple[str, int, list[str]]] = []
        for section in report.sections:
            count, sheets = _write_section(wb, section, formats, names, truncated, report)
            rows[section.key] = count
            placements.append((section.title, count, sheets))
        _write_placements(summary, next_row, placements, truncated, formats)
        wb.in_memory = small or sum(rows.values()) <= IN_MEMORY_ROWS
    finally:
        wb.close()
    return rows


class _PartInfo(zipfile.ZipInfo):
    """A workbook part's zip entry in XlsxWriter's in-memory packaging, made as its file packaging makes it (from
    its temporary file: mode 0600, time stamp 1980-01-31), so the workbook's bytes are the same either way.

    Why: the rows of a section stream to a temporary file (constant memory), but packaging the ~10 small
    parts (styles, sheet XML, properties ...) through temporary files too (create, write, time-stamp, read
    back, delete each) cost a daily export about 7 % of its CPU. A workbook of up to `IN_MEMORY_ROWS` rows
    is therefore packaged in memory (`render_xlsx` sets `in_memory` before `close`; set at creation it would
    turn constant memory off), a larger one on disk as before."""

    def __init__(self, filename: str = "NoName", date_time: tuple = (1980, 1, 1, 0, 0, 0)) -> None:
        super().__init__(filename, (1980, 1, 31, 0, 0, 0))
        self.external_attr = (stat.S_IFREG | 0o600) << 16


# XlsxWriter makes its in-memory entries with the ZipInfo of its module (one line, where only it looks).
xlsxwriter.workbook.ZipInfo = _PartInfo


class _MemoryRows(Worksheet):
    """A constant-memory worksheet whose row stream is an in-memory buffer instead of a temporary file: the
    same XML (rows are written to it exactly as to the file), without creating, reading back and deleting a
    file per sheet (a small workbook's nine sheets cost more in those than in their rows). For the sheets of
    a workbook of at most `IN_MEMORY_ROWS` rows, as its in-memory packaging."""

    def _initialize(self, init_data) -> None:
        super()._initialize({**init_data, "constant_memory": False})  # no temporary file
        self.constant_memory = True  # rows still go out row by row, as XlsxWriter's own stream writes them
        self.row_data_fh = self.fh = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")

    def _write_optimized_sheet_data(self) -> None:
        if self.dim_rowmin is None:
            self._xml_empty_tag("sheetData")
            return
        self._xml_start_tag("sheetData")
        self.row_data_fh.flush()
        self.fh.write(self.row_data_fh.buffer.getvalue().decode("utf-8"))
        self._xml_end_tag("sheetData")


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
        self.wrap = wb.add_format({"valign": "top", "text_wrap": True})
        self.bold_wrap = wb.add_format({"bold": True, "valign": "top", "text_wrap": True})


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
            name = _fit_words(base, 31 - len(suffix)) + suffix
            if name.lower() not in self.used:
                self.used.add(name.lower())
                return name
            n += 1


def _fit_words(title: str, limit: int) -> str:
    """`title` in at most `limit` characters, cut at a word boundary, never mid-word: a trailing remark in
    parentheses goes first ("Top products (by net revenue)" -> "Top products"), then the last words."""
    if len(title) <= limit:
        return title
    title = re.sub(r"\s*\([^()]*\)$", "", title).strip() or title
    if len(title) <= limit:
        return title
    cut = title[:limit]
    if not title[limit].isspace() and " " in cut:  # the cut falls inside a word: drop that word
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" -,;.") or title[:limit]


def _cell_text(value: str) -> str:
    return xml_clean(value)  # a string cell, never evaluated: no apostrophe


SUMMARY_WIDTHS = (34, 60)  # label, value (characters)
LINE_HEIGHT = 15  # points per line of 11-point text


def _page_setup(ws: Worksheet, report: Report, sheet: str, *, header_row: bool) -> None:
    """Landscape, fitted to the page width (as many pages down as needed), a print title on every page
    (business, report and sheet, period) and "Page X of Y"; a section's header row repeats on each page."""
    ws.set_landscape()
    ws.fit_to_pages(1, 0)
    ws.set_header(
        f"&L{_header_text(report.business_name, 60)}&C{_header_text(f'{report.title}: {sheet}', 80)}"
        f"&R{_header_text(report.period_label, 40)}"
    )
    ws.set_footer("&RPage &P of &N")
    if header_row:
        ws.repeat_rows(0)


def _header_text(text: str, limit: int) -> str:
    """Text for a page header: `&` doubled (Excel's escape there), cut to `limit` characters with `…` (Excel
    refuses page headers over 255 characters)."""
    text = " ".join(xml_clean(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("&", "&&")


class _SummaryWriter:
    """Rows of the Summary sheet: label and value side by side, each wrapped in its own column (a long one
    makes the row taller instead of running over its neighbour); no cell silently cut at Excel's limit."""

    def __init__(self, ws: Worksheet, formats: _Formats, truncated: list[str]) -> None:
        self.ws, self.formats, self.truncated = ws, formats, truncated

    def text(self, row: int, col: int, value: str, fmt=None) -> None:
        value = _cell_text(value)
        if _utf16_len(value) > MAX_CELL_CHARS:
            value = fit_cell_text(value)
            self.truncated.append(f"'Summary'!{_col_letter(col)}{row + 1}")
        self.ws.write_string(row, col, value, fmt if fmt is not None else self.formats.wrap)

    def pair(self, row: int, label: str, value: str, bold: bool = False) -> None:
        self.height(row, label, value)
        self.text(row, 0, label, self.formats.bold_wrap if bold else None)
        self.text(row, 1, value)

    def height(self, row: int, *texts: str) -> None:
        """An explicit height for a row whose text wraps (Excel and LibreOffice then show every line)."""
        lines = max((_wrapped_lines(t, w) for t, w in zip(texts, SUMMARY_WIDTHS, strict=False)), default=1)
        if lines > 1:
            self.ws.set_row(row, min(LINE_HEIGHT * lines, 409))  # 409 points: Excel's tallest row


def _wrapped_lines(text: str, width: int) -> int:
    """The lines a text takes wrapped in a column `width` characters wide (at most Excel's row can show)."""
    total = 0
    for line in text[:20_000].splitlines() or [""]:
        total += max(1, -(-int(_text_width(line)) // max(width - 1, 1)))
        if total > 27:
            return 28
    return total


def _write_summary(ws: Worksheet, report: Report, formats: _Formats, truncated: list[str]) -> int:
    tz = report.timezone
    ws.set_column(0, 0, SUMMARY_WIDTHS[0])
    ws.set_column(1, 1, SUMMARY_WIDTHS[1])
    out = _SummaryWriter(ws, formats, truncated)
    out.text(0, 0, report.title, formats.title)
    head = [
        ("Business", report.business_name),
        ("Period", report.period_label),
        ("Time zone", tz),  # once, on its own row (as in the CSV summary)
        ("Currency", report.currency),
    ]
    row = 2
    for label, value in head:
        out.pair(row, label, str(value), bold=True)
        row += 1
    if report.filters:
        row += 1
        ws.write_string(row, 0, "Filters", formats.bold)
        row += 1
        for name, value in report.filters.items():
            shown = ", ".join(map(str, value)) if isinstance(value, list | tuple | set) else str(value)
            if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
                out.text(row, 0, str(name))
                ws.write_number(row, 1, float(value))  # a number stays a number (min_quantity = -5)
            else:
                out.pair(row, str(name), shown)
            row += 1
    if report.notes:
        row += 1
        ws.write_string(row, 0, "Notes", formats.bold)
        row += 1
        for note in report.notes:  # across both columns, wrapped
            lines = _wrapped_lines(note, sum(SUMMARY_WIDTHS))
            if lines > 1:
                ws.set_row(row, min(LINE_HEIGHT * lines, 409))
            note = _cell_text(note)
            if _utf16_len(note) > MAX_CELL_CHARS:
                note = fit_cell_text(note)
                truncated.append(f"'Summary'!A{row + 1}")
            ws.merge_range(row, 0, row, 1, note, formats.wrap)
            row += 1
    row += 1
    ws.write_string(row, 0, "Figure", formats.header)
    ws.write_string(row, 1, "Value", formats.header)
    row += 1
    for fig in report.summary:
        if isinstance(fig.value, str) and not isinstance(fig.value, bool):
            shown = code_word(fig.value) if fig.kind == "code" else fig.value
            out.pair(row, fig.label, shown)
        else:
            out.height(row, fig.label)
            out.text(row, 0, fig.label)
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
            ws.write_string(row, 0, _cell_text(title)[:MAX_CELL_CHARS])
            ws.write_string(row, 1, f"{count:,} rows on " + ", ".join(f"'{s}'" for s in sheets))
            row += 1
    if truncated:
        row += 1
        shown = ", ".join(truncated[:20]) + (" ..." if len(truncated) > 20 else "")
        note = (
            f"{len(truncated):,} text cell(s) longer than Excel's {MAX_CELL_CHARS:,}-character limit "
            f"were cut (marked '[truncated ...]'); the full text is in the CSV: {shown}"
        )
        ws.set_row(row, LINE_HEIGHT * _wrapped_lines(note, sum(SUMMARY_WIDTHS)))
        ws.merge_range(row, 0, row, 1, note, formats.wrap)


# --- sections -------------------------------------------------------------------------------------------


def _write_section(
    wb: xlsxwriter.Workbook,
    section: Section,
    formats: _Formats,
    names: _SheetNames,
    truncated: list[str],
    report: Report,
) -> tuple[int, list[str]]:
    columns = section.columns
    headers = [xml_clean(c.header) for c in columns]
    sheets: list[str] = []
    ws: Worksheet | None = None
    widths: list[float] | None = None
    row = MAX_SHEET_ROWS  # "full": the first chunk opens the first sheet
    total = 0
    xf = [_column_xf(formats, c.kind) for c in columns]

    def new_sheet() -> Worksheet:
        name = names.claim(section.sheet or section.title, len(sheets) + 1)
        sheets.append(name)
        sheet = wb.add_worksheet(name)
        _page_setup(sheet, report, name, header_row=True)
        for i, width in enumerate(widths or []):
            sheet.set_column(i, i, width, formats.kind.get(columns[i].kind) if columns[i].kind != "int" else None)
        sheet.freeze_panes(1, 0)
        for i, header in enumerate(headers):
            sheet.write_string(0, i, header, formats.header)
        return sheet

    codes = [i for i, c in enumerate(columns) if c.kind == "code"]
    for batch in _nonempty(section.batches()):
        # a small batch is taken in Python (`_small_cells`): its cells, made once for its widths and its rows
        small = batch.num_rows <= PYTHON_ROWS
        cells = _small_cells(batch, columns, True, xf) if small else None
        if not small:
            batch = _with_words(batch, columns, codes)
        start = 0
        while start < batch.num_rows:
            if row >= MAX_SHEET_ROWS:
                if ws is not None:
                    ws.autofilter(0, 0, row - 1, len(columns) - 1)
                if widths is None and cells is not None:
                    widths = _fit_widths(headers, columns, [c.widths for c in cells])
                if widths is None:
                    widths = fit_widths(headers, columns, batch.slice(0, FIT_ROWS), codes=small)
                ws = new_sheet()
                row = 1
            take = min(batch.num_rows - start, MAX_SHEET_ROWS - row)
            for sub in range(start, start + take, XML_CHUNK_ROWS):
                chunk = batch.slice(sub, min(XML_CHUNK_ROWS, start + take - sub))
                whole = cells if chunk.num_rows == batch.num_rows else None
                _write_chunk(ws, chunk, columns, row, xf, sheets, truncated, codes=small, cells=whole)
                row += chunk.num_rows
            start += take
            total += take
    if ws is None:  # no rows: the header alone
        widths = _fit_widths(headers, columns, [[] for _ in columns])
        ws = new_sheet()
        row = 1
    ws.autofilter(0, 0, max(row - 1, 0), max(len(columns) - 1, 0))
    return total, sheets


def _with_words(batch: pa.RecordBatch, columns: tuple[Column, ...], codes: list[int]) -> pa.RecordBatch:
    """The batch with its code columns as words (`mobile_money` -> `Mobile money`; the CSV keeps the codes)."""
    for i in codes:
        at = batch.schema.get_field_index(columns[i].name)
        batch = batch.set_column(at, columns[i].name, code_words_array(batch.column(at)))
    return batch


def _column_xf(formats: _Formats, kind: str) -> int | None:
    """The style index XlsxWriter gives a cell of a column with this kind's column format (none for int/text)."""
    fmt = formats.kind.get(kind) if kind in NUMBER_FORMATS else None
    return None if fmt is None else fmt._get_xf_index()


def _write_chunk(
    ws: Worksheet,
    chunk: pa.RecordBatch,
    columns: tuple[Column, ...],
    first_row: int,
    xf: list[int | None],
    sheets: list[str],
    truncated: list[str],
    codes: bool = False,
    cells: list[_Cells] | None = None,
) -> None:
    """Rows `first_row`.. of the sheet: as bulk row XML, or cell by cell where the fast path does not apply
    (`codes`: the chunk's code columns still hold codes; `cells`: the chunk's `_small_cells`, made already)."""
    xml = None
    if cells is not None:
        xml = _rows_of(cells, first_row)
    elif chunk.num_rows <= PYTHON_ROWS:
        xml = small_rows_xml(chunk, columns, first_row, xf, codes)
    if xml is None:
        if codes:
            chunk = _with_words(chunk, columns, [i for i, c in enumerate(columns) if c.kind == "code"])
        xml = rows_xml(chunk, columns, first_row, xf)
    if xml is None:  # long text (cut and reported per cell) or values only XlsxWriter's own checks handle
        lists = _column_lists(chunk, columns, sheets, first_row, truncated)
        write_row = ws.write_row
        for i, values in enumerate(zip(*lists, strict=True)):
            write_row(first_row + i, 0, values)
        return
    text, last = xml
    if last is None:  # every cell blank: XlsxWriter writes nothing for such rows either
        return
    # Hand XlsxWriter's constant-memory row stream the rows as it would write them itself: extend the sheet's
    # dimensions to the last non-blank row (before the next step, which makes it refuse rows behind it), flush
    # the row it holds (the header) and mark these rows as written (later writes to them are refused).
    ws._check_dimensions(last, 0)
    ws._write_single_row(first_row + chunk.num_rows - 1)
    ws.fh.flush()  # the row stream is a UTF-8 text file: its pending text first, then our UTF-8 bytes
    ws.fh.buffer.write(text)


# Characters Python's `\s` (XlsxWriter's whitespace-preserve test) matches, in RE2 syntax.
_SPACE = (
    "[\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}"
    "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]"
)
_PRESERVE_RE2 = f"^{_SPACE}|{_SPACE}$"
_ESCAPE_RE2 = "(_x[0-9a-fA-F]{4}_)"  # a literal _xHHHH_ is escaped so Excel does not decode it
_NEEDS_ESCAPE_RE2 = "[&<>\\r]|_x[0-9a-fA-F]{4}_"
# Any of: a character XML forbids (`xml_clean`), one XlsxWriter escapes, edge whitespace, an empty text.
_SPECIAL_RE2 = f"{XML_ILLEGAL_RE2}|{_NEEDS_ESCAPE_RE2}|{_PRESERVE_RE2}|^$"
_MAX_EXACT = 1e15  # integers and 2-decimal money below this print the same as XlsxWriter's `{:.16G}`


def rows_xml(
    chunk: pa.RecordBatch, columns: tuple[Column, ...], first_row: int, xf: list[int | None]
) -> tuple[memoryview, int | None] | None:
    """The chunk's `<row>` elements as XlsxWriter's constant-memory writer would emit them, built column-wise
    with pyarrow.compute, and the 0-based index of the last row holding a cell (None: all blank).

    Same cells as `write_row` of `xlsx_values`: numbers as `<v>` (None: no cell), strings as inline strings
    (empty or None: no cell) with XlsxWriter's escapes (`_xHHHH_`, CR, `& < >`, `xml:space` for edge
    whitespace), each cell styled with its column format. None when a value needs XlsxWriter's per-cell
    handling: text too long for a cell, a non-finite float, a number too large to print the same way.
    """
    n = chunk.num_rows
    rownum = pc.cast(pa.array(np.arange(first_row + 1, first_row + n + 1, dtype=np.int64)), pa.string())
    parts: list = ['<row r="', rownum, '">']  # one join builds the rows: constants, row numbers, values
    cells: list[pa.Array] = []  # the columns with blank cells (a null is no cell): joined on their own
    for j, column in enumerate(columns):
        cell = _cell_xml(chunk.column(column.name), column.kind, _col_letter(j), rownum, xf[j])
        if cell is None:
            return None
        if cell[-2].null_count == 0:  # a value in every row: its parts join the row's
            parts += cell
        else:
            cells.append(pc.binary_join_element_wise(*cell, ""))
            parts.append(pc.fill_null(cells[-1], ""))
    if not columns:
        return memoryview(b""), None
    rows = pc.binary_join_element_wise(*_merged(parts), "</row>", "")
    if len(cells) < len(columns):  # a column with a cell in every row: no blank row
        return _joined(rows), first_row + n - 1
    filled = pc.is_valid(cells[0])
    for cell in cells[1:]:
        filled = pc.or_(filled, pc.is_valid(cell))
    if not pc.any(filled).as_py():
        return memoryview(b""), None
    if not pc.all(filled).as_py():
        rows = pc.filter(rows, filled)
    last = first_row + int(np.flatnonzero(filled.to_numpy(zero_copy_only=False))[-1])
    return _joined(rows), last


# --- small chunks: the same row XML from Python values ----------------------------------------------------------

# A batch of at most this many rows is built in Python (one or two Arrow calls a column instead of ~20, at ~20 us a
# call whatever the rows; measured: no gain from 200 to 2,000 rows, Python's ~0.3 us a cell catching up).
PYTHON_ROWS = FIT_ROWS
# Python's own form of `_SPECIAL_RE2` (a text needing removal, escapes or xml:space: left to the Arrow path).
_SPACE_PY = r"[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_PRESERVE_PY = re.compile(rf"\A{_SPACE_PY}|{_SPACE_PY}\Z")
_ESCAPE_PY = re.compile("(_x[0-9a-fA-F]{4}_)")
_NEEDS_ESCAPE_PY = re.compile("[&<>\r]|_x[0-9a-fA-F]{4}_")
_SPECIAL_PY = re.compile(
    rf"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]|[&<>\r]|_x[0-9a-fA-F]{{4}}_|\A{_SPACE_PY}|{_SPACE_PY}\Z"
)


class _Cells:
    """A column of a small chunk: each row's cell XML without its row number (None: no cell), and the values
    `_fit_widths` measures."""

    __slots__ = ("head", "texts", "widths")

    def __init__(self, head: str, texts: list, widths: list) -> None:
        self.head, self.texts, self.widths = head, texts, widths


def small_rows_xml(
    chunk: pa.RecordBatch, columns: tuple[Column, ...], first_row: int, xf: list[int | None], codes: bool = False
) -> tuple[memoryview, int | None] | None:
    """`rows_xml` of a small chunk, byte for byte, built from its Python values (one or two Arrow calls a column
    instead of ~20); None when a value is not one `_small_cells` takes (the caller uses `rows_xml`). `codes`: the
    code columns still hold codes (they become words here)."""
    cells = _small_cells(chunk, columns, codes, xf)
    return None if cells is None else _rows_of(cells, first_row)


def _rows_of(cells: list[_Cells], first_row: int) -> tuple[memoryview, int | None]:
    if not cells:
        return memoryview(b""), None
    out: list[str] = []
    last = None
    heads = [c.head for c in cells]
    for i, values in enumerate(zip(*(c.texts for c in cells), strict=True)):
        r = str(first_row + i + 1)
        row = "".join(f"{h}{r}{v}" for h, v in zip(heads, values, strict=True) if v is not None)
        if row:
            out.append(f'<row r="{r}">{row}</row>')
            last = first_row + i
    return memoryview("".join(out).encode()), last


def _small_cells(
    chunk: pa.RecordBatch,
    columns: tuple[Column, ...],
    codes: bool,
    xf: list[int | None] | None = None,
    fit: int = FIT_ROWS,
) -> list[_Cells] | None:
    """Each column's `_Cells` (`xf`: the columns' styles; None: only the widths matter; the widths of the first
    `fit` rows), or None when a value is one only the Arrow path (or XlsxWriter's per-cell writer) handles as
    `rows_xml` does."""
    out = []
    for j, column in enumerate(columns):
        style = "" if xf is None or xf[j] is None else f' s="{xf[j]}"'
        cells = _small_column(chunk.column(column.name), column.kind, style, _col_letter(j), codes, fit)
        if cells is None:
            return None
        out.append(cells)
    return out


def _float_text(value: float | None) -> str | None:
    """What `pc.cast(float64, string)` prints, where Python's `repr` prints the same digits the same way (Arrow
    changes to exponents outside 1e-6..1e10, Python outside 1e-4..1e16); None: let Arrow print it."""
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    if not 1e-4 <= abs(value) < 1e10:
        return None
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _small_column(arr: pa.Array, kind: str, style: str, letter: str, codes: bool, fit: int = FIT_ROWS) -> _Cells | None:
    """One column as `_cell_xml` and `_number_text` make it (the same kinds, types, texts and blank cells)."""
    t = arr.type
    number = f'"{style}><v>'
    if kind == "money" and pa.types.is_decimal(t):
        made = _small_decimals(arr, number, fit)
    elif kind in ("money", "percent") or (kind == "int" and pa.types.is_floating(t)):
        made = _small_floats(arr, kind, number, fit)
    elif kind == "int" and pa.types.is_integer(t):
        made = _small_ints(arr, number, fit)
    elif kind in ("datetime", "date") and (pa.types.is_timestamp(t) or (kind == "date" and pa.types.is_date(t))):
        made = _small_serials(arr, kind, number)
    else:
        made = _small_texts(arr, kind, f'"{style} t="inlineStr"><is>', codes, fit)
    return None if made is None else _Cells(f'<c r="{letter}', *made)


def _small_decimals(arr: pa.Array, number: str, fit: int) -> tuple[list, list] | None:
    values = pc.cast(arr, pa.string()).to_pylist()
    present = [v for v in values if v is not None]
    if not present:
        return values, []
    if max(map(len, present)) >= 16:  # 15 integer digits or more: near `_MAX_EXACT`, as `_below` judges it
        return None
    if arr.type.scale:  # 1234.50 -> 1234.5, 0.00 -> 0 (as the regex of `_number_text`)
        texts = [None if v is None else f"{number}{v.rstrip('0').rstrip('.')}</v></c>" for v in values]
    else:
        texts = [None if v is None else f"{number}{v}</v></c>" for v in values]
    floats = [float(v) for v in values[:fit] if v is not None]
    return texts, [min(floats), max(floats)] if floats else []  # the others' widths lie between (`_width_values`)


def _small_floats(arr: pa.Array, kind: str, number: str, fit: int) -> tuple[list, list] | None:
    values = (arr if pa.types.is_float64(arr.type) else pc.cast(arr, pa.float64())).to_pylist()
    texts: list[str | None] = []
    widths: list = []
    for i, v in enumerate(values):
        if v is None or (kind == "percent" and not math.isfinite(v)):
            texts.append(None)  # percent: a non-finite ratio is a blank cell
            continue
        text = _float_text(v) if math.isfinite(v) else None  # money/int: XlsxWriter refuses NaN/inf
        if text is None:
            return None
        if i < fit:
            widths.append(v)
        texts.append(f"{number}{text}</v></c>")
    if kind == "int":
        return texts, widths  # str() of floats does not grow with the value
    return texts, [min(widths), max(widths)] if widths else []


def _small_ints(arr: pa.Array, number: str, fit: int) -> tuple[list, list] | None:
    values = arr.to_pylist()
    present = [v for v in values if v is not None]
    if not present:
        return values, []
    low, high = min(present), max(present)
    if abs(low) >= _MAX_EXACT or abs(high) >= _MAX_EXACT:
        return None
    sample = [v for v in values[:fit] if v is not None]
    return [None if v is None else f"{number}{v}</v></c>" for v in values], [min(sample), max(sample)] if sample else []


def _small_serials(arr: pa.Array, kind: str, number: str) -> tuple[list, list] | None:
    texts: list[str | None] = []
    for v in _excel_serials(arr, kind).to_pylist():  # widths: fixed for these kinds
        text = None if v is None else (str(v) if kind == "date" else _float_text(v))
        if v is not None and text is None:
            return None
        texts.append(None if text is None else f"{number}{text}</v></c>")
    return texts, []


def _small_texts(arr: pa.Array, kind: str, inline: str, codes: bool, fit: int) -> tuple[list, list] | None:
    t = arr.type
    values = (arr if pa.types.is_string(t) or pa.types.is_large_string(t) else pc.cast(arr, pa.string())).to_pylist()
    if kind == "code" and codes:
        values = [v if not v else _word(v) for v in values]
    texts: list[str | None] = []
    others: list[str] = []  # measured one by one; one-line printable ASCII only by its length (`_width_values`)
    longest = 0
    for i, v in enumerate(values):
        if v and len(v) >= MAX_CELL_CHARS // 4 and len(v.encode()) >= MAX_CELL_CHARS:
            return None  # cut and reported cell by cell (`_column_lists`)
        t_open = "<t>"
        if v and _SPECIAL_PY.search(v):  # as the Arrow path's second branch in `_cell_xml`, value by value
            v = xml_clean(v)
        if not v:  # None or "": a blank cell
            texts.append(None)
            continue
        if i < fit:
            if v.isascii() and v.isprintable():
                longest = max(longest, len(v))
            else:
                others.append(v)
        if _NEEDS_ESCAPE_PY.search(v):
            v = _ESCAPE_PY.sub(r"_x005F\1", v).replace("\r", "_x000D_")
            v = v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if _PRESERVE_PY.search(v):
            t_open = '<t xml:space="preserve">'
        texts.append(f"{inline}{t_open}{v}{_T_END}")
    return texts, ["x" * min(longest, 400), *others]


_WORDS: dict[str, str] = {}


def _word(code: str) -> str:
    word = _WORDS.get(code)
    if word is None:
        word = _WORDS[code] = code_word(code)
    return word


def _merged(parts: list) -> list:
    """The parts with each run of constant strings as one string."""
    out: list = []
    for part in parts:
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        else:
            out.append(part)
    return out


def _cell_xml(arr: pa.Array, kind: str, letter: str, rownum: pa.Array, xf: int | None) -> list | None:
    """A column's cells as the parts of a join (constants and arrays; the values next to last, a null where
    the cell is blank); None when a value needs XlsxWriter's per-cell handling."""
    text = _number_text(arr, kind)
    style = "" if xf is None else f' s="{xf}"'
    if text is not None:
        if text is _FALLBACK:
            return None
        return [f'<c r="{letter}', rownum, f'"{style}><v>', text, "</v></c>"]
    if _has_long(arr):
        return None
    strings = arr if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) else pc.cast(arr, pa.string())
    if not pa.types.is_string(strings.type):  # large strings: a chunk's cells are < 32,767 chars each
        strings = pc.cast(strings, pa.string())
    head = f'<c r="{letter}'
    if not len(strings) or not pc.any(pc.match_substring_regex(strings, _SPECIAL_RE2)).as_py():
        # the usual case, found in one scan: nothing to remove, escape or preserve, no empty text
        return [head, rownum, f'"{style} t="inlineStr"><is><t>', strings, _T_END]
    strings = xml_clean_array(strings)
    strings = pc.if_else(pc.equal(strings, ""), pa.scalar(None, pa.string()), strings)  # "" is a blank cell
    if pc.any(pc.match_substring_regex(strings, _NEEDS_ESCAPE_RE2)).as_py():
        strings = pc.replace_substring_regex(strings, _ESCAPE_RE2, "_x005F\\1")
        strings = pc.replace_substring(strings, "\r", "_x000D_")  # the one control character xml_clean keeps
        for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
            strings = pc.replace_substring(strings, raw, escaped)
    preserve = pc.fill_null(pc.match_substring_regex(strings, _PRESERVE_RE2), False)
    t_open = pc.if_else(preserve, '<t xml:space="preserve">', "<t>")
    return [head, rownum, f'"{style} t="inlineStr"><is>', t_open, strings, _T_END]


_T_END = "</t></is></c>"
_FALLBACK = pa.array([], pa.string())


def _number_text(arr: pa.Array, kind: str) -> pa.Array | None:
    """A numeric column as the text of its `<v>` values (null: no cell); None for a text column;
    `_FALLBACK` when a value must go through XlsxWriter's own number writer."""
    t = arr.type
    if kind == "money" and pa.types.is_decimal(t):
        if not _below(arr, _MAX_EXACT):
            return _FALLBACK
        text = pc.cast(arr, pa.string())
        if t.scale == 0:
            return text
        # 1234.50 -> 1234.5, 0.00 -> 0: what `{float(1234.50):.16G}` prints
        text = pc.replace_substring_regex(text, "\\.?0+$", "")
        return pc.if_else(pc.equal(text, ""), "0", text)
    if kind in ("money", "percent") or (kind == "int" and pa.types.is_floating(t)):
        values = pc.cast(arr, pa.float64())
        if kind == "percent":
            values = pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))
        elif not pc.all(pc.fill_null(pc.is_finite(values), True)).as_py():
            return _FALLBACK  # XlsxWriter refuses NaN/inf
        return pc.cast(values, pa.string())  # the shortest text that reads back as the same float
    if kind == "int" and pa.types.is_integer(t):
        return pc.cast(arr, pa.string()) if _below(arr, _MAX_EXACT) else _FALLBACK
    if kind in ("datetime", "date") and (pa.types.is_timestamp(t) or (kind == "date" and pa.types.is_date(t))):
        return pc.cast(_excel_serials(arr, kind), pa.string())
    return None


def _below(arr: pa.Array, limit: float) -> bool:
    bounds = pc.min_max(arr)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    return low is None or (abs(float(low)) < limit and abs(float(high)) < limit)


def _joined(rows: pa.Array) -> memoryview:
    """The concatenated UTF-8 of a string array, without a copy: its data buffer between the first and last
    offsets."""
    rows = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset : rows.offset + len(rows) + 1]
    return memoryview(rows.buffers()[2])[int(offsets[0]) : int(offsets[-1])]


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
        if c.kind in ("text", "json", "code") and _has_long(batch.column(c.name)):
            for i, value in enumerate(values):
                if value is not None and _utf16_len(value) > MAX_CELL_CHARS:
                    values[i] = fit_cell_text(value)
                    truncated.append(f"'{sheets[-1] if sheets else ''}'!{_col_letter(j)}{first_row + i + 1}")
        out.append(values)
    return out


def _has_long(arr: pa.Array) -> bool:
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return False
    if not len(arr):
        return False
    if pa.types.is_string(arr.type) and _data_bytes(arr) < MAX_CELL_CHARS:  # all the text is shorter: no call
        return False
    lengths = pc.binary_length(arr)  # UTF-8 bytes >= UTF-16 units, a cheap pre-filter
    return (pc.max(lengths).as_py() or 0) >= MAX_CELL_CHARS  # +1 for an apostrophe


def _data_bytes(arr: pa.Array) -> int:
    """The UTF-8 bytes of all the values of a string array together (from its offsets)."""
    offsets = arr.buffers()[1]
    if offsets is None:
        return 0
    ends = np.frombuffer(offsets, dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    return int(ends[-1] - ends[0])


def xlsx_values(arr: pa.Array, kind: str) -> list:
    """A column of a batch as the Python values to write (numbers, Excel serials, clean strings, None)."""
    t = arr.type
    if kind in ("money", "percent"):
        return _floats(arr, kind).to_pylist()
    if kind == "int":
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            return arr.to_pylist()
        return _strings(pc.cast(arr, pa.string()))
    if (kind == "datetime" and pa.types.is_timestamp(t)) or (
        kind == "date" and (pa.types.is_date(t) or pa.types.is_timestamp(t))
    ):
        return _excel_serials(arr, kind).to_pylist()
    return _strings(arr)


def _floats(arr: pa.Array, kind: str) -> pa.Array:
    """Money (a decimal via its exact text: the float nearest to it) or percent (non-finite: null) as float64."""
    if kind == "money":
        if pa.types.is_decimal(arr.type):
            return pc.cast(pc.cast(arr, pa.string()), pa.float64())
        return pc.cast(arr, pa.float64())
    arr = pc.cast(arr, pa.float64())
    return pc.if_else(pc.is_finite(arr), arr, pa.scalar(None, pa.float64()))


def _excel_serials(arr: pa.Array, kind: str) -> pa.Array:
    """Business-local timestamps (datetime: fractional days, whole seconds) or dates (int days) as Excel
    serial numbers."""
    if pa.types.is_timestamp(arr.type) and arr.type.tz is not None:
        arr = pc.local_timestamp(arr)
    if kind == "datetime":
        seconds = pc.cast(pc.cast(arr, pa.timestamp("s"), safe=False), pa.int64())
        return pc.add(pc.divide(seconds, 86400.0), float(_EXCEL_EPOCH_DAYS))
    days = pc.cast(pc.cast(arr, pa.date32()), pa.int32())
    return pc.add(pc.cast(days, pa.int64()), _EXCEL_EPOCH_DAYS)


def _strings(arr: pa.Array) -> list:
    return _string_array(arr).to_pylist()


def _string_array(arr: pa.Array) -> pa.Array:
    """A column as the text cells hold: XML-safe, otherwise unaltered (string cells are never evaluated)."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return xml_clean_array(arr)


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


# Characters str.splitlines() breaks at: a string without them (and ASCII) is one line as wide as it is long.
_LINE_BREAKS_RE2 = "[\\n\\r\\x0b\\x0c\\x1c-\\x1e\\x{85}\\x{2028}\\x{2029}]"
# A value that is not one-line ASCII XML carries as it is (non-ASCII, a line break, a character XML forbids).
_NOT_SIMPLE_RE2 = f"[^\\x00-\\x7f]|{_LINE_BREAKS_RE2}|{XML_ILLEGAL_RE2}"


def fit_widths(
    headers: list[str], columns: tuple[Column, ...], sample: pa.RecordBatch, codes: bool = False
) -> list[float]:
    """`_fit_widths` of the sample's values, computed from the few values that bound the others' widths
    (Arrow minima/maxima), not from every cell in Python: the same widths (`codes`: the sample's code columns
    still hold codes, not words)."""
    if codes:
        sample = _with_words(sample, columns, [i for i, c in enumerate(columns) if c.kind == "code"])
    return _fit_widths(headers, columns, [_width_values(sample.column(c.name), c.kind) for c in columns])


def _width_values(arr: pa.Array, kind: str) -> list:
    """Values of a column whose shown widths bound all the others': formatted numbers grow with |value| on
    each side of zero, so the minimum and maximum; for text, the longest one-line ASCII value (as x's) and
    every other value as it is."""
    if kind in _FIXED_WIDTHS or not len(arr):
        return []
    t = arr.type
    if kind in ("money", "percent") or (kind == "int" and pa.types.is_integer(t)):
        exact = kind == "int" or (kind == "money" and pa.types.is_decimal(t))  # bounds of the values themselves
        bounds = pc.min_max(arr if exact else _floats(arr, kind))
        values = [v for v in (bounds["min"].as_py(), bounds["max"].as_py()) if v is not None]
        return [float(v) for v in values] if kind == "money" else values  # float(decimal): as `_floats` reads it
    if kind == "int" and pa.types.is_floating(t):
        return arr.to_pylist()  # str() of floats does not grow with the value
    plain = arr if pa.types.is_string(t) or pa.types.is_large_string(t) else pc.cast(arr, pa.string())
    if not pc.any(pc.match_substring_regex(plain, _NOT_SIMPLE_RE2)).as_py():  # the usual case, in one scan
        return ["x" * min(pc.max(pc.binary_length(plain)).as_py() or 0, 400)]
    strings = _string_array(arr)
    simple = pc.fill_null(
        pc.and_(pc.string_is_ascii(strings), pc.invert(pc.match_substring_regex(strings, _LINE_BREAKS_RE2))), False
    )
    longest = pc.max(pc.utf8_length(pc.filter(strings, simple))).as_py() or 0
    others = pc.filter(strings, pc.invert(simple)).to_pylist()
    return ["x" * min(longest, 400), *(v for v in others if v is not None)]


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
