"""The demo's files opened as a business owner would (openpyxl, pandas, pypdf): sheet names that are whole words,
print set-up, no "Generated" line that would only repeat the period's end, codes shown as words outside CSV,
and plausible refunds (net sales after refunds positive)."""

from __future__ import annotations

import re
import zipfile
from decimal import Decimal

import openpyxl
import pandas as pd
import pypdf

from pos_exports.archive.tables import DATASETS
from pos_exports.render.text import code_word

SHEETS = {  # by hand: every section's sheet, in the workbook's order
    "sales": [
        "Summary",
        "Previous period",
        "Top products (by net revenue)",
        "Top categories (by net revenue)",
        "Sales by cashier",
        "By storefront",
        "By payment type",
        "Sales",
        "Line items",
    ],
    "customers": ["Summary", "Customer details", "Credit aging", "Credit transactions"],
    "inventory": ["Summary", "By storefront", "Stock items", "Reorder list"],
    "audit_log": ["Summary", "Events by type", "Top users", "Audit logs"],
}


def test_sheet_names_are_whole_words(demo):
    _, folders = demo
    for folder in folders.values():
        for dataset, expected in SHEETS.items():
            assert openpyxl.load_workbook(folder / f"{dataset}.xlsx", read_only=True).sheetnames == expected


def test_xlsx_prints_one_page_wide_with_the_header_on_every_page(demo):
    _, folders = demo
    for folder in folders.values():
        for dataset in DATASETS:
            path = folder / f"{dataset}.xlsx"
            wb = openpyxl.load_workbook(path)
            for ws in wb.worksheets:
                setup = ws.page_setup
                assert setup.orientation == "landscape", (path.name, ws.title)
                assert ws.sheet_properties.pageSetUpPr.fitToPage, (path.name, ws.title)
                # fitToWidth absent means 1 (ECMA-376 default); fitToHeight 0: as many pages down as needed
                assert setup.fitToWidth in (None, 1) and setup.fitToHeight == 0, (path.name, ws.title)
                assert ws.oddFooter.right.text == "Page &P of &N"
                if ws.title != "Summary":
                    assert ws.print_title_rows == "$1:$1", (path.name, ws.title)
            with zipfile.ZipFile(path) as z:  # the raw XML says the same as openpyxl
                for name in z.namelist():
                    if name.startswith("xl/worksheets/sheet"):
                        xml = z.read(name).decode()
                        assert 'fitToHeight="0"' in xml and not re.search(r'fitToWidth="(?!1")', xml), name


def test_no_generated_line_repeating_the_period_end(demo):
    """Files carry no generation time (re-rendering gives the same bytes); the period says what they cover."""
    _, folders = demo
    for folder in folders.values():
        for dataset in DATASETS:
            summary = pd.read_csv(folder / f"{dataset}-summary.csv", encoding="utf-8-sig", dtype=str)
            assert "Generated" not in set(summary["Figure"]) and "Period" in set(summary["Figure"])
            labels = [row[0] for row in openpyxl.load_workbook(folder / f"{dataset}.xlsx")["Summary"].values]
            assert "Generated" not in labels and "Period" in labels
            pages = pypdf.PdfReader(folder / f"{dataset}.pdf").pages
            assert "Generated" not in "".join(page.extract_text() for page in pages)


def test_codes_are_words_in_xlsx_and_pdf_and_codes_in_csv(demo):
    _, folders = demo
    words = {"Out of stock", "Low stock"}
    for folder in folders.values():
        sheet = openpyxl.load_workbook(folder / "inventory.xlsx")["Reorder list"]
        column = [row[4] for row in sheet.values]
        assert column[0] == "Stock status" and set(column[1:]) <= words and column[1:]
        csv = pd.read_csv(folder / "inventory-reorder_list.csv", encoding="utf-8-sig")
        assert set(csv["Stock status"]) <= {"out_of_stock", "low_stock"}
        assert len(csv) == len(column) - 1
        # the audit chart's labels (event types) are words, as in its table
        first = pypdf.PdfReader(folder / "audit_log.pdf").pages[0].extract_text()
        assert "Sale created" in first and "sale_created" not in first


def test_pdf_pages_are_a4_landscape_and_numbered(demo):
    _, folders = demo
    for folder in folders.values():
        for dataset in DATASETS:
            reader = pypdf.PdfReader(folder / f"{dataset}.pdf")
            n = len(reader.pages)
            for i, page in enumerate(reader.pages, 1):
                assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (842, 595)
                assert f"Page {i} of {n}" in page.extract_text()


def test_demo_refunds_leave_net_sales_positive(demo):
    """The demo's refunds are a plausible share of its sales: net sales after refunds stay above zero and
    below net revenue on the exported day of every business."""
    _, folders = demo
    for business_id, folder in folders.items():
        summary = pd.read_csv(folder / "sales-summary.csv", encoding="utf-8-sig", dtype=str)
        figures = dict(zip(summary["Figure"], summary["Value"], strict=True))
        net, refunds = Decimal(figures["Net revenue"]), Decimal(figures["Refunds issued"])
        after = Decimal(figures["Net sales after refunds (net revenue - refunds issued)"])
        assert after == net - refunds and 0 < after <= net, business_id
        assert refunds < net / 4, business_id


def test_snapshot_notes_say_the_capture_time_in_the_business_zone(demo):
    """No raw ISO instant (`2026-12-02T14:46:01.606412+00:00`) in what an owner reads."""
    _, folders = demo
    for folder in folders.values():
        for dataset in ("customers", "inventory"):
            summary = pd.read_csv(folder / f"{dataset}-summary.csv", encoding="utf-8-sig", dtype=str)
            notes = summary.loc[summary["Figure"] == "Note", "Value"]
            [note] = [v for v in notes if "as of the end of" in v]
            zone = summary.loc[summary["Figure"] == "Time zone", "Value"].item()
            assert re.search(rf", captured \d{{4}}-\d\d-\d\d \d\d:\d\d \({re.escape(zone)}\)\.", note), note
            assert not re.search(r"\d\dT\d\d:", note), note


def test_a_short_pdf_section_stays_on_one_page_with_its_title(demo):
    """Issue 14: the audit PDF's "Events by type" table (11 rows) began at the foot of page 1 and went on
    on page 2; a section that fits on a page is now kept whole with its title (pypdf text per page)."""
    _, folders = demo
    for folder in folders.values():
        types = pd.read_csv(folder / "audit_log-event_types.csv", encoding="utf-8-sig")
        pages = [page.extract_text().splitlines() for page in pypdf.PdfReader(folder / "audit_log.pdf").pages]
        header = ["Event type", "Events"]  # the table's header row (the audit log's own starts "Date/time")
        with_header = [i for i, lines in enumerate(pages) if _at(header, lines) is not None]
        assert len(with_header) == 1, (folder, with_header)  # the header row is never repeated on a next page
        lines = [line.strip() for line in pages[with_header[0]]]
        at = _at(header, lines)
        assert lines[at - 1] == "Events by type", lines[at - 1 : at + 2]
        rows = list(zip(lines[at + 2 :: 2], lines[at + 3 :: 2], strict=False))[: len(types)]
        expected = [(code_word(t), str(n)) for t, n in zip(types["Event type"], types["Events"], strict=True)]
        assert rows == expected
        # the chart of the same name keeps its title too: both on page 1, with the chart's labels
        assert "Events by type" in pages[0] and code_word(types["Event type"][0]) in pages[0]


def _at(run: list[str], lines: list[str]) -> int | None:
    """Where `run` starts as consecutive (stripped) lines of `lines`, or None."""
    lines = [line.strip() for line in lines]
    return next((i for i in range(len(lines)) if lines[i : i + len(run)] == run), None)
