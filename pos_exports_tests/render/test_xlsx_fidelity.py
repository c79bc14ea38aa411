"""`render_xlsx` keeps every property of `xlsx_fidelity.PROPERTIES` (the list candidate writers are judged on),
and its bulk row-XML paths (Arrow for large batches, Python for small ones) write the same cells as XlsxWriter's
own per-cell writer."""

import datetime as dt
import zipfile
from decimal import Decimal

import openpyxl
import pyarrow as pa
import pytest

import pos_exports.render.xlsx as xlsx
from pos_exports.render.xlsx import render_xlsx
from pos_exports.reports.model import Column, table_section
from pos_exports_tests.render.sample import sample_report
from pos_exports_tests.render.xlsx_fidelity import PROPERTIES, check_workbook


def _per_cell(monkeypatch, report, path):
    """The same report written cell by cell by XlsxWriter (`write_row`), the reference for the bulk path."""
    with monkeypatch.context() as m:
        m.setattr(xlsx, "rows_xml", lambda *args: None)
        m.setattr(xlsx, "PYTHON_ROWS", -1)  # nor the small batches' Python rows
        render_xlsx(report, path)


def test_render_xlsx_keeps_every_property(tmp_path):
    path = tmp_path / "sales.xlsx"
    render_xlsx(sample_report(), path)
    results = check_workbook(path, lambda again: render_xlsx(sample_report(), again))
    assert list(results) == list(PROPERTIES)
    assert {prop: found for prop, found in results.items() if found is not None} == {}


def test_bulk_rows_give_the_per_cell_writers_bytes(tmp_path, monkeypatch):
    bulk, reference = tmp_path / "bulk.xlsx", tmp_path / "per_cell.xlsx"
    render_xlsx(sample_report(), bulk)
    _per_cell(monkeypatch, sample_report(), reference)
    assert bulk.read_bytes() == reference.read_bytes()


def test_packaging_in_memory_gives_the_file_packagings_bytes(tmp_path, monkeypatch):
    """Small workbooks are zipped from memory, large ones through XlsxWriter's temporary files: same bytes."""
    memory, disk = tmp_path / "memory.xlsx", tmp_path / "disk.xlsx"
    render_xlsx(sample_report(), memory)
    with monkeypatch.context() as m:
        m.setattr(xlsx, "IN_MEMORY_ROWS", -1)  # every workbook packaged through temporary files
        render_xlsx(sample_report(), disk)
    assert memory.read_bytes() == disk.read_bytes()
    with zipfile.ZipFile(memory) as book:
        entries = book.infolist()
    assert len(entries) >= 9 and {(e.date_time, e.external_attr >> 16) for e in entries} == {
        ((1980, 1, 31, 0, 0, 0), 0o100600)
    }


AWKWARD = [
    " leading space",
    "trailing tab\t",
    "\u3000ideographic space",
    "nbsp\xa0",
    "literal _x0041_ escape",
    "carriage\rreturn",
    "line\nfeed",
    'a & b < c > d "q" \'s',
    "",
    None,
    "=1+1",
    "plain",
]


def _awkward_report():
    n = len(AWKWARD)
    table = pa.table(  # the last row all blank: the sheet's dimension ends on the row before
        {
            "text": pa.array([*AWKWARD, None], pa.string()),
            "other": pa.array([None] * (n - 1) + ["last", None], pa.string()),
            "n": pa.array([None, *range(n - 1), None], pa.int64()),
        }
    )
    cols = (Column("text", "Text"), Column("other", "Other", "json"), Column("n", "N", "int"))
    blank = pa.table({"text": pa.array([None, ""]), "other": pa.array([None, None], pa.string())})
    blank = blank.append_column("n", pa.array([None, None], pa.int64()))
    return sample_report(
        [table_section("awkward", "Awkward", cols, table), table_section("blank", "Blank rows", cols, blank)]
    )


def test_bulk_rows_escape_text_as_xlsxwriter_does(tmp_path, monkeypatch):
    bulk, reference = tmp_path / "bulk.xlsx", tmp_path / "per_cell.xlsx"
    render_xlsx(_awkward_report(), bulk)
    _per_cell(monkeypatch, _awkward_report(), reference)
    assert bulk.read_bytes() == reference.read_bytes()
    ws = openpyxl.load_workbook(bulk)["Awkward"]
    got = [ws.cell(row=r, column=1).value for r in range(2, len(AWKWARD) + 2)]
    expected = [v or None for v in AWKWARD]
    # Excel's own escapes, which Excel decodes and openpyxl shows as stored
    expected[4] = "literal _x005F_x0041_ escape"
    expected[5] = "carriage_x000D_return"
    assert got == expected
    assert ws.max_row == len(AWKWARD) + 1
    assert openpyxl.load_workbook(bulk)["Blank rows"].max_row == 1  # all-blank rows: no row written


def test_bulk_numbers_read_back_exactly(tmp_path, monkeypatch):
    """Money goes out as its decimal text (95.74, not XlsxWriter's 16-digit 95.73999999999999), other floats
    as the shortest text of the same float; integers too large to print alike go through XlsxWriter."""
    money = ["95.74", "8.53", "-0.10", "1200.00", "0.00", None]
    start = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    times = [start + dt.timedelta(seconds=107 * i) for i in range(len(money))]
    table = pa.table(
        {
            "money": pa.array([None if v is None else Decimal(v) for v in money], pa.decimal128(18, 2)),
            "ratio": pa.array([0.1 + 0.2, 1 / 3, float("nan"), None, 2.5, -1e-7]),
            "at": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )
    big = pa.table({"big": pa.array([10**17, 1, 2, 3, 4, 5], pa.int64())})
    cols = (
        Column("money", "Money", "money"),
        Column("ratio", "Ratio", "percent"),
        Column("at", "At", "datetime"),
    )
    report = sample_report(
        [
            table_section("numbers", "Numbers", cols, table),
            table_section("big", "Big", (Column("big", "Big", "int"),), big),
        ]
    )
    bulk, reference = tmp_path / "bulk.xlsx", tmp_path / "per_cell.xlsx"
    render_xlsx(report, bulk)
    _per_cell(monkeypatch, report, reference)
    fast, slow = openpyxl.load_workbook(bulk)["Numbers"], openpyxl.load_workbook(reference)["Numbers"]
    assert [fast.cell(row=r, column=1).value for r in range(2, 8)] == [None if v is None else float(v) for v in money]
    assert [fast.cell(row=r, column=2).value for r in range(2, 8)] == [0.1 + 0.2, 1 / 3, None, None, 2.5, -1e-7]
    big_cells = openpyxl.load_workbook(bulk)["Big"]
    assert [big_cells.cell(row=r, column=1).value for r in range(2, 8)] == [10**17, 1, 2, 3, 4, 5]
    local = [t.replace(tzinfo=None) for t in times]  # the column's own time zone (UTC), as local time
    assert [fast.cell(row=r, column=3).value for r in range(2, 8)] == local
    for fr, sr in zip(fast.iter_rows(), slow.iter_rows(), strict=True):
        for f, s in zip(fr, sr, strict=True):
            assert (f.data_type, f.number_format) == (s.data_type, s.number_format), f.coordinate
            if isinstance(f.value, float):
                assert f.value == pytest.approx(s.value, rel=1e-15)
            else:
                assert f.value == s.value, f.coordinate
    with zipfile.ZipFile(bulk) as z:
        sheet = z.read("xl/worksheets/sheet2.xml")
    assert b"<v>95.74</v>" in sheet and b"<v>1200</v>" in sheet


def test_widths_from_arrow_bounds_equal_widths_from_every_value():
    """`fit_widths` (minima, maxima, longest one-line ASCII text) gives what `_fit_widths` gives from every cell."""
    mixed = pa.table(
        {
            "money": pa.array([Decimal("-9.99"), Decimal("-10.00"), Decimal("99999.99"), None], pa.decimal128(18, 2)),
            "pct": pa.array([0.5, -0.123, float("inf"), None]),
            "n": pa.array([-7, 123456, 0, None], pa.int64()),
            "f": pa.array([0.1 + 0.2, 1.0, None, 3.5]),
            "text": ["short", "王小明 wide", "two\nlines that are longer", "x" * 500],
            "at": pa.array([None] * 4, pa.timestamp("us", tz="UTC")),
        }
    )
    cols = (
        Column("money", "Money", "money"),
        Column("pct", "Pct", "percent"),
        Column("n", "N", "int"),
        Column("f", "F", "int"),
        Column("text", "A long header for text", "text"),
        Column("at", "At", "datetime"),
    )
    sections = [table_section("mixed", "Mixed", cols, mixed), *sample_report().sections]
    for section in sections:
        batch = pa.Table.from_batches(list(section.batches())).combine_chunks().to_batches()[0]
        headers = [c.header for c in section.columns]
        every = xlsx._column_lists(batch, section.columns, ["x"], 1, [])
        assert xlsx.fit_widths(headers, section.columns, batch) == xlsx._fit_widths(headers, section.columns, every)


def test_large_string_columns_write_like_string_columns(tmp_path):
    cols = (Column("text", "Text"), Column("n", "N", "int"))
    values = ["a & b", " edge ", "=x", None, "王"]
    paths = []
    for kind in (pa.string(), pa.large_string()):
        table = pa.table({"text": pa.array(values, kind), "n": pa.array(range(5), pa.int64())})
        paths.append(tmp_path / f"{kind}.xlsx")
        render_xlsx(sample_report([table_section("t", "T", cols, table)]), paths[-1])
    assert paths[0].read_bytes() == paths[1].read_bytes()


MONEY = pa.decimal128(18, 2)


def _edge_report():
    """Values at the edges of the small batches' Python path: floats where Arrow's text turns to exponents,
    decimals near the exact-print limit, negative zero, non-finite ratios, codes, dates, text XlsxWriter escapes."""
    floats = [0.0, -0.0, 1e-4, 9.99e-5, 1e-7, 123.456, 9999999999.5, 1e10, 2.5e12, float("nan"), None, 1 / 3]
    n = len(floats)
    money = ["0.00", "-0.10", "1200.00", "99999999999.99", "123456789012345.67", None, "5", "10.50", "7", "8", "9", "1"]
    table = pa.table(
        {
            "ratio": pa.array(floats, pa.float64()),
            "amount": pa.array(floats[:9] + [1.0, None, 2.0], pa.float64()),
            "money": pa.array([None if v is None else Decimal(v) for v in money], pa.decimal128(18, 2)),
            "n": pa.array([10**14, -(10**14), 0, None, *range(n - 4)], pa.int64()),
            "code": pa.array(["mobile_money", "out_of_stock", None, "", "cash", *["card"] * (n - 5)]),
            "day": pa.array([dt.date(2025, 3, 1) + dt.timedelta(days=i) for i in range(n)], pa.date32()),
            "text": pa.array([*AWKWARD[: n - 1], "王小明"], pa.string()),
        }
    )
    cols = (
        Column("ratio", "Ratio", "percent"),
        Column("amount", "Amount", "money"),
        Column("money", "Money", "money"),
        Column("n", "N", "int"),
        Column("code", "Code", "code"),
        Column("day", "Day", "date"),
        Column("text", "Text"),
    )
    # values the Python path takes
    plain = table.drop_columns(["text", "ratio", "amount"]).set_column(0, "money", pa.array(money[:4] * 3).cast(MONEY))
    sections = [table_section("edges", "Edges", cols, table), table_section("plain", "Plain", cols[2:6], plain)]
    return sample_report(sections)


@pytest.mark.parametrize("report", [sample_report, _awkward_report, _edge_report])
def test_small_batches_in_python_give_the_arrow_paths_bytes(report, tmp_path, monkeypatch):
    """A batch of at most PYTHON_ROWS rows is written from Python values: the same bytes as the Arrow path."""
    python, arrow = tmp_path / "python.xlsx", tmp_path / "arrow.xlsx"
    taken, rows_of = [], xlsx._rows_of
    with monkeypatch.context() as m:
        m.setattr(xlsx, "_rows_of", lambda cells, first: taken.append(first) or rows_of(cells, first))
        render_xlsx(report(), python)
    with monkeypatch.context() as m:
        m.setattr(xlsx, "PYTHON_ROWS", -1)
        render_xlsx(report(), arrow)
    assert taken  # the Python path wrote sections
    assert python.read_bytes() == arrow.read_bytes()


def test_small_batch_cells_fall_back_where_arrow_prints_otherwise():
    edges = _edge_report().sections[0]
    batch = next(edges.batches())
    for name in ("ratio", "amount", "money"):  # exponents, 15 integer digits: the Arrow path's
        column = next(c for c in edges.columns if c.name == name)
        assert xlsx._small_column(batch.column(name), column.kind, "", "A", True) is None, name
    assert xlsx._small_column(batch.column("text"), "text", "", "A", True) is not None  # escapes: its own
    too_long = pa.array(["x" * xlsx.MAX_CELL_CHARS])  # cut cell by cell, and counted
    assert xlsx._small_column(too_long, "text", "", "A", True) is None
    plain = _edge_report().sections[1]
    assert xlsx._small_cells(next(plain.batches()), plain.columns, True) is not None
    assert xlsx._float_text(-0.0) == "-0" and xlsx._float_text(9999999999.5) == "9999999999.5"
    assert xlsx._float_text(1e10) is None and xlsx._float_text(9.99e-5) is None
