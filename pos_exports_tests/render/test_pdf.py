import unicodedata
from decimal import Decimal

import pyarrow as pa
import pypdf
import pytest
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import KeepTogether, Table

from pos_exports.render.pdf import WIDTH, _section, _style, render_pdf, wrap_lines
from pos_exports.reports.model import Column, Section, table_section
from pos_exports_tests.render.sample import sample_report


@pytest.fixture(scope="module")
def pdf(tmp_path_factory):
    path = tmp_path_factory.mktemp("pdf") / "sales.pdf"
    shown = render_pdf(sample_report(), path)
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(path).pages)
    return shown, text, path


def test_rows_shown(pdf):
    shown, text, _ = pdf
    assert shown == {"sales": 50, "storefronts": 3}
    assert "showing 50 of 120 rows; the full data is in the XLSX/CSV" in text
    assert "R-1049" in text and "R-1050" not in text


def test_every_script_and_literal_markup(pdf):
    _, text, _ = pdf
    assert "Sales report" in text and "Asia/Tokyo" in text and "JPY" in text
    assert "王小明" in text and "王府井" in text
    assert "José Álvarez" in text and "Łódź Bakery" in text
    assert "<b>Bold</b> & Co" in text
    # Arabic is drawn shaped (presentation forms) in visual order; text extraction of RTL is imperfect,
    # so compare letters after NFKC folds the presentation forms back, in either direction.
    folded = unicodedata.normalize("NFKC", text)
    name = "فاطمة الزهراء"
    assert name in folded or name[::-1] in folded


def test_money_and_figures(pdf):
    _, text, _ = pdf
    assert "1,234.50" in text and "-5.00" in text and "2,868.75" in text
    assert "15.47%" in text and "Net revenue (JPY)" in text
    # the document date is the end of the period (deterministic files), so it is not shown as "Generated"
    assert "Generated" not in text and "Period: 9 Mar 2025" in text


def test_fonts_embedded(pdf):
    _, _, path = pdf
    fonts = set()
    for page in pypdf.PdfReader(path).pages:
        for font in page["/Resources"]["/Font"].values():
            fonts.add(str(font.get_object()["/BaseFont"]).split("+")[-1])
    assert {"DejaVuSans", "DejaVuSans-Bold", "DroidSansFallback"} <= fonts
    assert "Helvetica" not in fonts


def test_pdf_is_deterministic(tmp_path, pdf):
    _, _, first = pdf
    again = tmp_path / "again.pdf"
    render_pdf(sample_report(), again)
    assert again.read_bytes() == first.read_bytes()
    assert b"D:20250309150000+00'00'" in first.read_bytes()  # creation date = generated_at


def test_reads_only_the_rows_it_shows(tmp_path):
    consumed = []
    cols = (Column("n", "N", "int"),)

    def batches():
        for i in range(1000):
            consumed.append(i)
            yield pa.RecordBatch.from_arrays([pa.array(range(i * 10, i * 10 + 10))], names=["n"])

    section = Section("big", "Big", cols, batches, 10_000, pdf_rows=25)
    assert render_pdf(sample_report([section]), tmp_path / "b.pdf") == {"big": 25}
    assert len(consumed) == 3
    text = "".join(p.extract_text() for p in pypdf.PdfReader(tmp_path / "b.pdf").pages)
    assert "showing 25 of 10,000 rows" in text


def _flat(flowables: list) -> list:
    """The flowables of a section, those of a section kept together on one page included."""
    return [g for f in flowables for g in (f._content if isinstance(f, KeepTogether) else [f])]


def test_wide_section_fits_the_page(tmp_path):
    cols = tuple(Column(f"c{i}", f"Column number {i}", "money" if i % 2 else "text") for i in range(22))
    table = pa.table(
        {
            c.name: pa.array([Decimal("1234567.89")] * 5, pa.decimal128(18, 2))
            if c.kind == "money"
            else ["some fairly long text value " * 3] * 5
            for c in cols
        }
    )
    section = table_section("wide", "Wide", cols, table)
    style = _style("s", 9)
    flowables, shown = _section(section, sample_report([section]), style, style, style)
    (grid,) = [f for f in _flat(flowables) if isinstance(f, Table)]
    assert shown == 5 and len(grid._colWidths) == 16 and sum(grid._colWidths) <= WIDTH + 0.01
    path = tmp_path / "w.pdf"
    assert render_pdf(sample_report([section]), path) == {"wide": 5}
    text = "".join(p.extract_text() for p in pypdf.PdfReader(path).pages)
    assert "6 more column(s) in the XLSX/CSV" in text


def test_cells_wrap_or_switch_fonts_only_where_needed():
    from reportlab.platypus import Paragraph

    cols = (Column("name", "Name"), Column("total", "Total", "money"))
    names = ["Short name", "王小明", "word " * 200, "José Álvarez"]
    table = pa.table({"name": names, "total": pa.array([Decimal("1.50")] * 4, pa.decimal128(18, 2))})
    section = table_section("t", "T", cols, table)
    style = _style("s", 9)
    flowables, shown = _section(section, sample_report([section]), style, style, style)
    (grid,) = [f for f in _flat(flowables) if isinstance(f, Table)]
    cells = grid._cellvalues[1:]
    assert shown == 4
    # one font, fits its column: drawn as a plain string
    assert cells[0] == ["Short name", "1.50"] and cells[3][0] == "José Álvarez"
    # Chinese needs the fallback font: a Paragraph, which switches fonts per run
    assert isinstance(cells[1][0], Paragraph)
    # one font, too long for a line: a plain string broken into lines that each fit, words kept whole
    room = grid._colWidths[0] - 6
    lines = cells[2][0].split("\n")
    assert len(lines) > 1 and all(stringWidth(line, "DejaVuSans", 8) <= room for line in lines)  # 8 pt: 2 columns
    joined = " ".join(lines)  # the text cut with "…" after a whole word (clip cuts at a space)
    assert joined.endswith("word…") and ("word " * 200).startswith(joined[:-1]) and len(joined) < 1000
    assert all(set(line.split()) <= {"word", "word…"} for line in lines)


def test_wrap_lines_breaks_at_spaces_and_within_words_too_wide():
    def width(text):
        return stringWidth(text, "DejaVuSans", 8)

    room = width("abcdefghij")
    assert wrap_lines("ab cd ef", "DejaVuSans", 8, width("ab cd")) == ["ab cd", "ef"]
    long = wrap_lines("x " + "a" * 35 + " y", "DejaVuSans", 8, room)
    assert long[0] == "x" and long[-1].endswith("y") and len(long) >= 4  # the a's are split over lines
    assert all(width(line) <= room for line in long)
    assert "".join(long).replace(" ", "") == "x" + "a" * 35 + "y"
    assert wrap_lines("", "DejaVuSans", 8, room) == [""]
