"""The export email as received by a real SMTP server (aiosmtpd): the figures that matter per dataset with their
currency, the CSV tables zipped, names that say whose file it is. Expected figures are worked out by hand from
the fixture's rows (pos_exports_tests/fixtures.py)."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from pos_exports.archive.read import load_businesses
from pos_exports.core.clock import utc_now
from pos_exports.delivery import subscriptions as subs
from pos_exports.delivery.deliver import deliver
from pos_exports.delivery.email import SmtpSettings
from pos_exports.state import engine
from pos_exports.storage.base import LocalStorage
from pos_exports_tests import fixtures
from pos_exports_tests.exports.names import CSV_TABLES

WEEK = "2025-03-03"
OWNER = "owner@accra.example"

# Accra Shop (GHS), Monday 3 to Sunday 9 March 2025:
# sales R-101 (3.00 + 9.00 net), R-102 (5.00), R-105 (4.00) = 21.00 net revenue from 3 sales; COGS 11.00, so
# 10.00 gross profit; one refund of 2.50 (R-105's, on the 9th).
# customers as of the 9th: Ama Mensah's 50.00 charge of 1 Jan less the 20.00 payment of 1 Feb (oldest first) =
# 30.00 aged 67 days, plus 30.00 charged on the 9th: 60.00 outstanding, nothing aged 91 days or more.
# inventory: Osu 10 x 1.00 = 10.00 at cost (in stock, reorder level 5); Makola -2 (out of stock): 1 to reorder.
# audit log: sale_completed, customer_updated, report_exported on the 9th (the login is on the 10th).
EXPECTED = {
    "Sales": [("Net sales", "GHS 18.50"), ("Refunds", "GHS 2.50"), ("Number of sales", "3"), ("Profit", "GHS 10.00")],
    "Customers": [("Total outstanding", "GHS 60.00"), ("Owed for 91+ days", "GHS 0.00")],
    "Inventory": [("Stock value (at cost)", "GHS 10.00"), ("Items to reorder", "1")],
    "Audit log": [
        ("Events", "3"),
        ("Top event types", "Customer updated (1), Report exported (1), Sale completed (1)"),
    ],
}


@pytest.fixture
def state(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", url)
    return engine(url)


def _deliver(root, state, smtp_server, business_id: int, formats: list[str], datasets: list[str]):
    sub = subs.add(
        state,
        subs.validate(
            {
                "business_id": business_id,
                "name": "Weekly",
                "datasets": datasets,
                "formats": formats,
                "frequency": "weekly",
                "day_of_week": "monday",
                "at": "07:00",
                "recipients": [OWNER],
            }
        ),
        now=utc_now(),
    )
    storage = LocalStorage(root)
    business = {b.id: b for b in load_businesses(storage)}[business_id]
    smtp = SmtpSettings.from_url(smtp_server.url())
    outcome = deliver(
        state, storage, sub, business, "weekly", WEEK, run_id="r1", smtp=smtp, outbox_dir=root, clock=utc_now
    )
    assert outcome.status == "sent", outcome.message
    [received] = smtp_server.handler.delivered_to(OWNER)
    return received


def test_the_summary_shows_each_datasets_figures_with_currency(archived_root, state, smtp_server):
    datasets = ["sales", "customers", "inventory", "audit_log"]
    message = _deliver(archived_root, state, smtp_server, 1, ["pdf"], datasets).message
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content()
    for heading, figures in EXPECTED.items():
        assert re.search(rf"^{heading}$", text, re.M), heading
        assert f">{heading}</div>" in html, heading
        for label, value in figures:
            assert re.search(rf"^  {re.escape(label)} +{re.escape(value)}$", text, re.M), (label, value)
            assert re.search(rf">{re.escape(label)}</td><td [^>]*>{re.escape(value)}</td>", html), (label, value)
    # the headings follow the subscription's order, and no figure is prefixed with its dataset's code
    assert [text.index(f"\n{h}\n") for h in EXPECTED] == sorted(text.index(f"\n{h}\n") for h in EXPECTED)
    assert "sales:" not in text and "audit_log:" not in text and "sales:" not in html
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:|\d\d:\d\d:\d\d", text + html)  # no raw timestamps


def test_csv_tables_arrive_zipped_under_names_that_say_whose_they_are(archived_root, state, smtp_server):
    """東京ショップ has no ASCII letters: its ASCII names say `business-2`; the original is the RFC 2231 name."""
    received = _deliver(archived_root, state, smtp_server, 2, ["csv", "xlsx"], ["sales"])
    parts = {p.get_filename(): p for p in received.message.iter_attachments()}
    assert sorted(parts) == [f"business-2_sales_{WEEK}.csv.zip", f"business-2_sales_{WEEK}.xlsx"]
    raw = received.data.decode()  # as sent
    assert f"filename*=utf-8''{quote(f'東京ショップ_sales_{WEEK}.csv.zip')}" in raw
    assert f"filename*=utf-8''{quote(f'東京ショップ_sales_{WEEK}.xlsx')}" in raw
    zipped = parts[f"business-2_sales_{WEEK}.csv.zip"]
    assert zipped.get_content_type() == "application/zip"
    folder = archived_root / f"exports/2/weekly/{WEEK}"
    with zipfile.ZipFile(io.BytesIO(zipped.get_payload(decode=True))) as archive:
        members = archive.infolist()
        names = [m.filename for m in members]
        stored = ["sales.csv", "sales-summary.csv", *sorted(f"sales{p}.csv" for p in CSV_TABLES["sales"][2:])]
        assert names == [f"business-2_{n.removesuffix('.csv')}_{WEEK}.csv" for n in stored]  # main table first
        for member, name in zip(members, stored, strict=True):
            data = archive.read(member)
            assert data == (folder / name).read_bytes(), name  # the stored file, byte for byte
            assert member.date_time == (1980, 1, 1, 0, 0, 0)  # fixed: a resend carries the same zip
            pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")  # each member is one table
        sales = pd.read_csv(io.BytesIO(archive.read(members[0])), encoding="utf-8-sig")
    assert sorted(sales["Receipt"]) == _fixture_receipts(2, "Asia/Tokyo")


def _fixture_receipts(business_id: int, zone: str) -> list[str]:
    """The fixture's counted sales of the business completed in the week (its local days), from its rows."""
    days = {dt.date(2025, 3, 3) + dt.timedelta(days=i) for i in range(7)}
    return sorted(
        s[5]
        for s in fixtures.SALES
        if s[1] == business_id
        and s[7] in ("completed", "refunded", "partially_refunded")
        and s[14] is not None
        and dt.datetime.fromisoformat(s[14]).astimezone(ZoneInfo(zone)).date() in days
    )
