"""Every produced file (XLSX, CSV, PDF) of the week 3-9 Mar 2025, opened and checked against the figures
worked out by hand in test_sales.py, test_customers.py, test_inventory.py and test_audit.py."""

from __future__ import annotations

import csv
import io

import openpyxl
import pypdf
import pytest

from pos_exports.exports.produce import export_period
from pos_exports.reports.period import period_for

WEEK = period_for("weekly", "2025-03-03")


@pytest.fixture(scope="module")
def files(storage, accra):
    folder, _ = export_period(
        storage,
        accra,
        WEEK,
        ["sales", "customers", "inventory", "audit_log"],
        ["xlsx", "csv", "pdf"],
        folder="exports/1/test-files",
    )
    return storage.path(folder)


def _csv(path) -> list[list[str]]:
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def _csv_figure(path, label):
    """A figure of the dataset's summary file (`sales.csv` -> `sales-summary.csv`)."""
    rows = _csv(path.with_name(f"{path.stem}-summary.csv"))
    assert rows[0] == ["Figure", "Value"]
    return next(r[1] for r in rows if r and r[0] == label)


def _xlsx_figure(path, label):
    for row in openpyxl.load_workbook(path)["Summary"].iter_rows():
        cells = [c for c in row if c.value is not None]
        if cells and cells[0].value == label:
            return cells[1]
    raise AssertionError(label)


def _section(path) -> list[list[str]]:
    """The rows of a one-table CSV file (header first; every row as wide as the header)."""
    rows = _csv(path)
    assert all(len(r) == len(rows[0]) for r in rows)
    return rows


def _pdf_text(path) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(path).pages)


@pytest.mark.parametrize(
    ("label", "value"),
    [
        ("Net revenue", "39.50"),
        ("Tax", "1.75"),
        ("Discounts", "3.00"),
        ("COGS", "28.60"),
        ("Gross profit", "10.90"),
        ("Payments received", "29.25"),
        ("Refunds issued", "11.00"),
    ],
)
def test_sales_figures_in_csv_xlsx_pdf(files, label, value):
    assert _csv_figure(files / "sales.csv", label) == value
    cell = _xlsx_figure(files / "sales.xlsx", label)
    assert isinstance(cell.value, float | int) and f"{cell.value:.2f}" == value and "0.00" in cell.number_format
    assert value in _pdf_text(files / "sales.pdf")


def test_sales_margin_is_a_percentage(files):
    cell = _xlsx_figure(files / "sales.xlsx", "Margin %")
    assert cell.value == pytest.approx(10.90 / 39.50) and "%" in cell.number_format
    assert _csv_figure(files / "sales.csv", "Margin %") == "27.59"


def test_credit_aging_buckets_and_statuses_in_the_files(files):
    for label, value in [
        ("Total outstanding", "490.20"),
        ("Aged 0-30 days", "278.20"),
        ("Aged 31-60 days", "75.00"),
        ("Aged 61-90 days", "117.00"),
        ("Aged 91+ days", "20.00"),
    ]:
        assert _csv_figure(files / "customers.csv", label) == value
        assert f"{_xlsx_figure(files / 'customers.xlsx', label).value:.2f}" == value
    aging = _section(files / "customers-credit_aging.csv")
    header, body = aging[0], {r[1].split()[0]: dict(zip(aging[0], r, strict=True)) for r in aging[1:]}
    kwame = body["Kwame"]
    buckets = [kwame[h] for h in header if h.startswith(("0-30", "31-60", "61-90", "91"))]
    assert buckets == ["52.00", "30.00", "110.00", "20.00"]  # FIFO: the 80.00 payment settles the oldest charge
    assert kwame[next(h for h in header if "status" in h.lower())] == "near_limit"  # exactly 80 %
    efua = body["Efua"]
    assert efua[next(h for h in header if "status" in h.lower())] == "near_limit"  # exactly 100 %
    details = _section(files / "customers.csv")
    abena = next(dict(zip(details[0], r, strict=True)) for r in details[1:] if r[1].startswith("Abena"))
    assert "-15.00" in abena.values()  # in credit: a negative balance
    sheet = openpyxl.load_workbook(files / "customers.xlsx")["Credit aging"]
    assert sheet.freeze_panes == "A2"


def test_stock_status_and_valuation_with_a_negative_quantity(files):
    items = _section(files / "inventory.csv")
    rows = {(r[1], r[3]): dict(zip(items[0], r, strict=True)) for r in items[1:]}
    water = rows[("Makola", "Water")]
    status = next(h for h in items[0] if "status" in h.lower())
    cost = next(h for h in items[0] if h.lower().startswith("value at cost"))
    assert (water["Quantity"], water[status], water[cost]) == ("-2", "out_of_stock", "0.00")
    assert rows[("Osu", "Juice")][status] == "low_stock"
    assert _csv_figure(files / "inventory.csv", "Total value at cost") == "106.00"
    assert _csv_figure(files / "inventory.csv", "Total value at retail") == "145.00"
    ws = openpyxl.load_workbook(files / "inventory.xlsx")["Stock items"]
    header = [c.value for c in ws[1]]
    quantities = [r[header.index("Quantity")] for r in ws.iter_rows(min_row=2, values_only=True)]
    assert -2 in quantities  # a number, not text


def test_audit_counts_and_top_users(files):
    types = _section(files / "audit_log-event_types.csv")
    assert [r[:2] for r in types[1:]] == [
        ["sale_completed", "2"],
        ["user_login", "2"],
        ["customer_updated", "1"],
        ["refund_issued", "1"],
        ["report_exported", "1"],
    ]
    users = _section(files / "audit_log-top_users.csv")
    assert [r[1] for r in users[1:3]] == ["kofi@example.com", "esi@example.com"]
    assert [r[-1] for r in users[1:3]] == ["4", "2"]
    assert "Kofi Owusu" in _pdf_text(files / "audit_log.pdf")
