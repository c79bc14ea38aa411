"""Every property our XLSX tests check, as one check of a workbook written from `sample_report()`.

Used by `test_xlsx_fidelity.py` (on `render_xlsx`) and by `benchmarks/xlsx_writer_benchmark.py` (on each
candidate writer's rendering of the same report), so a candidate is judged on exactly what we keep.
`check_workbook` returns {property: None if kept, else what was found}.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl

from pos_exports_tests.render.sample import FORMULA_TEXTS, SALE_ROWS

PROPERTIES = (
    "sheets: Summary first, one sheet per section, all rows",
    "header row: frozen (A2), bold, filled #2C3E50",
    "autofilter over the header and every data row",
    "column widths fitted (datetime >= 19) and capped (<= 60)",
    "datetime cells: real datetimes, format yyyy-mm-dd hh:mm:ss",
    "date cells: real dates, format yyyy-mm-dd",
    "money cells: numbers (negative and zero too), format #,##0.00",
    "percent cells: numbers, format 0.00%; null percent empty",
    "int cells: numbers",
    "text cells: unicode kept, markup kept as text, multi-line json kept",
    "string cells never evaluated: formula-like text stored as a string as written (no apostrophe)",
    "characters XML forbids removed",
    "long text cut at 32,767 with a marker, listed on the Summary sheet",
    "summary sheet: title, business, period, currency, filters (numbers stay numbers)",
    "summary figures: money/percent/int formats, datetime/date values, text as written, section placements",
    "workbook created = report.generated_at (UTC)",
    "print set-up: landscape, one page wide, print title, header row repeated on every page",
    "deterministic: same report, same bytes; fixed zip timestamps",
)


def check_workbook(path: Path, write_again: Callable[[Path], object] | None = None) -> dict[str, str | None]:
    """Each of PROPERTIES for the workbook at `path` (written from `sample_report()`); `write_again(path)`
    writes the same report once more (for the determinism property; not checked without it)."""
    wb = openpyxl.load_workbook(path)
    results: dict[str, str | None] = {}
    checks = (
        _sheets,
        _header,
        _autofilter,
        _widths,
        _datetimes,
        _dates,
        _money,
        _percent,
        _ints,
        _text,
        _formulas,
        _xml_clean,
        _long_text,
        _summary_head,
        _summary_figures,
        _created,
        _print_setup,
    )
    for prop, check in zip(PROPERTIES, checks, strict=False):
        try:
            check(wb)
            results[prop] = None
        except Exception as exc:  # noqa: BLE001 - a failed property is reported, not raised
            results[prop] = f"{type(exc).__name__}: {exc}"[:200]
    results[PROPERTIES[-1]] = _deterministic(path, write_again)
    return results


def _expect(condition: bool, found: object) -> None:
    if not condition:
        raise AssertionError(repr(found)[:160])


def _sales(wb):
    return wb[wb.sheetnames[1]]


def _sheets(wb) -> None:
    _expect(wb.sheetnames == ["Summary", "Sales", "By storefront"], wb.sheetnames)
    _expect(wb["Sales"].max_row == SALE_ROWS + 1, wb["Sales"].max_row)
    _expect(wb["By storefront"].max_row == 4, wb["By storefront"].max_row)


def _header(wb) -> None:
    ws = _sales(wb)
    _expect(ws.freeze_panes == "A2", ws.freeze_panes)
    header = [c.value for c in ws[1]]
    expected = ["Completed at", "Business day", "Receipt", "Customer", "Quantity", "Total", "Margin %", "Metadata"]
    _expect(header == expected, header)
    for cell in ws[1]:
        _expect(bool(cell.font.b) and str(cell.fill.fgColor.rgb).endswith("2C3E50"), (cell.font.b, cell.fill.fgColor))


def _autofilter(wb) -> None:
    for name, ref in (("Sales", f"A1:H{SALE_ROWS + 1}"), ("By storefront", "A1:C4")):
        _expect(wb[name].auto_filter.ref == ref, (name, wb[name].auto_filter.ref))


def _widths(wb) -> None:
    ws = _sales(wb)
    widths = {k: v.width for k, v in ws.column_dimensions.items()}
    _expect(widths.get("A", 0) >= 19 and 0 < widths.get("D", 0) <= 61, widths)
    _expect(all(w <= 61 for w in widths.values()), widths)


def _datetimes(wb) -> None:
    cell = _sales(wb)["A2"]
    _expect(cell.value == dt.datetime(2025, 3, 9, 10, 0, 0), cell.value)
    _expect(cell.number_format == "yyyy-mm-dd hh:mm:ss", cell.number_format)
    _expect(_sales(wb)["A3"].value == dt.datetime(2025, 3, 9, 10, 7, 0), _sales(wb)["A3"].value)


def _dates(wb) -> None:
    cell = _sales(wb)["B2"]
    found = (cell.value, cell.number_format)
    _expect(found == (dt.datetime(2025, 3, 9), "yyyy-mm-dd"), found)


def _money(wb) -> None:
    ws = _sales(wb)
    for ref, value in (("F2", 1234.5), ("F3", -5), ("F4", 0), ("F5", 13.25)):
        cell = ws[ref]
        _expect(cell.value == value and cell.data_type == "n", (ref, cell.value, cell.data_type))
        _expect(cell.number_format == "#,##0.00", (ref, cell.number_format))
    net = [r[2].value for r in wb["By storefront"].iter_rows(min_row=2)]
    _expect(net == [2000, 800.25, 68.5], net)


def _percent(wb) -> None:
    ws = _sales(wb)
    _expect(abs((ws["G2"].value or 0) - 0.1547) < 1e-12 and ws["G2"].number_format == "0.00%", ws["G2"].value)
    _expect(ws["G3"].value is None and ws["G4"].value == 0, (ws["G3"].value, ws["G4"].value))


def _ints(wb) -> None:
    ws = _sales(wb)
    _expect(ws["E2"].value == -1 and ws["E2"].data_type == "n", (ws["E2"].value, ws["E2"].data_type))
    _expect([ws.cell(row=r, column=5).value for r in range(2, 7)] == [-1, 0, 1, 2, 3], "quantities")


def _text(wb) -> None:
    ws = _sales(wb)
    got = [ws[f"D{r}"].value for r in range(2, 7)]
    _expect(got == ["王小明", "فاطمة الزهراء", "José Álvarez", "Łódź Bakery", "<b>Bold</b> & Co"], got)
    _expect(ws["H2"].value.startswith("{\n") and ws["H3"].value is None, ws["H2"].value)
    _expect(ws["C2"].value == "R-1000" and ws["C2"].data_type == "s", ws["C2"].value)


def _formulas(wb) -> None:
    ws = _sales(wb)
    for i, text in enumerate(FORMULA_TEXTS):
        cell = ws.cell(row=7 + i, column=4)
        _expect(cell.value == text and cell.data_type == "s", (cell.value, cell.data_type))
    _expect(not any(c.data_type == "f" for row in ws.iter_rows() for c in row), "a formula cell")


def _xml_clean(wb) -> None:
    _expect(_sales(wb)["D13"].value == "badbell", _sales(wb)["D13"].value)


def _long_text(wb) -> None:
    long = _sales(wb)["D14"].value or ""
    _expect(len(long) <= 32_767 and long.startswith("abcdef"), len(long))
    _expect(long.endswith("of 40,000 characters; full text in the CSV]"), long[-60:])
    summary = [c.value for row in wb["Summary"].iter_rows() for c in row if isinstance(c.value, str)]
    _expect(any("1 text cell(s) longer than" in v and "'Sales'!D14" in v for v in summary), "no note")


def _pairs(wb) -> dict:
    return {r[0].value: r[1] for r in wb["Summary"].iter_rows(min_row=2, max_col=2) if r[0].value}


def _summary_head(wb) -> None:
    ws = wb["Summary"]
    _expect(ws["A1"].value == "Sales report" and ws["A1"].font.b, ws["A1"].value)
    pairs = _pairs(wb)
    _expect(pairs["Business"].value == "Café Łódź 王 & Co", pairs["Business"].value)
    _expect(pairs["Period"].value == "9 Mar 2025", pairs["Period"].value)
    _expect(pairs["Time zone"].value == "Asia/Tokyo", pairs["Time zone"].value)
    _expect(pairs["Currency"].value == "JPY", pairs["Currency"].value)
    _expect(pairs["customer_type"].value == "retail", pairs["customer_type"].value)
    _expect(pairs["min_quantity"].value == -5 and pairs["min_quantity"].data_type == "n", pairs["min_quantity"].value)


def _summary_figures(wb) -> None:
    pairs = _pairs(wb)
    net = pairs["Net revenue"]
    _expect(net.value == 2868.75 and net.number_format == "#,##0.00", (net.value, net.number_format))
    _expect(pairs["Refunds issued"].value == -12.5 and pairs["Refunds issued"].data_type == "n", "refunds")
    margin = pairs["Margin %"]
    _expect(abs(margin.value - 0.1547) < 1e-12 and margin.number_format == "0.00%", margin.number_format)
    _expect(pairs["Sale count"].value == 120 and pairs["Sale count"].number_format == "#,##0", "sale count")
    _expect(pairs["First sale"].value == dt.datetime(2025, 3, 9, 10, 0), pairs["First sale"].value)
    _expect(pairs["First day"].value == dt.datetime(2025, 3, 9), pairs["First day"].value)
    _expect(pairs["Top customer"].value == "=cmd", pairs["Top customer"].value)
    _expect(pairs["Sales"].value == "120 rows on 'Sales'", pairs["Sales"].value)


def _created(wb) -> None:
    _expect(wb.properties.created == dt.datetime(2025, 3, 9, 15, 0), wb.properties.created)


def _print_setup(wb) -> None:
    for ws in wb:
        setup = ws.page_setup
        _expect(setup.orientation == "landscape" and setup.fitToHeight == 0, (ws.title, setup.orientation))
        _expect(ws.sheet_properties.pageSetUpPr.fitToPage and setup.fitToWidth in (None, 1), ws.title)
        _expect(ws.oddHeader.center.text == f"Sales report: {ws.title}", ws.oddHeader.center.text)
    _expect(_sales(wb).print_title_rows == "$1:$1", _sales(wb).print_title_rows)


def _deterministic(path: Path, write_again: Callable[[Path], object] | None) -> str | None:
    if write_again is None:
        return "not checked"
    again = path.with_name(path.stem + "-again" + path.suffix)
    write_again(again)
    if again.read_bytes() != path.read_bytes():
        return "the same report written twice gives different bytes"
    with zipfile.ZipFile(again) as z:
        stamps = {i.date_time for i in z.infolist()}
    fixed = len(stamps) == 1 and next(iter(stamps))[0] == 1980  # a fixed stamp, not the time of writing
    return None if fixed else f"zip timestamps {sorted(stamps)[:2]}"
