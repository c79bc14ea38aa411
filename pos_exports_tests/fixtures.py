"""A small hand-built POS database whose expected archive figures are worked out by hand.

The day under test is D = 2025-03-09 (business-local):
- business 1 `Africa/Accra` (UTC+0): window 2025-03-09T00:00Z .. 2025-03-10T00:00Z
- business 2 `Asia/Tokyo` (UTC+9): window 2025-03-08T15:00Z .. 2025-03-09T15:00Z (two UTC dates)
- business 3 `America/New_York`: DST starts that day, window 05:00Z .. 2025-03-10T04:00Z (23 hours)
- business 4 inactive.
Businesses 1 and 2 share a customer name ("Ama Mensah") and a product name and SKU ("Water", WAT-500).
SQLite timestamps are written in each business's own UTC offset, as the POS does.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SCHEMA = Path(__file__).resolve().parent.parent / "pos_exports" / "source" / "pos_source_schema.sql"
DAY = "2025-03-09"
OLD = "2025-01-01T08:00:00+00:00"

BUSINESSES = [
    (1, "Accra Shop", "Africa/Accra", "GHS", True, OLD),
    (2, "東京ショップ", "Asia/Tokyo", "JPY", True, OLD),
    (3, "NY Shop", "America/New_York", "USD", True, OLD),
    (4, "Closed Shop", "UTC", "USD", False, OLD),
]
STOREFRONTS = [(11, "Osu", None, OLD), (12, "Makola", None, OLD), (21, "Shibuya", None, OLD), (31, "SoHo", None, OLD)]
BUSINESS_STOREFRONTS = [(1, 11), (1, 12), (2, 21), (3, 31)]
USERS = [(1, "kofi@example.com", "Kofi", "Owusu", True), (2, "yuki@example.com", "Yuki", "Sato", True)]
MEMBERSHIPS = [(1, 1, "owner", True), (2, 2, "cashier", True)]
CATEGORIES = [(1, 1, "Drinks"), (2, 2, "Drinks")]
PRODUCTS = [
    (1, 1, 1, "Water", "WAT-500", None, "unit", True, OLD),
    (2, 1, 1, "Juice", "JUI-1", None, "unit", True, OLD),
    (21, 2, 2, "Water", "WAT-500", None, "unit", True, OLD),
    (31, 3, None, "Bagel", "BAG-1", None, "unit", True, OLD),
]
# (storefront, product, qty, reorder, cost, price, updated). (11, 21) is a row that links business 2's
# product to business 1's storefront: it must land in neither business's inventory.
INVENTORY = [
    (11, 1, 10, 5, 100, 150, OLD),
    (12, 1, -2, 5, 100, 150, OLD),
    (11, 21, 99, 0, 7, 9, OLD),
    (21, 21, 5, 1, 60, 90, OLD),
]
CUSTOMERS = [
    (1001, 1, "Ama Mensah", "ama@example.com", "+233 20 000", "=HYPERLINK()", "retail", 10000, True, False, OLD),
    (1002, 1, "Kwame", None, None, None, "wholesale", 0, True, False, "2025-03-10T09:00:00+00:00"),
    (2001, 2, "Ama Mensah", None, None, None, "retail", 50000, True, False, "2025-01-01T17:00:00+09:00"),
]
CREDIT = [
    (1, 1, 1001, None, "charge", 5000, "C1", None, "2025-01-01T10:00:00+00:00"),
    (2, 1, 1001, None, "payment", -2000, "P1", None, "2025-02-01T10:00:00+00:00"),
    (3, 1, 1001, 101, "charge", 3000, "C2", None, "2025-03-09T09:00:00+00:00"),
    (4, 1, 1001, None, "charge", 700, "C3", None, "2025-03-11T09:00:00+00:00"),
    (5, 2, 2001, None, "charge", 12345, "C9", None, "2025-03-09T20:00:00+09:00"),
]
# sales: id, business, storefront, customer, user, receipt, type, status, payment, subtotal, discount, tax, total,
# created, completed
SALES = [
    (
        101,
        1,
        11,
        1001,
        1,
        "R-101",
        "retail",
        "completed",
        "cash",
        1300,
        100,
        120,
        1320,
        "2025-03-09T09:55:00+00:00",
        "2025-03-09T10:00:00+00:00",
    ),
    (
        102,
        1,
        11,
        None,
        1,
        "R-102",
        "retail",
        "refunded",
        "card",
        500,
        0,
        0,
        500,
        "2025-03-09T23:50:00+00:00",
        "2025-03-09T23:59:59.999000+00:00",
    ),
    (
        103,
        1,
        12,
        None,
        1,
        "R-103",
        "retail",
        "completed",
        "cash",
        800,
        0,
        0,
        800,
        "2025-03-09T23:59:00+00:00",
        "2025-03-10T00:00:00+00:00",
    ),
    (104, 1, 11, None, 1, "R-104", "retail", "draft", "cash", 200, 0, 0, 200, "2025-03-09T12:00:00+00:00", None),
    (
        105,
        1,
        11,
        None,
        1,
        "R-105",
        "retail",
        "completed",
        "cash",
        400,
        0,
        0,
        400,
        "2025-03-08T23:59:00+00:00",
        "2025-03-08T23:59:59.999000+00:00",
    ),
    (
        201,
        2,
        21,
        2001,
        2,
        "T-201",
        "retail",
        "completed",
        "mobile_money",
        700,
        0,
        0,
        700,
        "2025-03-09T00:20:00+09:00",
        "2025-03-09T00:30:00+09:00",
    ),
    (
        202,
        2,
        21,
        None,
        2,
        "T-202",
        "retail",
        "completed",
        "cash",
        300,
        0,
        0,
        300,
        "2025-03-09T23:20:00+09:00",
        "2025-03-09T23:30:00+09:00",
    ),
    (
        203,
        2,
        21,
        None,
        2,
        "T-203",
        "retail",
        "completed",
        "cash",
        999,
        0,
        0,
        999,
        "2025-03-10T00:05:00+09:00",
        "2025-03-10T00:10:00+09:00",
    ),
    (
        204,
        2,
        21,
        None,
        2,
        "T-204",
        "retail",
        "completed",
        "cash",
        111,
        0,
        0,
        111,
        "2025-03-08T23:40:00+09:00",
        "2025-03-08T23:50:00+09:00",
    ),
    (
        301,
        3,
        31,
        None,
        None,
        "N-301",
        "retail",
        "completed",
        "card",
        250,
        0,
        0,
        250,
        "2025-03-08T23:59:00-05:00",
        "2025-03-09T00:00:00-05:00",
    ),
    (
        302,
        3,
        31,
        None,
        None,
        "N-302",
        "retail",
        "completed",
        "card",
        350,
        0,
        0,
        350,
        "2025-03-09T23:58:00-04:00",
        "2025-03-09T23:59:00-04:00",
    ),
    (
        303,
        3,
        31,
        None,
        None,
        "N-303",
        "retail",
        "completed",
        "card",
        450,
        0,
        0,
        450,
        "2025-03-09T23:59:30-04:00",
        "2025-03-10T00:00:00-04:00",
    ),
]
# sale_items: id, sale, product, qty, price, cost, discount, tax, total
SALE_ITEMS = [
    (1, 101, 1, 2, 150, 100, 0, 30, 330),
    (2, 101, 2, 1, 1000, 600, 100, 90, 990),
    (3, 102, 1, 1, 500, 200, 0, 0, 500),
    (4, 103, 1, 1, 800, 300, 0, 0, 800),
    (5, 104, 2, 1, 200, 100, 0, 0, 200),
    (6, 105, 2, 1, 400, 100, 0, 0, 400),
    (7, 201, 21, 1, 700, 300, 0, 0, 700),
    (8, 202, 21, 3, 100, 50, 0, 0, 300),
    (9, 203, 21, 1, 999, 500, 0, 0, 999),
    (10, 204, 21, 1, 111, 50, 0, 0, 111),
    (11, 301, 31, 1, 250, 100, 0, 0, 250),
    (12, 302, 31, 1, 350, 100, 0, 0, 350),
    (13, 303, 31, 1, 450, 100, 0, 0, 450),
]
PAYMENTS = [
    (1, 1, 101, "cash", 1320, "2025-03-09T10:00:00+00:00"),
    (2, 1, 102, "card", 500, "2025-03-09T23:59:59.999000+00:00"),
    (3, 1, 103, "cash", 800, "2025-03-10T00:00:00+00:00"),
    (4, 2, 201, "mobile_money", 700, "2025-03-09T00:30:00+09:00"),
]
REFUNDS = [
    (1, 1, 102, 500, "damaged", 1, "2025-03-12T11:00:00+00:00"),  # a later day than its sale
    (2, 1, 105, 250, "late", 1, "2025-03-09T15:00:00+00:00"),  # refund on D of a sale of D-1
]
MOVEMENTS = [
    (1, 1, 11, 1, -2, "sale", "R-101", 1, "2025-03-09T10:00:00+00:00"),
    (2, 1, 11, 1, 20, "purchase", None, 1, "2025-03-10T08:00:00+00:00"),
    (3, 2, 21, 21, -1, "sale", "T-201", 2, "2025-03-09T00:30:00+09:00"),
]
AUDIT = [
    (
        1,
        1,
        1,
        "sale_completed",
        101,
        None,
        None,
        None,
        "Sale R-101",
        '{"total": 1320}',
        "10.0.0.1",
        "pos/1",
        "2025-03-09T10:00:00+00:00",
    ),
    (2, 1, 1, "customer_updated", None, 1001, None, None, "edited", None, None, None, "2025-03-09T11:00:00+00:00"),
    (3, 1, None, "report_exported", None, None, None, None, "", '{"broken": ', None, None, "2025-03-09T12:00:00+00:00"),
    (4, 1, 1, "user_login", None, None, None, None, "", None, None, None, "2025-03-10T00:00:01+00:00"),
    (5, 2, 2, "user_login", None, None, None, None, "", '{"device": "ipad"}', None, None, "2025-03-09T08:00:00+09:00"),
]

# A second case, loaded on top of the rows above only when asked (`load_sqlite(path, CROSS_BUSINESS)`), so the
# figures of EXPECTED stay as they are. `users` is global in the POS: rows of business 1 on D that point at rows of
# other businesses. Sale R-106 was rung up by user 2 (Yuki Sato, a member of business 2 only) at business 2's
# storefront 21 (Shibuya) for business 2's customer 2001 with business 2's product 21; Yuki also refunded part of it,
# moved its stock and completed it in the audit log. R-107 was rung up by user 3 (Esi Boateng), whose membership of
# business 1 has ended (still business 1's own user: her name stays), for product 3 of business 1 that sits in
# business 2's category 3 ("Sake"); product 3 is stocked at storefront 11.
CROSS_BUSINESS = {
    "users": [(3, "esi@example.com", "Esi", "Boateng", False)],
    "business_memberships": [(1, 3, "cashier", False)],
    "categories": [(3, 2, "Sake")],
    "products": [(3, 1, 3, "Palm wine", "PAL-1", None, "unit", True, OLD)],
    "storefront_inventory": [(11, 3, 4, 1, 500, 800, OLD)],
    "sales": [
        (
            106,
            1,
            21,
            2001,
            2,
            "R-106",
            "retail",
            "completed",
            "cash",
            700,
            0,
            0,
            700,
            "2025-03-09T14:00:00+00:00",
            "2025-03-09T14:05:00+00:00",
        ),
        (
            107,
            1,
            11,
            None,
            3,
            "R-107",
            "retail",
            "completed",
            "cash",
            800,
            0,
            0,
            800,
            "2025-03-09T15:00:00+00:00",
            "2025-03-09T15:05:00+00:00",
        ),
    ],
    "sale_items": [(14, 106, 21, 1, 700, 300, 0, 0, 700), (15, 107, 3, 1, 800, 500, 0, 0, 800)],
    "payments": [(5, 1, 106, "cash", 700, "2025-03-09T14:05:00+00:00")],
    "refunds": [(3, 1, 106, 100, "wrong item", 2, "2025-03-09T16:00:00+00:00")],
    "stock_movements": [(4, 1, 21, 21, -1, "sale", "R-106", 2, "2025-03-09T14:05:00+00:00")],
    "audit_logs": [
        (
            6,
            1,
            2,
            "sale_completed",
            106,
            None,
            None,
            None,
            "Sale R-106",
            None,
            "10.0.0.9",
            "pos/9",
            "2025-03-09T14:05:00+00:00",
        ),
    ],
}
# What business 1 must never show from the rows above: business 2's user, storefront and category names.
CROSS_FOREIGN_TEXT = ("Yuki", "yuki@example.com", "Sato", "Shibuya", "Sake")

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

# Worked out by hand from the rows above: (rows, {money column: sum}) per business and table on D.
D = Decimal
EXPECTED = {
    1: {
        "sales": (3, {"subtotal": D("20.00"), "total": D("20.20"), "tax": D("1.20"), "discount": D("1.00")}),
        "sale_items": (4, {"total": D("20.20"), "unit_cost": D("10.00")}),
        "payments": (2, {"amount": D("18.20")}),
        "refunds": (1, {"amount": D("2.50")}),
        "audit_logs": (3, {}),
        "customers": (1, {"credit_limit": D("100.00")}),
        "credit_transactions": (3, {"amount": D("60.00")}),
        "inventory": (2, {"unit_cost": D("2.00"), "selling_price": D("3.00")}),
        "stock_movements": (1, {}),
    },
    2: {
        "sales": (2, {"total": D("10.00")}),
        "sale_items": (2, {"total": D("10.00")}),
        "payments": (1, {"amount": D("7.00")}),
        "refunds": (0, {"amount": D("0.00")}),
        "audit_logs": (1, {}),
        "customers": (1, {"credit_limit": D("500.00")}),
        "credit_transactions": (1, {"amount": D("123.45")}),
        "inventory": (1, {"unit_cost": D("0.60")}),
        "stock_movements": (1, {}),
    },
    3: {"sales": (2, {"total": D("6.00")}), "sale_items": (2, {"total": D("6.00")})},
}
SALE_IDS = {1: [101, 102, 104], 2: [201, 202], 3: [301, 302]}


def _rows(table: str, dialect: str, extra: dict | None = None) -> list[tuple]:
    rows = TABLES[table] + (extra or {}).get(table, [])
    if dialect == "postgresql" and table == "audit_logs":  # JSONB cannot hold malformed JSON
        rows = [r[:9] + ((None if r[9] == '{"broken": ' else r[9]),) + r[10:] for r in rows]
    return rows


def load_sqlite(path: Path, extra: dict | None = None) -> str:
    """The fixture (plus `extra` rows per table, e.g. CROSS_BUSINESS) in a new SQLite file; its URL."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.read_text())
    for table in TABLES:
        rows = _rows(table, "sqlite", extra)
        conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def load_postgres(url: str, extra: dict | None = None) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(SCHEMA.read_text())
        for table in TABLES:
            rows = _rows(table, "postgresql", extra)
            cur.executemany(f"INSERT INTO {table} VALUES ({', '.join(['%s'] * len(rows[0]))})", rows)
    conn.close()


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))
