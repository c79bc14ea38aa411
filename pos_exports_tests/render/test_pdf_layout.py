"""PDF layout (issue 14 item 5), read back with pypdf: words kept whole, no table starting with one row at the
bottom of a page, "Page X of Y", right-to-left names in reading order, chart labels drawn per script."""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from decimal import Decimal

import arabic_reshaper
import pyarrow as pa
import pypdf
from bidi.algorithm import get_display

from pos_exports.render.pdf import cell_text, render_pdf, visual_line
from pos_exports.reports.audit import LOG_COLUMNS
from pos_exports.reports.model import Chart, Column, table_section
from pos_exports_tests.render.sample import TOKYO, TZ, sample_report

EVENT_TYPES = ["sale_created", "credit_limit_changed", "payment_received", "stock_transferred"]
EMAILS = ["kwame.asante.accounts@example-trading.com", "esi@example.com", None]
AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def pages_text(path) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(path).pages]


def audit_table(n: int) -> pa.Table:
    when = dt.datetime(2025, 3, 9, 8, tzinfo=TOKYO)
    return pa.table(
        {
            "created_at": pa.array(
                [when + dt.timedelta(minutes=i) for i in range(n)], pa.timestamp("us", tz="Asia/Tokyo")
            ),
            "event_type": [EVENT_TYPES[i % 4] for i in range(n)],
            "user_email": [EMAILS[i % 3] for i in range(n)],
            "user_name": ["Kwame Asante-Mensah" if i % 3 == 0 else "Esi Boateng" for i in range(n)],
            "ip_address": ["192.168.100.200" if i % 2 else "2001:db8::8a2e:370:7334" for i in range(n)],
            "user_agent": [AGENT if i % 2 else "pos-terminal/4.2.1" for i in range(n)],
            "sale_id": pa.array([1000 + i for i in range(n)], pa.int64()),
            "customer_id": pa.array([None] * n, pa.int64()),
            "payment_id": pa.array([5000 + i for i in range(n)], pa.int64()),
            "refund_id": pa.array([None] * n, pa.int64()),
            "description": [f"Sale R-{1000 + i} completed at the Osu storefront by the cashier" for i in range(n)],
            "event_data": [
                json.dumps({"total": "13.20", "items": i, "receipt": f"R-{1000 + i}"}, indent=2) for i in range(n)
            ],
        }
    )


def test_audit_cells_wrap_at_word_boundaries(tmp_path):
    table = audit_table(12)
    path = tmp_path / "audit.pdf"
    render_pdf(sample_report([table_section("audit_logs", "Audit logs", LOG_COLUMNS, table)]), path)
    text = "\n".join(pages_text(path))
    shown = text[text.index("Audit logs") :].split()
    # every word on the table's pages is a whole word of a cell, a header or the footer (a cell cut at three
    # lines ends with "…" after a whole word): nothing like `sale_create|d`, `IP ad|dress`
    words = {w for c in LOG_COLUMNS for v in table[c.name].to_pylist() for w in cell_text(v, c.kind, TZ).split()}
    words |= {w for c in LOG_COLUMNS for w in c.header.split()} | set("Sales report · 9 Mar 2025 Page of 1 2".split())
    words |= set("Café Łódź 王 & Co Audit logs".split())
    broken = sorted({w for w in shown if w.rstrip("…") and w.rstrip("…") not in words})  # a lone "…" ends a cut cell
    assert not broken, broken
    assert {
        "Sale",  # event types are shown as words (`sale_created` as "Sale created")
        "Credit",
        "changed",
        "kwame.asante.accounts@example-trading.com",
        "IP",
        "address",
    } <= set(shown)
    assert "Customer" in shown and "Description" in shown


def test_page_x_of_y(tmp_path):
    path = tmp_path / "long.pdf"
    section = table_section("audit_logs", "Audit logs", LOG_COLUMNS, audit_table(60))
    render_pdf(sample_report([section]), path)
    texts = pages_text(path)
    assert len(texts) >= 3
    for number, text in enumerate(texts, 1):
        assert re.findall(r"Page \d+ of \d+", text) == [f"Page {number} of {len(texts)}"]


def test_no_table_starts_with_a_single_row_at_the_bottom_of_a_page(tmp_path):
    cols = (Column("ref", "Ref"), Column("amount", "Amount", "money"))

    def rows(prefix: str, n: int) -> pa.Table:
        return pa.table(
            {"ref": [f"{prefix}{i}" for i in range(n)], "amount": pa.array([Decimal("1.00")] * n, pa.decimal128(18, 2))}
        )

    pages_of_second = set()
    for n in range(8, 40):
        first = table_section("first", "First table", cols, rows("F-", n), pdf_rows=500)
        second = table_section("second", "Second table", cols, rows("S-", 5))
        path = tmp_path / f"r{n}.pdf"
        render_pdf(sample_report([first, second]), path)
        texts = pages_text(path)
        (page,) = [i for i, t in enumerate(texts) if "Second table" in t]
        pages_of_second.add(page)
        on_that_page = re.findall(r"\bS-\d+\b", texts[page])
        assert len(on_that_page) >= 2, (n, on_that_page)  # the heading, the header row and 2 rows at least
    assert len(pages_of_second) == 2  # the first table grew past a page end: both sides of the edge were tried


def test_right_to_left_business_name_in_reading_order(tmp_path):
    name = "متجر فاطمة 2"
    # the name on its own in visual order (bidi of the name alone), between the title and the period
    line = visual_line(["Sales report", name, "9 Mar 2025"])
    assert line == f"Sales report · {get_display(arabic_reshaper.reshape(name))} · 9 Mar 2025"
    report = sample_report()
    report.business_name = name
    path = tmp_path / "rtl.pdf"
    render_pdf(report, path)
    footer = unicodedata.normalize("NFKC", pages_text(path)[0].splitlines()[0])
    # pypdf puts RTL runs back in logical order itself; what it cannot undo is a digit of the period pulled
    # into the name (bidi over the whole line gave "Sales report · 9 · <name> Mar 2025")
    assert footer.startswith("Sales report · ") and footer.endswith("· 9 Mar 2025"), footer
    middle = footer[len("Sales report · ") : -len("· 9 Mar 2025")]
    assert sorted(middle.split()) == sorted(name.split())


def test_chart_labels_mixing_scripts_drawn_per_run(tmp_path):
    report = sample_report([])
    report.chart = Chart("Net revenue by storefront", ("東京 Shibuya 店", "Osu"), (10.0, 5.0))
    path = tmp_path / "chart.pdf"
    render_pdf(report, path)
    drawn: list[tuple[str, str]] = []

    def visit(text, cm, tm, font, size):
        if text.strip() and font is not None:
            drawn.append((text, str(font["/BaseFont"]).split("+")[-1]))

    pypdf.PdfReader(path).pages[0].extract_text(visitor_text=visit)
    fonts = {text.strip(): font for text, font in drawn}
    assert fonts.get("東京") == "DroidSansFallback" and fonts.get("店") == "DroidSansFallback"
    assert fonts.get("Shibuya") == "DejaVuSans" and fonts.get("Osu") == "DejaVuSans"
