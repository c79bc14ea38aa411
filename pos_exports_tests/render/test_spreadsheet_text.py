"""What a person sees opening the files: formula-like text, codes as words, print set-up, over-long cells."""

from __future__ import annotations

import csv
import dataclasses
import io

import openpyxl
import pyarrow as pa
import pypdf
import pytest

from pos_exports.render.csvs import render_csv
from pos_exports.render.pdf import render_pdf
from pos_exports.render.xlsx import render_xlsx
from pos_exports.reports.model import Column, table_section
from pos_exports_tests.render.sample import sample_report

# Text a spreadsheet would evaluate from a CSV (it gets an apostrophe there) ...
EVALUATED = [
    "=SUM(A1)",
    "=cmd|' /C calc'!A0",
    "+Plus Traders",
    "@handle",
    "-2+3+cmd|' /C calc'!A0",
    "+SUM(A1:A3)",
    "-5-5",
    "\tTab",
    "\rCR",
    "＝1+1",
]
# ... and text none evaluates (left as it is)
READABLE = ["+201 55 555 0512", "-5 Main St", "+233 20 123 4567", "-5", "Plain & simple", "a=b"]


def _text_report():
    values = EVALUATED + READABLE
    table = pa.table({"value": pa.array(values, pa.string())})
    return sample_report([table_section("texts", "Texts", (Column("value", "Value"),), table)])


def _csv_rows(path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))


def test_formula_like_text_in_csv_and_xlsx(tmp_path):
    """CSV: an apostrophe only before what a spreadsheet would evaluate; XLSX: every text as written, a string."""
    report = _text_report()
    render_csv(report, tmp_path / "sales.csv")
    header, *rows = _csv_rows(tmp_path / "sales.csv")
    assert header == ["Value"]
    assert [r[0] for r in rows] == ["'" + v for v in EVALUATED] + READABLE

    render_xlsx(report, tmp_path / "sales.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "sales.xlsx")["Texts"]
    cells = [ws.cell(row=r, column=1) for r in range(2, len(EVALUATED) + len(READABLE) + 2)]
    # no apostrophe, nothing altered (a CR is stored as Excel's escape `_x000D_`, which Excel decodes)
    assert [c.value for c in cells] == [v.replace("\r", "_x000D_") for v in EVALUATED + READABLE]
    assert {c.data_type for c in cells} == {"s"}  # strings: never evaluated


CODES = ["mobile_money", "over_limit", "out_of_stock", "cash", None]
WORDS = ["Mobile money", "Over limit", "Out of stock", "Cash", None]


def _code_report():
    table = pa.table({"code": pa.array(CODES, pa.string()), "n": pa.array([1, 2, 3, 4, 5], pa.int64())})
    columns = (Column("code", "Status", "code"), Column("n", "N", "int"))
    return sample_report([table_section("codes", "Codes", columns, table)])


def test_codes_are_words_in_xlsx_and_pdf_and_codes_in_csv(tmp_path):
    report = _code_report()
    render_xlsx(report, tmp_path / "r.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "r.xlsx")["Codes"]
    assert [ws.cell(row=r, column=1).value for r in range(2, 7)] == WORDS
    render_csv(report, tmp_path / "r.csv")
    assert [r[0] for r in _csv_rows(tmp_path / "r.csv")[1:]] == [
        "mobile_money",
        "over_limit",
        "out_of_stock",
        "cash",
        "",
    ]
    render_pdf(report, tmp_path / "r.pdf")
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(tmp_path / "r.pdf").pages)
    assert all(w in text for w in WORDS[:4]) and "mobile_money" not in text


def test_print_setup_of_every_sheet(tmp_path):
    render_xlsx(sample_report(), tmp_path / "r.xlsx")
    wb = openpyxl.load_workbook(tmp_path / "r.xlsx")
    assert wb.sheetnames == ["Summary", "Sales", "By storefront"]
    for ws in wb:
        assert ws.page_setup.orientation == "landscape", ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert ws.page_setup.fitToWidth in (None, 1) and ws.page_setup.fitToHeight == 0  # one page wide
        assert ws.oddHeader.left.text == "Café Łódź 王 && Co"  # `&&`: a literal & in a page header
        assert ws.oddHeader.center.text == f"Sales report: {ws.title}"
        assert ws.oddHeader.right.text == "9 Mar 2025"
        assert ws.oddFooter.right.text == "Page &P of &N"
    assert wb["Sales"].print_title_rows == "$1:$1" and wb["By storefront"].print_title_rows == "$1:$1"
    summary = wb["Summary"]
    note = next(
        r for r in summary.iter_rows(max_col=1) if r[0].value == "Refunds may belong to sales of earlier periods."
    )
    assert note[0].alignment.wrap_text and f"A{note[0].row}:B{note[0].row}" in summary.merged_cells
    business = next(r for r in summary.iter_rows(max_col=2) if r[0].value == "Business")
    assert business[0].alignment.wrap_text and business[1].alignment.wrap_text  # label and value each wrap


def test_a_40000_character_business_name_is_marked_not_cut_silently(tmp_path):
    name = "Shop " + "x" * 40_000
    report = dataclasses.replace(sample_report(), business_name=name)
    render_xlsx(report, tmp_path / "r.xlsx")
    wb = openpyxl.load_workbook(tmp_path / "r.xlsx")
    summary = wb["Summary"]
    assert summary["A3"].value == "Business"
    shown = summary["B3"].value
    assert len(shown) <= 32_767 and shown.startswith("Shop xxx")
    assert shown.endswith(f"of {len(name):,} characters; full text in the CSV]")
    notes = [c.value for row in summary.iter_rows() for c in row if isinstance(c.value, str)]
    assert any("text cell(s) longer than" in v and "'Summary'!B3" in v for v in notes)
    header = summary.oddHeader.left.text
    assert header.startswith("Shop xxx") and header.endswith("…") and len(header) <= 60
    render_csv(report, tmp_path / "r.csv")
    figures = dict(_csv_rows(tmp_path / "r-summary.csv")[1:])
    assert figures["Business"] == name  # the CSV holds the full text


@pytest.mark.parametrize("note_length", [500, 5_000])
def test_long_notes_wrap_in_a_taller_row(tmp_path, note_length):
    report = dataclasses.replace(sample_report(), notes=["word " * (note_length // 5)])
    render_xlsx(report, tmp_path / "r.xlsx")
    summary = openpyxl.load_workbook(tmp_path / "r.xlsx")["Summary"]
    row = next(r[0].row for r in summary.iter_rows(max_col=1) if str(r[0].value).startswith("word word"))
    assert summary.row_dimensions[row].height > 15 and summary[f"A{row}"].alignment.wrap_text
