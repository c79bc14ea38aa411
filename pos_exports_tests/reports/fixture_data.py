"""A hand-built POS database for the report tests; every expected figure is worked out by hand in the tests.

Business 1 `Accra Shop` (Africa/Accra, UTC+0 all year: local date = UTC date). The weeks under test are
Mon 2025-03-03 .. Sun 2025-03-09 and Mon 2025-03-10 .. Sun 2025-03-16; the month is March 2025.
Business 2 `NY Shop` (America/New_York) shares nothing with business 1 and its rows must never leak into
business 1's reports; its week of 2025-03-03 contains the start of DST (Sunday 2025-03-09).
Amounts are integer cents, as in the POS.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from pos_exports.archive.extract import archive_business_day
from pos_exports.archive.tables import DATASETS
from pos_exports.periods import day_window
from pos_exports.source.database import Business, connect, list_businesses
from pos_exports.storage.base import LocalStorage

SCHEMA = Path(__file__).resolve().parents[2] / "pos_exports" / "source" / "pos_source_schema.sql"
OLD = "2024-06-01T08:00:00+00:00"

# fmt: off
BUSINESSES = [
    (1, "Accra Shop", "Africa/Accra", "GHS", True, OLD),
    (2, "NY Shop", "America/New_York", "USD", True, OLD),
]
STOREFRONTS = [(11, "Osu", None, OLD), (12, "Makola", None, OLD), (31, "SoHo", None, OLD)]
BUSINESS_STOREFRONTS = [(1, 11), (1, 12), (2, 31)]
USERS = [
    (1, "kofi@example.com", "Kofi", "Owusu", True),
    (2, "esi@example.com", "Esi", "Boateng", True),
    (3, "yaw@example.com", "Yaw", "Nyarko", True),
]
MEMBERSHIPS = [(1, 1, "owner", True), (1, 2, "cashier", True), (2, 3, "owner", True)]
CATEGORIES = [(1, 1, "Drinks"), (2, 1, "Snacks"), (3, 2, "Bakery")]
PRODUCTS = [
    (1, 1, 1, "Water", "WAT-500", "600001", "bottle", True, OLD),
    (2, 1, 1, "Juice", "JUI-1", None, "unit", True, OLD),
    (3, 1, 2, "Chips", "CHP-1", None, "bag", True, OLD),
    (31, 2, 3, "Bagel", "BAG-1", None, "unit", True, OLD),
]
# (storefront, product, quantity, reorder level, unit cost, selling price, updated)
INVENTORY = [
    (11, 1, 10, 5, 100, 150, OLD),  # in_stock
    (12, 1, -2, 5, 100, 150, OLD),  # out_of_stock, negative quantity
    (11, 2, 5, 5, 600, 1000, OLD),  # low_stock (quantity == reorder level)
    (11, 3, 0, 2, 120, 200, OLD),  # out_of_stock (0)
    (12, 3, 40, 10, 120, 200, OLD),  # in_stock
    (12, 2, 3, 0, 600, 0, OLD),  # in_stock, free sample: selling price 0
    (31, 31, 7, 2, 100, 250, OLD),  # business 2
]
# (id, business, name, email, phone, address, type, credit limit, active, blocked, created)
CUSTOMERS = [
    (1001, 1, "Ama Mensah", "ama@example.com", "+233 20 000", "Osu, Accra", "retail", 10000, True, False,
     OLD),
    (1002, 1, "Kwame Asante", None, None, None, "wholesale", 26500, True, False, OLD),
    (1003, 1, "Efua Sarpong", None, None, None, "retail", 5000, True, False, OLD),
    (1004, 1, "Yaw Boateng", None, None, None, "retail", 2000, True, False, OLD),
    (1005, 1, "Abena Owusu", None, None, None, "retail", 0, True, False, OLD),
    (1006, 1, "Kojo Appiah", None, None, None, "wholesale", 10000, False, True, OLD),
    (1007, 1, "Adwoa Darko", None, None, None, "retail", 10000, True, False, OLD),
    (1008, 1, "Late Comer", None, None, None, "retail", 0, True, False, "2025-03-10T09:00:00+00:00"),
    (1009, 1, "Kofi Many", None, None, None, "retail", 0, True, False, OLD),
    (2001, 2, "New Yorker", None, None, None, "retail", 5000, True, False, OLD),
]


def _z(day: str, time: str = "12:00:00") -> str:
    return f"{day}T{time}+00:00"


# (id, business, customer, sale, kind, amount, reference, description, created)
CREDIT = [
    (1, 1, 1001, None, "charge", 4000, "C-1", "opening", _z("2024-12-01", "10:00:00")),
    (2, 1, 1001, None, "charge", 3000, "C-2", None, _z("2025-01-20", "10:00:00")),
    (3, 1, 1001, None, "payment", -5000, "P-1", None, _z("2025-02-01", "10:00:00")),
    (4, 1, 1001, None, "charge", 2500, "C-3", None, _z("2025-02-15", "10:00:00")),
    (5, 1, 1001, None, "adjustment", -500, "A-1", "goodwill", _z("2025-03-01", "10:00:00")),
    (6, 1, 1001, 101, "charge", 1320, "R-101", None, _z("2025-03-03", "10:00:00")),
    (7, 1, 1001, None, "charge", 700, "C-4", None, _z("2025-03-10", "09:00:00")),  # after the week
    (11, 1, 1002, None, "charge", 10000, "K-1", None, _z("2024-12-08")),
    (12, 1, 1002, None, "charge", 5000, "K-2", None, _z("2024-12-09")),
    (13, 1, 1002, None, "charge", 6000, "K-3", None, _z("2025-01-07")),
    (14, 1, 1002, None, "charge", 2000, "K-4", None, _z("2025-01-08")),
    (15, 1, 1002, None, "payment", -8000, "KP-1", None, _z("2025-02-06", "09:00:00")),
    (16, 1, 1002, None, "charge", 1000, "K-5", None, _z("2025-02-06", "15:00:00")),
    (17, 1, 1002, None, "charge", 4000, "K-6", None, _z("2025-02-07")),
    (18, 1, 1002, 103, "charge", 1200, "R-103", None, _z("2025-03-09", "23:30:00")),
    (21, 1, 1003, None, "charge", 5000, "E-1", None, _z("2025-03-08")),
    (22, 1, 1004, None, "charge", 3000, "Y-1", None, _z("2025-03-01")),
    (23, 1, 1005, None, "charge", 1000, "B-1", None, _z("2025-02-01")),
    (24, 1, 1005, None, "payment", -2500, "BP-1", "overpaid", _z("2025-02-10")),
    (25, 1, 1006, None, "charge", 9000, "KA-1", None, _z("2025-03-02")),
    # Kofi Many: 55 charges of 1.00, one a day from 2025-01-01 to 2025-02-24
    *(
        (100 + k, 1, 1009, None, "charge", 100, f"M-{k + 1}", None,
         _z((dt.date(2025, 1, 1) + dt.timedelta(k)).isoformat()))
        for k in range(55)
    ),
    (201, 2, 2001, None, "charge", 9999, "NY-1", None, "2025-03-05T12:00:00-05:00"),
]
# (id, business, storefront, customer, user, receipt, type, status, payment type, subtotal, discount, tax,
#  total, created, completed)
SALES = [
    (101, 1, 11, 1001, 1, "R-101", "retail", "completed", "cash", 1300, 100, 120, 1320,
     _z("2025-03-03", "09:55:00"), _z("2025-03-03", "10:00:00")),
    (102, 1, 12, None, 2, "R-102", "retail", "partially_refunded", "card", 600, 50, 55, 605,
     _z("2025-03-05", "15:25:00"), _z("2025-03-05", "15:30:00")),
    (103, 1, 11, 1002, 1, "R-103", "wholesale", "completed", "credit", 1200, 0, 0, 1200,
     _z("2025-03-09", "23:25:00"), _z("2025-03-09", "23:30:00")),
    (104, 1, 11, None, 1, "R-104", "retail", "cancelled", "cash", 150, 0, 0, 150,
     _z("2025-03-04", "11:00:00"), None),
    (105, 1, 11, None, 1, "R-105", "retail", "draft", "cash", 1000, 0, 0, 1000, _z("2025-03-06"), None),
    (106, 1, 11, None, 2, "R-106", "retail", "refunded", "cash", 1000, 0, 0, 1000,
     _z("2025-03-06", "08:55:00"), _z("2025-03-06", "09:00:00")),
    (107, 1, 12, None, 2, "R-107", "retail", "completed", "cash", 200, 0, 0, 200,
     _z("2025-02-28"), _z("2025-02-28")),
    (108, 1, 11, None, 1, "R-108", "retail", "completed", "cash", 150, 150, 0, 0,
     _z("2025-03-07", "07:59:00"), _z("2025-03-07", "08:00:00")),
    (109, 1, 12, None, 2, "R-109", "retail", "completed", "mobile_money", 400, 0, 40, 440,
     _z("2025-03-12", "13:59:00"), _z("2025-03-12", "14:00:00")),
    (110, 1, 11, None, 1, "R-110", "retail", "completed", "cash", 150, 0, 0, 150,
     _z("2025-03-09", "23:59:00"), _z("2025-03-10", "00:00:00")),
    (301, 2, 31, None, 3, "N-301", "retail", "completed", "card", 250, 0, 0, 250,
     "2025-03-03T00:20:00-05:00", "2025-03-03T00:30:00-05:00"),
    (302, 2, 31, None, 3, "N-302", "retail", "completed", "card", 350, 0, 0, 350,
     "2025-03-09T23:20:00-04:00", "2025-03-09T23:30:00-04:00"),
    (303, 2, 31, None, 3, "N-303", "retail", "completed", "card", 450, 0, 0, 450,
     "2025-03-10T00:05:00-04:00", "2025-03-10T00:10:00-04:00"),
    (304, 2, 31, None, 3, "N-304", "retail", "completed", "card", 550, 0, 0, 550,
     "2025-03-02T23:45:00-05:00", "2025-03-02T23:50:00-05:00"),
]
# (id, sale, product, quantity, unit price, unit cost, discount, tax, total)
SALE_ITEMS = [
    (1, 101, 1, 2, 150, 100, 0, 30, 330),
    (2, 101, 2, 1, 1000, 600, 100, 90, 990),
    (3, 102, 3, 3, 200, 120, 50, 55, 605),
    (4, 103, 1, 10, 120, 100, 0, 0, 1200),
    (5, 104, 1, 1, 150, 100, 0, 0, 150),
    (6, 105, 2, 1, 1000, 600, 0, 0, 1000),
    (7, 106, 2, 1, 1000, 600, 0, 0, 1000),
    (8, 107, 3, 1, 200, 120, 0, 0, 200),
    (9, 108, 1, 1, 150, 100, 150, 0, 0),
    (10, 109, 3, 2, 200, 120, 0, 40, 440),
    (11, 110, 1, 1, 150, 100, 0, 0, 150),
    (31, 301, 31, 1, 250, 100, 0, 0, 250),
    (32, 302, 31, 1, 350, 100, 0, 0, 350),
    (33, 303, 31, 1, 450, 100, 0, 0, 450),
    (34, 304, 31, 1, 550, 100, 0, 0, 550),
]
# (id, business, sale, method, amount, created)
PAYMENTS = [
    (1, 1, 101, "cash", 1320, _z("2025-03-03", "10:00:00")),
    (2, 1, 102, "card", 605, _z("2025-03-05", "15:30:00")),
    (3, 1, 106, "cash", 1000, _z("2025-03-06", "09:00:00")),
    (4, 1, 103, "cash", 1200, _z("2025-03-12", "08:00:00")),  # sale of week 1, paid in week 2
    (5, 1, 109, "mobile_money", 440, _z("2025-03-12", "14:00:00")),
    (6, 1, 110, "cash", 150, _z("2025-03-10", "00:00:00")),
    (7, 1, 107, "cash", 200, _z("2025-02-28")),
    (31, 2, 301, "card", 250, "2025-03-03T00:30:00-05:00"),
]
# (id, business, sale, amount, reason, user, created)
REFUNDS = [
    (1, 1, 107, 100, "short", 2, _z("2025-03-04", "10:00:00")),  # in week 1, of a February sale
    (2, 1, 106, 1000, "returned", 2, _z("2025-03-06", "17:00:00")),
    (3, 1, 102, 200, "damaged", 2, _z("2025-03-11", "09:00:00")),  # in week 2, of a week-1 sale
]
# (id, business, storefront, product, quantity change, reason, reference, user, created)
MOVEMENTS = [
    (1, 1, 11, 1, -2, "sale", "R-101", 1, _z("2025-03-03", "10:00:00")),
    (2, 1, 12, 3, 50, "purchase", "PO-7", 2, _z("2025-03-05", "08:00:00")),
    (3, 1, 12, 3, -3, "sale", "R-102", 2, _z("2025-03-05", "15:30:00")),
    (4, 1, 11, 1, -10, "sale", "R-103", 1, _z("2025-03-09", "23:30:00")),
    (5, 1, 11, 1, 20, "purchase", "PO-8", 1, _z("2025-03-10", "08:00:00")),
    (6, 1, 11, 2, -1, "damage", None, 1, _z("2025-03-02")),
    (31, 2, 31, 31, -1, "sale", "N-301", 3, "2025-03-03T00:30:00-05:00"),
]
# (id, business, user, type, sale, customer, payment, refund, description, event data, ip, user agent,
#  created)
AUDIT = [
    (1, 1, 1, "sale_completed", 101, None, 1, None, "Sale R-101", '{"total": 13.20, "note": "café"}',
     "10.0.0.1", "pos/1", _z("2025-03-03", "10:00:00")),
    (2, 1, 1, "user_login", None, None, None, None, "", None, "10.0.0.1", None, _z("2025-03-03", "11:00:00")),
    (3, 1, 2, "user_login", None, None, None, None, "", '{"device": "ipad"}', None, None,
     _z("2025-03-04", "09:00:00")),
    (4, 1, 2, "sale_completed", 102, None, 2, None, "Sale R-102", '{"broken": ', None, None,
     _z("2025-03-05", "15:30:00")),
    (5, 1, 1, "refund_issued", 106, None, None, 2, "Refund R-106", None, None, None,
     _z("2025-03-06", "17:00:00")),
    (6, 1, None, "report_exported", None, None, None, None, "", None, None, None,
     _z("2025-03-07", "10:00:00")),
    (7, 1, 1, "customer_updated", None, 1001, None, None, "phone", None, None, None,
     _z("2025-03-09", "23:59:59")),
    (8, 1, 1, "user_login", None, None, None, None, "", None, None, None, _z("2025-03-10", "00:00:00")),
    (9, 1, 2, "user_logout", None, None, None, None, "", None, None, None, _z("2025-03-12", "10:00:00")),
    (31, 2, 3, "user_login", None, None, None, None, "", None, None, None, "2025-03-05T12:00:00-05:00"),
]
# fmt: on

TABLES = {
    "businesses": BUSINESSES,
    "storefronts": STOREFRONTS,
    "business_storefronts": BUSINESS_STOREFRONTS,
    "users": USERS,
    "business_memberships": MEMBERSHIPS,
    "categories": CATEGORIES,
    "products": PRODUCTS,
    "storefront_inventory": INVENTORY,
    "customers": CUSTOMERS,
    "credit_transactions": CREDIT,
    "sales": SALES,
    "sale_items": SALE_ITEMS,
    "payments": PAYMENTS,
    "refunds": REFUNDS,
    "stock_movements": MOVEMENTS,
    "audit_logs": AUDIT,
}


def load_sqlite(path: Path) -> str:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.read_text())
    for table, rows in TABLES.items():
        conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def days(first: str, last: str) -> list[dt.date]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [start + dt.timedelta(i) for i in range((end - start).days + 1)]


# What the test archive holds: (business, dataset) -> days
ARCHIVED = {
    (1, "sales"): days("2025-03-01", "2025-03-31"),
    (1, "audit_log"): days("2025-03-01", "2025-03-31"),
    (1, "customers"): days("2025-03-09", "2025-03-09"),
    (1, "inventory"): days("2025-03-03", "2025-03-09"),
    (2, "sales"): days("2025-03-03", "2025-03-09"),
}


def build_archive(db_path: Path, root: Path) -> tuple[LocalStorage, dict[int, Business]]:
    """Archive the fixture with the real archive code, each day just after it ended (snapshots in time)."""
    url = load_sqlite(db_path)
    storage = LocalStorage(root)
    with connect(url) as reader:
        businesses = {b.id: b for b in list_businesses(reader)}
        for (business_id, dataset), archive_days in ARCHIVED.items():
            business = businesses[business_id]
            for day in archive_days:
                now = day_window(day, business.timezone).end + dt.timedelta(hours=1)
                archive_business_day(reader, storage, DATASETS[dataset], business, day, now=now)
    return storage, businesses
