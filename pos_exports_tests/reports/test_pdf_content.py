"""What the PDF shows first when it cuts a table (issue 14 item 4), read back with pypdf from PDFs of the
fixture archive; the expected rows come from plain SQL over the fixture POS database."""

from __future__ import annotations

import dataclasses
import re
import sqlite3

import pypdf

from pos_exports.render.pdf import render_pdf
from pos_exports.reports import audit, customers, inventory
from pos_exports.reports.model import Report
from pos_exports.reports.period import period_for

DAY = period_for("daily", "2025-03-09")


def sql(db, query: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query, args).fetchall()


def cut(report: Report, key: str, rows: int) -> Report:
    """The report with the PDF of one section cut at `rows` rows."""
    report.sections = [dataclasses.replace(s, pdf_rows=rows) if s.key == key else s for s in report.sections]
    return report


def pdf_text(report: Report, path) -> tuple[dict, str]:
    shown = render_pdf(report, path)
    return shown, "\n".join(page.extract_text() for page in pypdf.PdfReader(path).pages)


def between(text: str, start: str, end: str | None = None) -> str:
    part = text[text.index(start) :]
    return part[: part.index(end)] if end else part


def test_audit_log_latest_events_first(storage, accra, pos_sqlite, tmp_path):
    report = cut(audit.build(storage, accra, period_for("monthly", "2025-03")), "audit_logs", 3)
    shown, text = pdf_text(report, tmp_path / "audit.pdf")
    latest = [
        t[:16].replace("T", " ")
        for (t,) in sql(
            pos_sqlite, "SELECT created_at FROM audit_logs WHERE business_id = 1 ORDER BY created_at DESC, id DESC"
        )
    ]
    log = between(text, "Audit logs")
    stamps = re.findall(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", log)
    assert shown["audit_logs"] == 3 and stamps == latest[:3] == [
        "2025-03-12 10:00",
        "2025-03-10 00:00",
        "2025-03-09 23:59",
    ]
    assert f"showing 3 of {len(latest)} rows (latest first)" in text
    assert "2025-03-03 10:00" not in log


def test_audit_log_short_table_in_full_latest_first(storage, accra, tmp_path):
    report = audit.build(storage, accra, period_for("monthly", "2025-03"))
    shown, text = pdf_text(report, tmp_path / "audit.pdf")
    stamps = re.findall(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", between(text, "Audit logs"))
    assert shown["audit_logs"] == 9 and stamps == sorted(stamps, reverse=True) and len(stamps) == 9
    assert "showing" not in between(text, "Audit logs")


def test_credit_transactions_of_the_day_then_who_owes_most(storage, accra, pos_sqlite, tmp_path):
    report = cut(customers.build(storage, accra, DAY), "credit_transactions", 4)
    shown, text = pdf_text(report, tmp_path / "customers.pdf")
    end = "2025-03-10T00:00:00+00:00"
    of_the_day = [
        r
        for (r,) in sql(
            pos_sqlite,
            "SELECT reference FROM credit_transactions WHERE business_id = 1 AND created_at >= ? AND created_at < ? "
            "ORDER BY created_at DESC",
            "2025-03-09T00:00:00+00:00",
            end,
        )
    ]
    ((top, owed),) = sql(
        pos_sqlite,
        "SELECT customer_id, SUM(amount_cents) FROM credit_transactions WHERE business_id = 1 AND created_at < ? "
        "GROUP BY customer_id ORDER BY 2 DESC LIMIT 1",
        end,
    )
    latest_of_top = [
        r
        for (r,) in sql(
            pos_sqlite,
            "SELECT reference FROM credit_transactions WHERE customer_id = ? AND created_at < ? "
            "AND created_at < '2025-03-09' ORDER BY created_at DESC, id DESC",
            top,
            end,
        )
    ]
    expected = (of_the_day + latest_of_top)[:4]
    assert expected == ["R-103", "K-6", "K-5", "KP-1"] and owed == 21200  # Kwame Asante owes 212.00
    section = between(text, "Credit transactions")
    refs = re.findall(r"\b(?:R|K|KP|C|P|A|E|Y|B|BP|KA|M)-\d+\b", section)
    assert shown["credit_transactions"] == 4 and refs == expected
    assert "showing 4 of 69 rows (this period's first, latest first; then who owes most)" in text


def test_customers_who_owe_most_first_and_short_tables_in_full(storage, accra, pos_sqlite, tmp_path):
    shown, text = pdf_text(customers.build(storage, accra, DAY), tmp_path / "customers.pdf")
    expected = [
        name
        for name, _ in sql(
            pos_sqlite,
            "SELECT c.name, COALESCE(SUM(t.amount_cents), 0) AS owed FROM customers c LEFT JOIN credit_transactions t "
            "ON t.customer_id = c.id AND t.created_at < '2025-03-10' WHERE c.business_id = 1 "
            "AND c.created_at < '2025-03-10' GROUP BY c.id ORDER BY owed DESC, c.name",
        )
    ]
    details = " ".join(between(text, "Customer details", "Credit aging").split())  # a name may wrap
    assert sorted(details.index(n) for n in expected) == [details.index(n) for n in expected]
    # 69 ledger rows (the last 50 of Kofi Many's 55, and the others'): under 1.5 x 50, so all of them
    (count,) = sql(
        pos_sqlite,
        "SELECT SUM(MIN(n, 50)) FROM (SELECT COUNT(*) AS n FROM credit_transactions WHERE business_id = 1 "
        "AND created_at < '2025-03-10' GROUP BY customer_id)",
    )[0]
    assert shown["credit_transactions"] == count == 69
    assert "showing" not in between(text, "Credit transactions")


def test_inventory_out_and_low_stock_first(storage, accra, pos_sqlite, tmp_path):
    report = cut(inventory.build(storage, accra, DAY), "stock_items", 3)
    shown, text = pdf_text(report, tmp_path / "inventory.pdf")
    expected = sql(
        pos_sqlite,
        "SELECT p.sku, i.quantity FROM storefront_inventory i JOIN products p ON p.id = i.product_id "
        "WHERE p.business_id = 1 ORDER BY CASE WHEN i.quantity <= 0 THEN 0 WHEN i.quantity <= i.reorder_level "
        "THEN 1 ELSE 2 END, i.quantity",
    )
    items = between(text, "Stock items", "Reorder list")
    skus = re.findall(r"\b(?:WAT-500|JUI-1|CHP-1)\b", items)
    assert shown["stock_items"] == 3 and skus == [sku for sku, _ in expected[:3]] == ["WAT-500", "CHP-1", "JUI-1"]
    assert "showing 3 of 6 rows (out of stock, then low stock, first)" in text


def test_sales_table_shows_profit_and_margin(storage, accra, tmp_path):
    from pos_exports.reports import sales

    _, text = pdf_text(sales.build(storage, accra, period_for("weekly", "2025-03-03")), tmp_path / "sales.pdf")
    table = " ".join(text[text.index("\nSales\n", text.index("By storefront")) :].split())
    table = table[: table.index("Line items")]
    assert "Profit (GHS)" in table and "Margin %" in table
    # R-101 by hand: net 12.00, COGS 8.00, profit 4.00, margin 33.33%
    assert re.search(r"R-101 .*?12\.00 8\.00 4\.00 33\.33%", table)
    assert "3 more column(s) in the XLSX/CSV: Type, Subtotal, Paid" in table
