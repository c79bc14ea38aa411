import datetime as dt
import zipfile

import numpy as np
import openpyxl
import pyarrow as pa
import pytest

from pos_exports.render.xlsx import MAX_DATA_ROWS, render_xlsx
from pos_exports.reports.model import Column, Section
from pos_exports_tests.render.sample import FORMULA_TEXTS, SALE_ROWS, sample_report


@pytest.fixture(scope="module")
def workbook(tmp_path_factory):
    path = tmp_path_factory.mktemp("xlsx") / "sales.xlsx"
    rows = render_xlsx(sample_report(), path)
    return rows, openpyxl.load_workbook(path), path


def test_sheets_and_rows(workbook):
    rows, wb, _ = workbook
    assert rows == {"sales": SALE_ROWS, "storefronts": 3}
    assert wb.sheetnames == ["Summary", "Sales", "By storefront"]
    assert wb["Sales"].max_row == SALE_ROWS + 1


def test_header_frozen_bold_filled(workbook):
    _, wb, _ = workbook
    ws = wb["Sales"]
    assert ws.freeze_panes == "A2"
    header = [c.value for c in ws[1]]
    assert header == [
        "Completed at",
        "Business day",
        "Receipt",
        "Customer",
        "Quantity",
        "Total",
        "Margin %",
        "Metadata",
    ]
    cell = ws["A1"]
    assert cell.font.b and cell.fill.fgColor.rgb.endswith("2C3E50")
    widths = {k: v.width for k, v in ws.column_dimensions.items()}
    assert widths["D"] <= 61 and widths["A"] >= 19  # fitted, capped


def test_cell_types_and_formats(workbook):
    _, wb, _ = workbook
    ws = wb["Sales"]
    a2, b2, d2, e2, f2, g2 = ws["A2"], ws["B2"], ws["D2"], ws["E2"], ws["F2"], ws["G2"]
    assert a2.value == dt.datetime(2025, 3, 9, 10, 0, 0) and a2.number_format == "yyyy-mm-dd hh:mm:ss"
    assert b2.value == dt.datetime(2025, 3, 9) and b2.number_format == "yyyy-mm-dd"
    assert d2.value == "王小明"
    assert e2.value == -1 and e2.data_type == "n"
    assert f2.value == 1234.5 and f2.data_type == "n" and f2.number_format == "#,##0.00"
    assert g2.value == pytest.approx(0.1547) and g2.number_format == "0.00%"
    assert ws["F3"].value == -5 and ws["F3"].data_type == "n"  # negative money stays a number
    assert ws["G3"].value is None  # null percent
    assert ws["F4"].value == 0 and ws["F4"].data_type == "n"
    assert ws["D3"].value == "فاطمة الزهراء"
    assert ws["D4"].value == "José Álvarez" and ws["D5"].value == "Łódź Bakery"
    assert ws["D6"].value == "<b>Bold</b> & Co"
    assert ws["H2"].value.startswith("{\n") and ws["H3"].value is None


def test_formula_text_is_an_unaltered_string(workbook):
    """A string cell is never evaluated: formula-like text is kept exactly, without an apostrophe."""
    _, wb, _ = workbook
    ws = wb["Sales"]
    for i, text in enumerate(FORMULA_TEXTS):
        cell = ws.cell(row=7 + i, column=4)
        assert cell.value == text
        assert cell.data_type == "s" and cell.data_type != "f"


def test_control_character_removed_and_long_text_flagged(workbook):
    _, wb, _ = workbook
    ws = wb["Sales"]
    assert ws["D13"].value == "badbell"
    long = ws["D14"].value
    assert len(long) <= 32_767
    assert long.startswith("abcdef")
    assert long.endswith("of 40,000 characters; full text in the CSV]")
    summary = [c.value for row in wb["Summary"].iter_rows() for c in row if isinstance(c.value, str)]
    assert any("1 text cell(s) longer than" in v and "'Sales'!D14" in v for v in summary)


def test_summary_sheet(workbook):
    _, wb, _ = workbook
    ws = wb["Summary"]
    assert ws["A1"].value == "Sales report"
    pairs = {r[0].value: r[1] for r in ws.iter_rows(min_row=2, max_col=2) if r[0].value}
    assert pairs["Business"].value == "Café Łódź 王 & Co"
    assert pairs["Period"].value == "9 Mar 2025" and pairs["Time zone"].value == "Asia/Tokyo"
    cells = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert sum("Asia/Tokyo" in v for v in cells) == 1  # the time zone is printed once
    assert pairs["Currency"].value == "JPY"
    assert pairs["customer_type"].value == "retail"
    assert pairs["min_quantity"].value == -5 and pairs["min_quantity"].data_type == "n"
    assert pairs["Net revenue"].value == 2868.75 and pairs["Net revenue"].number_format == "#,##0.00"
    assert pairs["Refunds issued"].value == -12.5 and pairs["Refunds issued"].data_type == "n"
    assert pairs["Margin %"].value == pytest.approx(0.1547) and pairs["Margin %"].number_format == "0.00%"
    assert pairs["Sale count"].value == 120
    assert pairs["First sale"].value == dt.datetime(2025, 3, 9, 10, 0)
    assert pairs["First day"].value == dt.datetime(2025, 3, 9)
    assert pairs["Top customer"].value == "=cmd" and pairs["Top customer"].data_type == "s"
    assert pairs["Sales"].value == "120 rows on 'Sales'"
    assert wb.properties.created == dt.datetime(2025, 3, 9, 15, 0)  # generated_at, UTC


def test_xlsx_is_deterministic(tmp_path, workbook):
    _, _, first = workbook
    second = tmp_path / "again.xlsx"
    render_xlsx(sample_report(), second)
    assert second.read_bytes() == first.read_bytes()
    with zipfile.ZipFile(second) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 31, 0, 0, 0)}


def test_empty_section(tmp_path):
    cols = (Column("n", "N", "int"),)
    schema = pa.schema([("n", pa.int64())])
    section = Section("empty", "Empty", cols, lambda: iter([pa.RecordBatch.from_pylist([], schema=schema)]), 0)
    path = tmp_path / "e.xlsx"
    assert render_xlsx(sample_report([section]), path) == {"empty": 0}
    ws = openpyxl.load_workbook(path)["Empty"]
    assert [c.value for c in ws[1]] == ["N"] and ws.max_row == 1


@pytest.mark.slow
def test_section_longer_than_a_sheet_continues(tmp_path):
    total = MAX_DATA_ROWS + 5  # 1,048,580 rows

    def batches():
        for start in range(0, total, 200_000):
            stop = min(start + 200_000, total)
            yield pa.RecordBatch.from_arrays([pa.array(np.arange(start, stop, dtype=np.int64))], names=["n"])

    section = Section("line_items", "Line items", (Column("n", "Row", "int"),), batches, total)
    path = tmp_path / "big.xlsx"
    assert render_xlsx(sample_report([section]), path) == {"line_items": total}
    wb = openpyxl.load_workbook(path, read_only=True)
    assert wb.sheetnames == ["Summary", "Line items", "Line items (2)"]
    counted = 0
    last = None
    for name in ("Line items", "Line items (2)"):
        rows = wb[name].iter_rows(values_only=True)
        assert next(rows) == ("Row",)  # header repeated
        for (value,) in rows:
            counted += 1
            last = value
    assert counted == total and last == total - 1
    wb.close()
