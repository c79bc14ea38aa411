"""PDF: a printable, landscape A4 report (reportlab) of the summary and the first rows of each section.

Layout: title, business, period and time zone, currency, filters, the summary figures in a grid, notes, the
chart when there is one, then each section as a table (dark blue repeated header row, alternating row
shading) of `section.pdf_limit` rows (all of a short table, else the first `pdf_rows`) in the section's PDF
order (`pdf_batches`: what matters first), followed by "showing N of M rows (order); the full data is in the
XLSX/CSV" when the section has more. Only those rows are read, so the time does not grow with the section's
size. A section shows `pdf_columns` (or its first `MAX_COLUMNS`) and names the others. Columns are at least
as wide as their longest word; the type shrinks (from 8 pt with the column count, down to 5.5 pt) before a
word is broken; long text is cut with "…" after a whole word. A table starts on a new page unless its
heading, header row and `MIN_START_ROWS` rows fit; each page's footer says "Page X of Y" (`_NumberedCanvas`).
No "generated" time is shown: the document date is the end of the period, so that files are deterministic.

Scripts: the package ships DejaVu Sans (Latin, Greek, Cyrillic, Arabic) and Droid Sans Fallback
(Chinese, Japanese) as TrueType files (`fonts/`, with their licences); every run of characters is set
in the first font that has its glyphs. Table cells whose text is in one font are plain strings that the
table draws (broken into lines here, at spaces, when they are wider than their column): far cheaper than a
Paragraph, which is kept for text that mixes fonts. Arabic is shaped (`arabic_reshaper`) and put in visual order
(`python-bidi`) first, since reportlab does neither. User text is XML-escaped before it goes into
Paragraph markup, so `<b>x</b>` prints literally.

Determinism: the document is written in reportlab's invariant mode with the creation date fixed to
`report.generated_at`, so the same report gives identical bytes.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import pyarrow as pa
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, Group, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import CondPageBreak, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from pos_exports.render.text import code_word, format_money, format_percent, local_naive, xml_clean
from pos_exports.reports.model import Column, Figure, Report, Section

FONT_DIR = Path(__file__).resolve().parent / "fonts"
REGULAR = "DejaVuSans"
BOLD = "DejaVuSans-Bold"
CJK = "DroidSansFallback"
_FONT_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf", CJK: "DroidSansFallbackFull.ttf"}

HEADER_BLUE = colors.HexColor("#2c3e50")
STRIPE = colors.HexColor("#eef1f4")
GREY = colors.HexColor("#6b7785")
PAGE = landscape(A4)
MARGIN = 12 * mm
FRAME_PAD = 6  # reportlab's frame pads the story 6 pt on each side, inside the margins
WIDTH = PAGE[0] - 2 * MARGIN - 2 * FRAME_PAD  # the story's width (a table as wide as WIDTH fits the frame)
MAX_COLUMNS = 16
MAX_CELL_CHARS = 160  # PDF cells are clipped beyond this (the XLSX/CSV hold the full text)
MIN_SIZE = 5.5  # the smallest table type (pt) tried before words are broken
WORD_CAP = WIDTH * 0.25  # a word wider than this (a long URL, a token) is broken rather than widen its column
FRAME_HEIGHT = PAGE[1] - 2 * MARGIN - 4 * mm - 2 * FRAME_PAD  # the story's room on a page
MIN_START_ROWS = 2  # a table starts on a new page unless its header and this many rows fit
NUMERIC_KINDS = ("int", "money", "percent", "datetime", "date")

_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")
_SPACES = re.compile(r"\s+")
BREAK_AFTER = "@/.-_:,;"  # where a word too wide for its column is broken, when one is near the end of a line


# --- fonts and text runs --------------------------------------------------------------------------------


@cache
def _fonts() -> dict[str, frozenset[int]]:
    """Register the shipped fonts once; the code points each one has a glyph for."""
    cmaps = {}
    registered = set(pdfmetrics.getRegisteredFontNames())
    for name, filename in _FONT_FILES.items():
        if name not in registered:
            pdfmetrics.registerFont(TTFont(name, str(FONT_DIR / filename)))
        cmaps[name] = frozenset(pdfmetrics.getFont(name).face.charToGlyph)
    pdfmetrics.registerFontFamily(REGULAR, normal=REGULAR, bold=BOLD, italic=REGULAR, boldItalic=BOLD)
    return cmaps


def shape(text: str) -> str:
    """Clean text for the PDF: XML-illegal characters removed; Arabic shaped and in visual order."""
    text = xml_clean(text)
    if _ARABIC.search(text):
        import arabic_reshaper
        from bidi.algorithm import get_display

        text = get_display(arabic_reshaper.reshape(text))
    return text


def runs(text: str, base: str = REGULAR) -> list[tuple[str, str]]:
    """Split (already shaped) text into (font, characters) runs, each in the first font with the glyphs:
    the base font (DejaVu Sans or its bold), then DejaVu Sans, then Droid Sans Fallback."""
    cmaps = _fonts()
    order = [base] + [f for f in (REGULAR, CJK) if f != base]
    out: list[tuple[str, str]] = []
    current = None
    buf: list[str] = []
    for ch in text:
        code = ord(ch)
        if current is not None and (ch.isspace() or code in cmaps[current]):
            buf.append(ch)
            continue
        font = next((f for f in order if code in cmaps[f]), base)
        if font != current:
            if buf:
                out.append((current, "".join(buf)))
            current, buf = font, []
        buf.append(ch)
    if buf:
        out.append((current or base, "".join(buf)))
    return out


def markup(text: str, base: str = REGULAR, shaped: bool = False) -> str:
    """Paragraph markup of user text (`shaped`: already in visual order): escaped, each run in a font that has
    its glyphs."""
    parts = []
    for font, chunk in runs(text if shaped else shape(text), base):
        escaped = escape(chunk)
        parts.append(escaped if font == base else f'<font name="{font}">{escaped}</font>')
    return "".join(parts)


def text_width(text: str, size: float, base: str = REGULAR) -> float:
    return measure(text, size, base)[1]


@lru_cache(maxsize=1 << 16)
def measure(text: str, size: float, base: str = REGULAR) -> tuple[str, float, bool]:
    """(shaped text, its width, whether it is all in `base`): cached per process, since names, products and
    statuses repeat from row to row and from business to business."""
    shaped = shape(text)
    if shaped.isascii():  # every printable ASCII character is in DejaVu Sans and its bold
        return shaped, pdfmetrics.stringWidth(shaped, base, size), True
    parts = runs(shaped, base)
    width = sum(pdfmetrics.stringWidth(chunk, font, size) for font, chunk in parts)
    return shaped, width, all(font == base for font, _ in parts)


def clip(text: str, limit: int = MAX_CELL_CHARS) -> str:
    """The text on one line, cut with "…" beyond `limit` characters: at a space when there is one in the second
    half, so that no word is shown in part."""
    text = _SPACES.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space >= limit // 2 else head).rstrip() + "…"


# --- styles ---------------------------------------------------------------------------------------------


@cache  # one style object per process: reportlab only reads it
def _style(name: str, size: float, *, bold: bool = False, color=colors.black, align=TA_LEFT, space=0.0):
    return ParagraphStyle(
        name,
        fontName=BOLD if bold else REGULAR,
        fontSize=size,
        leading=size * 1.25,
        textColor=color,
        alignment=align,
        spaceAfter=space,
    )


def _para(text: str, style: ParagraphStyle, shaped: bool = False) -> Paragraph:
    return Paragraph(markup(text, style.fontName, shaped), style)


# --- the document ---------------------------------------------------------------------------------------


def render_pdf(report: Report, path: Path) -> dict[str, int]:
    """Write the report as a PDF; returns the rows shown per section key."""
    _fonts()
    tz = report.timezone
    utc = report.generated_at
    utc = utc.astimezone(dt.UTC) if utc.tzinfo else utc
    pdf_date = utc.strftime("D:%Y%m%d%H%M%S+00'00'")

    title_style = _style("title", 18, bold=True, space=2)
    business_style = _style("business", 12, bold=True, color=HEADER_BLUE, space=4)
    meta_style = _style("meta", 9, color=GREY, space=2)
    h2 = _style("h2", 12, bold=True, color=HEADER_BLUE, space=4)
    body = _style("body", 9, space=2)
    note_style = _style("note", 8, color=GREY, space=2)

    story: list = [
        _para(report.title, title_style),
        _para(report.business_name, business_style),
        _para(f"Period: {report.period_label}   ·   Time zone: {tz}   ·   Currency: {report.currency}", meta_style),
    ]
    if report.filters:
        shown = visual_line([f"{k} = {_filter_text(v)}" for k, v in report.filters.items()], "; ")
        story.append(_para(f"Filters: {shown}", meta_style, shaped=True))
    story.append(Spacer(1, 4 * mm))
    if report.summary:
        story += [_para("Summary", h2), _figures_grid(report.summary, report), Spacer(1, 3 * mm)]
    for note in report.notes:
        story.append(_para(note, body))
    if report.chart is not None and report.chart.values:
        story += [Spacer(1, 2 * mm), KeepTogether([_para(report.chart.title, h2), _chart(report.chart)])]

    shown: dict[str, int] = {}
    for section in report.sections:
        story.append(Spacer(1, 5 * mm))
        flowables, count = _section(section, report, h2, note_style, body)
        story += flowables
        shown[section.key] = count

    footer = visual_line([report.title, clip(report.business_name, 100), report.period_label])

    def on_page(canvas, doc) -> None:
        canvas.setDateFormatter(lambda *_: pdf_date)
        canvas.saveState()
        canvas.setFillColor(GREY)
        _draw_shaped(canvas, MARGIN, 7 * mm, footer, 7)
        canvas.restoreState()

    doc = SimpleDocTemplate(
        str(path),
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm,
        title=xml_clean(f"{report.title} - {report.business_name} - {report.period_label}"),
        author=xml_clean(report.business_name),
        subject=xml_clean(report.title),
        creator="pos_exports",
        invariant=1,
    )
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page, canvasmaker=_NumberedCanvas)
    return shown


class _NumberedCanvas(Canvas):
    """A canvas that holds its pages until the end, so each can say "Page X of Y"."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._held: list[dict] = []

    def showPage(self) -> None:  # noqa: N802 (reportlab's name)
        self._held.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._held)
        for number, state in enumerate(self._held, 1):
            self.__dict__.update(state)
            self.saveState()
            self.setFillColor(GREY)
            self.setFont(REGULAR, 7)
            self.drawRightString(PAGE[0] - MARGIN, 7 * mm, f"Page {number} of {total}")
            self.restoreState()
            super().showPage()
        super().save()


def visual_line(parts: list[str], sep: str = " · ") -> str:
    """Parts of a left-to-right line (title, business name, period) each shaped and put in visual order on its
    own, then joined: bidi over the whole line would move the neighbouring digits and words into an Arabic name."""
    return sep.join(shape(part) for part in parts)


def _filter_text(value: object) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value)
    return str(value)


def _draw_shaped(canvas, x: float, y: float, text: str, size: float) -> None:
    """Draw already shaped text, each run in a font that has its glyphs."""
    for font, chunk in runs(text):
        canvas.setFont(font, size)
        canvas.drawString(x, y, chunk)
        x += pdfmetrics.stringWidth(chunk, font, size)


# --- summary and chart ----------------------------------------------------------------------------------


def figure_display(fig: Figure, report: Report) -> str:
    value = fig.value
    if value is None:
        return "—"
    if fig.kind == "money" and isinstance(value, Decimal | int | float):
        return format_money(value)
    if fig.kind == "percent" and isinstance(value, Decimal | int | float):
        return format_percent(value) or "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dt.datetime):
        return f"{local_naive(value, report.timezone):%Y-%m-%d %H:%M}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _figures_grid(figures: list[Figure], report: Report) -> Table:
    n = len(figures)
    per_row = 2 if n <= 2 else 3 if n in (3, 5, 6, 9) else 4
    label_style = _style("fig-label", 7.5, color=GREY)
    value_style = _style("fig-value", 11, bold=True)
    cells = []
    for fig in figures:
        label = f"{fig.label} ({report.currency})" if fig.kind == "money" else fig.label
        cells.append([_para(clip(label, 80), label_style), _para(clip(figure_display(fig, report), 80), value_style)])
    rows = [cells[i : i + per_row] for i in range(0, n, per_row)]
    if rows and len(rows[-1]) < per_row:
        rows[-1] = rows[-1] + [""] * (per_row - len(rows[-1]))
    table = Table(rows, colWidths=[WIDTH / per_row] * per_row, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f6f8fa")),
                ("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#c9d1d9")),
                ("INNERGRID", (0, 0), (-1, -1), 0.5, colors.white),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 4),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
            ]
        )
    )
    return table


def _chart(chart) -> Drawing:
    labels = [clip(shape(code_word(label) if chart.codes else label), 24) for label in chart.labels]
    values = [float(v) for v in chart.values]
    width, height = WIDTH * 0.75, 150
    drawing = Drawing(width, height + 10)
    bars = VerticalBarChart()
    bars.x, bars.y = 50, 35
    bars.width, bars.height = width - 70, height - 40
    bars.data = [values]
    bars.bars[0].fillColor = HEADER_BLUE
    bars.strokeColor = None
    bars.valueAxis.valueMin = min(0.0, min(values))
    bars.valueAxis.labels.fontName = REGULAR
    bars.valueAxis.labels.fontSize = 7
    bars.valueAxis.labelTextFormat = lambda v: f"{v:,.0f}"
    bars.valueAxis.gridStrokeColor = colors.HexColor("#dde3e9")
    bars.valueAxis.visibleGrid = True
    bars.categoryAxis.categoryNames = labels
    bars.categoryAxis.visibleLabels = False  # drawn below, run by run
    drawing.add(bars)
    size = 6.5 if len(labels) <= 14 else 5.5
    step = bars.width / max(len(labels), 1)
    for i, label in enumerate(labels):
        drawing.add(_axis_label(label, bars.x + step * (i + 0.5), bars.y - 4, size, angled=len(labels) > 8))
    if not any(values):
        drawing.add(String(width / 2, height / 2, "(all values are 0)", fontName=REGULAR, fontSize=8))
    return drawing


def _axis_label(label: str, x: float, y: float, size: float, angled: bool) -> Group:
    """A category label below the axis at (x, y), each run of characters in a font that has them (a chart
    label has one font in reportlab): centred, or at 45 degrees ending under its bar when labels are many."""
    parts = runs(label)
    total = sum(pdfmetrics.stringWidth(chunk, font, size) for font, chunk in parts)
    group = Group()
    if angled:
        group.transform = (0.7071, 0.7071, -0.7071, 0.7071, x, y)  # rotated 45 degrees about (x, y)
        at, base = -total, -size * 0.75
    else:
        group.transform = (1, 0, 0, 1, x, y)
        at, base = -total / 2, -size
    for font, chunk in parts:
        group.add(String(at, base, chunk, fontName=font, fontSize=size, fillColor=colors.black))
        at += pdfmetrics.stringWidth(chunk, font, size)
    return group


# --- sections -------------------------------------------------------------------------------------------


def head_rows(section: Section, limit: int) -> dict[str, list]:
    """The first `limit` rows of a section in the PDF's order as Python lists per column; reads no more batches
    than needed."""
    parts: list[pa.RecordBatch] = []
    got = 0
    batches = section.pdf_source()
    try:
        for batch in batches:
            if got >= limit:
                break
            if batch.num_rows:
                part = batch.slice(0, limit - got)
                parts.append(part)
                got += part.num_rows
            if got >= limit:
                break
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return {c.name: [v for part in parts for v in part.column(c.name).to_pylist()] for c in section.columns}


def cell_text(value: object, kind: str, timezone: str) -> str:
    if value is None:
        return ""
    if kind == "code":
        return clip(code_word(str(value)))  # `mobile_money` -> `Mobile money`, as in the XLSX
    if kind == "money" and isinstance(value, Decimal | int | float):
        return format_money(value)
    if kind == "percent" and isinstance(value, Decimal | int | float):
        return format_percent(value)
    if isinstance(value, dt.datetime):
        return f"{local_naive(value, timezone):%Y-%m-%d %H:%M}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return clip(str(value))


def _section(section: Section, report: Report, h2, note_style, body) -> tuple[list, int]:
    out: list = [_para(section.title, h2)]  # the heading, table and notes (kept together when they fit a page)
    if section.pdf_columns is not None:
        columns = tuple(c for c in section.columns if c.name in section.pdf_columns)[:MAX_COLUMNS]
    else:
        columns = section.columns[:MAX_COLUMNS]
    omitted = tuple(c for c in section.columns if c not in columns)
    data = head_rows(section, section.pdf_limit)
    count = len(data[columns[0].name]) if columns else 0
    total = max(section.row_count, count)
    if not columns or count == 0:
        out.append(_para("No rows in this period." if total == 0 else f"{total:,} rows (not shown).", body))
        return out, 0

    ncol = len(columns)
    pad = 3.0
    headers = [f"{c.header} ({report.currency})" if c.kind == "money" else c.header for c in columns]
    texts = [[cell_text(v, c.kind, report.timezone) for v in data[c.name]] for c in columns]
    size = 8.0 if ncol <= 7 else 7.5 if ncol <= 10 else 7.0 if ncol <= 13 else 6.0
    metrics = _column_metrics(columns, headers, texts)
    widths, whole = _column_widths(columns, metrics, size, pad)
    while not whole and size > MIN_SIZE:  # smaller type rather than words broken in two
        size -= 0.5
        widths, whole = _column_widths(columns, metrics, size, pad)
    head_style = _style(f"th{size}", size, bold=True, color=colors.white)
    head_right = _style(f"thr{size}", size, bold=True, color=colors.white, align=TA_RIGHT)
    cell_left = _style(f"td{size}", size)
    cell_right = _style(f"tdr{size}", size, align=TA_RIGHT)
    for j, c in enumerate(columns):  # text cells: at most about three lines of their column
        if c.kind not in NUMERIC_KINDS:
            limit = max(12, int((widths[j] - 2 * pad) / (size * 0.55)) * 3)
            texts[j] = [clip(t, limit) for t in texts[j]]
    right = [c.kind in NUMERIC_KINDS and c.kind not in ("datetime", "date") for c in columns]
    header_row = [
        _cell(h, head_right if r else head_style, w - 2 * pad) for h, r, w in zip(headers, right, widths, strict=True)
    ]
    rows = [header_row]
    aligns = [cell_right if r else cell_left for r in right]
    for i in range(count):
        rows.append([_cell(texts[j][i], aligns[j], widths[j] - 2 * pad) for j in range(ncol)])
    table = Table(rows, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(_table_style(size, pad, tuple(j for j, r in enumerate(right) if r)))
    out.append(table)
    if total > count:
        out.append(Spacer(1, 1.5 * mm))
        order = f" ({section.pdf_order})" if section.pdf_order else ""
        out.append(_para(f"showing {count:,} of {total:,} rows{order}; the full data is in the XLSX/CSV", note_style))
    if omitted:
        names = ", ".join(c.header for c in omitted)
        out.append(_para(f"{len(omitted)} more column(s) in the XLSX/CSV: {names}", note_style))
    heading = h2.leading + h2.spaceAfter
    if heading + sum(_row_height(row, widths, size, pad) for row in rows) + 12 * mm <= FRAME_HEIGHT:
        # a section that fits on a page is kept whole with its title: a new page rather than a split table
        return [KeepTogether(out)], count
    # a longer one: the heading, the header row and the first rows together, or a new page (never a table
    # that starts with one row at the bottom of a page)
    start = sum(_row_height(row, widths, size, pad) for row in rows[: 1 + MIN_START_ROWS])
    return [CondPageBreak(heading + start + 2), *out], count


def _row_height(row: list, widths: list[float], size: float, pad: float) -> float:
    """The height a table row will take (as `_table_style` lays it out): its tallest cell's lines."""
    lines = 1
    for cell, width in zip(row, widths, strict=True):
        if isinstance(cell, str):
            lines = max(lines, cell.count("\n") + 1)
        else:  # a mixed-font Paragraph: its width over the room, rounded up
            room = max(width - 2 * pad, 1.0)
            width = sum(pdfmetrics.stringWidth(t, f, size) for f, t in runs(cell.getPlainText()))
            lines = max(lines, -int(-width // room))
    return lines * size * 1.25 + 4.5


def _cell(text: str, style: ParagraphStyle, room: float) -> str | Paragraph:
    """A plain string (drawn by the table in the cell's font, far cheaper than a Paragraph) when the text is
    in one font: on one line when it fits, else broken into lines at spaces (and within a word wider than the
    column) as a Paragraph would; a Paragraph, which switches fonts per run, only for text of several fonts."""
    shaped, width, single = measure(text, 1.0, style.fontName)  # at 1 pt, shared with the column widths
    width *= style.fontSize
    if not single:
        return _para(text, style)
    if width <= room:
        return shaped
    return "\n".join(wrap_lines(shaped, style.fontName, style.fontSize, room))


def wrap_lines(text: str, font: str, size: float, room: float) -> list[str]:
    """Greedy line breaking of one-font text into lines at most `room` wide: at spaces, and a word wider
    than a line is split between characters."""
    width = pdfmetrics.stringWidth
    space = width(" ", font, size)
    lines: list[str] = []
    line, used = "", 0.0
    for word in text.split():
        w = width(word, font, size)
        if line and used + space + w <= room:
            line, used = f"{line} {word}", used + space + w
            continue
        if line:
            lines.append(line)
        while w > room and len(word) > 1:  # the longest head that fits (at least one character)
            cut, head = 0, 0.0
            for ch in word:
                head += width(ch, font, size)  # glyph widths add up (no kerning in reportlab)
                if head > room and cut:
                    break
                cut += 1
            # rather after a separator (`@` of an email, `/` of a path, `.`, `-`, `_`) in the head's second half
            sep = max(word.rfind(ch, 0, cut) for ch in BREAK_AFTER)
            if cut < len(word) and sep >= cut // 2:
                cut = sep + 1
            lines.append(word[:cut])
            word = word[cut:]
            w = width(word, font, size)
        line, used = word, w
    if line or not lines:
        lines.append(line)
    return lines


@cache  # one TableStyle per (size, right-aligned columns) and process: reportlab only reads it
def _table_style(size: float, pad: float, right: tuple[int, ...]) -> TableStyle:
    """Grid, stripes and paddings, and the font, colour and alignment of the plain-string cells (the same as
    the Paragraph styles of `_section`)."""
    commands = [
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_BLUE),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, STRIPE]),
        ("LINEBELOW", (0, -1), (-1, -1), 0.5, HEADER_BLUE),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), pad),
        ("RIGHTPADDING", (0, 0), (-1, -1), pad),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("FONT", (0, 0), (-1, 0), BOLD, size, size * 1.25),
        ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
        ("FONT", (0, 1), (-1, -1), REGULAR, size, size * 1.25),
        ("TEXTCOLOR", (0, 1), (-1, -1), colors.black),
        *(("ALIGN", (j, 0), (j, -1), "RIGHT") for j in right),
    ]
    return TableStyle(commands)


def _column_metrics(
    columns: tuple[Column, ...], headers: list[str], texts: list[list[str]]
) -> list[tuple[float, float, float, float]]:
    """Per column at 1 pt (widths grow in proportion to the size): the header's longest word and whole width
    (bold), the widest cell (its first 60 characters) and the longest word of the cells (a number or date
    whole)."""
    out = []
    for c, header, values in zip(columns, headers, texts, strict=True):
        head_word = max((text_width(w, 1.0, BOLD) for w in header.split()), default=0.0)
        whole = text_width(header, 1.0, BOLD)
        if c.kind in NUMERIC_KINDS:
            cells = word = max((text_width(v, 1.0) for v in values), default=0.0)
        else:
            cells = max((text_width(v[:60], 1.0) for v in values), default=0.0)
            word = max((text_width(w, 1.0) for v in values for w in v.split()), default=0.0)
        out.append((head_word, whole, cells, word))
    return out


def _column_widths(
    columns: tuple[Column, ...], metrics: list[tuple[float, float, float, float]], size: float, pad: float
) -> tuple[list[float], bool]:
    """Column widths from the content: each column at least as wide as its longest word (header words in bold;
    a number or date whole), so that text wraps at word boundaries; what is left of the page goes to the
    columns whose text wants more, in proportion. A word wider than `WORD_CAP` breaks, as does everything
    when even the longest words do not fit side by side (then the second value is False)."""
    extra = 2 * pad + 1
    natural, least = [], []
    for c, (head_word, whole, cells, word) in zip(columns, metrics, strict=True):
        head_word, whole, cells, word = head_word * size, whole * size, cells * size, word * size
        if c.kind not in NUMERIC_KINDS:
            cells, word = min(cells, WIDTH * 0.3), min(word, WORD_CAP)
        low = max(head_word, word) + extra, 28.0
        least.append(max(low))
        natural.append(max(min(whole, 110.0) + extra, cells + extra, least[-1]))
    if sum(natural) <= WIDTH:
        flexible = [i for i, c in enumerate(columns) if c.kind not in NUMERIC_KINDS]
        flex_total = sum(natural[i] for i in flexible)
        if flexible:  # spread the spare width over the text columns, each up to a third of the page
            spare = WIDTH - sum(natural)
            for i in flexible:
                natural[i] = min(natural[i] + spare * natural[i] / flex_total, max(natural[i], WIDTH / 3))
        return natural, True
    if sum(least) <= WIDTH:
        spare, wants = WIDTH - sum(least), [n - lo for n, lo in zip(natural, least, strict=True)]
        total_want = sum(wants)
        shares = [lo + (spare * w / total_want if total_want else 0.0) for lo, w in zip(least, wants, strict=True)]
        return shares, True
    scale = WIDTH / sum(least)
    return [w * scale for w in least], False
