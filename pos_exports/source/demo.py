"""Deterministic demo data for the POS source database (SQLite file or PostgreSQL).

`generate(spec)` streams `(table, columns, rows)` in foreign-key-safe order; the same spec always gives
the same rows in the same order. `build_sqlite`/`build_postgres` create the schema of
`pos_source_schema.sql` and load those rows. All randomness comes from `random.Random` instances seeded
from `spec.seed` (one stream per business and purpose, so `only_business_ids` does not change a business's
data apart from its ids). The daily tables are produced by re-running a cheap per-business simulation once
per table, which keeps memory bounded (one day of one business at a time) at any scale.

Run `python -m pos_exports.source.demo --sqlite var/demo/pos_demo.sqlite` (or `--postgres URL`).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import heapq
import io
import itertools
import json
import multiprocessing
import os
import pathlib
import queue
import random
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

SCHEMA_PATH = pathlib.Path(__file__).with_name("pos_source_schema.sql")

TABLES: dict[str, tuple[str, ...]] = {
    "businesses": ("id", "name", "timezone", "currency", "is_active", "created_at"),
    "storefronts": ("id", "name", "location", "created_at"),
    "business_storefronts": ("business_id", "storefront_id"),
    "users": ("id", "email", "first_name", "last_name", "is_active"),
    "business_memberships": ("business_id", "user_id", "role", "is_active"),
    "categories": ("id", "business_id", "name"),
    "products": (
        "id",
        "business_id",
        "category_id",
        "name",
        "sku",
        "barcode",
        "unit",
        "is_active",
        "created_at",
    ),
    "storefront_inventory": (
        "storefront_id",
        "product_id",
        "quantity",
        "reorder_level",
        "unit_cost_cents",
        "selling_price_cents",
        "updated_at",
    ),
    "customers": (
        "id",
        "business_id",
        "name",
        "email",
        "phone",
        "address",
        "customer_type",
        "credit_limit_cents",
        "is_active",
        "is_blocked",
        "created_at",
    ),
    "sales": (
        "id",
        "business_id",
        "storefront_id",
        "customer_id",
        "user_id",
        "receipt_number",
        "sale_type",
        "status",
        "payment_type",
        "subtotal_cents",
        "discount_cents",
        "tax_cents",
        "total_cents",
        "created_at",
        "completed_at",
    ),
    "sale_items": (
        "id",
        "sale_id",
        "product_id",
        "quantity",
        "unit_price_cents",
        "unit_cost_cents",
        "discount_cents",
        "tax_cents",
        "total_cents",
    ),
    "payments": ("id", "business_id", "sale_id", "method", "amount_cents", "created_at"),
    "refunds": ("id", "business_id", "sale_id", "amount_cents", "reason", "user_id", "created_at"),
    "credit_transactions": (
        "id",
        "business_id",
        "customer_id",
        "sale_id",
        "kind",
        "amount_cents",
        "reference",
        "description",
        "created_at",
    ),
    "stock_movements": (
        "id",
        "business_id",
        "storefront_id",
        "product_id",
        "quantity_change",
        "reason",
        "reference",
        "user_id",
        "created_at",
    ),
    "audit_logs": (
        "id",
        "business_id",
        "user_id",
        "event_type",
        "sale_id",
        "customer_id",
        "payment_id",
        "refund_id",
        "description",
        "event_data",
        "ip_address",
        "user_agent",
        "created_at",
    ),
}
STATIC_TABLES = tuple(list(TABLES)[:9])
DAILY_TABLES = tuple(list(TABLES)[9:])

# audit_logs.event_data values that are not valid JSON (kept in SQLite, written as NULL in PostgreSQL).
MALFORMED_EVENT_DATA = frozenset({'{"broken": ', '{"total_cents": 12', "not json at all", "{'single': 'quotes'}"})
_MALFORMED = sorted(MALFORMED_EVENT_DATA)

# Text columns that are NOT NULL and may hold '' (CSV needs FORCE_NOT_NULL so '' does not become NULL).
_FORCE_NOT_NULL = {"users": ("first_name", "last_name"), "audit_logs": ("description",)}

_US = 1_000_000
_MIN = 60 * _US
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR
_OPEN, _SPAN = 7 * _HOUR, 15 * _HOUR  # sales mostly 07:00-22:00 local
_WEEKDAY = (0.9, 0.9, 0.95, 1.0, 1.15, 1.3, 0.8)  # Mon..Sun, averages 1.0


@dataclass(frozen=True)
class DemoSpec:
    """What to generate; equal specs give identical databases."""

    seed: int = 7
    end_date: datetime.date | None = None  # last business-local day with data; None = yesterday (UTC)
    days: int = 120  # days of history ending at end_date
    sales_per_day: int = 12  # per storefront, on average
    extra_businesses: int = 0  # businesses 7.. beyond the fixed demo set (benchmarks)
    items_per_sale: tuple[int, int] = (1, 5)
    only_business_ids: tuple[int, ...] | None = None  # generate just these businesses (ids are renumbered)

    def __post_init__(self) -> None:
        lo, hi = self.items_per_sale
        if self.days < 1 or self.sales_per_day < 0 or self.extra_businesses < 0 or not 1 <= lo <= hi:
            raise ValueError(f"invalid DemoSpec: {self}")

    def resolved_end_date(self) -> datetime.date:
        """`end_date`, or yesterday's UTC date when it is None."""
        if self.end_date is not None:
            return self.end_date
        return datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=1)


# --------------------------------------------------------------------------------------------------------
# Fixed demo content
# --------------------------------------------------------------------------------------------------------

# (category, [(product name, sku, price cents, unit)])
_CATALOGS: dict[str, list[tuple[str, list[tuple[str, str, int, str]]]]] = {
    "grocery": [
        (
            "Beverages",
            [
                ("Bottled Water 500ml", "WAT-500", 300, "bottle"),
                ("Coca-Cola 500ml", "COK-500", 800, "bottle"),
                ("Malta Guinness 330ml", "MAL-330", 900, "bottle"),
                ("Milo Tin 400g", "MIL-400", 4500, "unit"),
            ],
        ),
        (
            "Groceries",
            [
                ("Jasmine Rice 5kg", "RIC-5K", 9500, "bag"),
                ("Gari 1kg", "GAR-1K", 1500, "bag"),
                ("Tomato Paste 70g", "TOM-070", 350, "unit"),
                ("Sardines in Oil", "SAR-125", 1200, "tin"),
                ("Sugar 1kg", "SUG-1K", 1400, "bag"),
                ("Cooking Oil 1L", "OIL-1L", 3200, "bottle"),
                ("Indomie Noodles", "IND-070", 250, "unit"),
            ],
        ),
        (
            "Household",
            [
                ("Key Soap Bar", "SOA-KEY", 600, "unit"),
                ("Omo Detergent 500g", "OMO-500", 1800, "unit"),
                ("Matches (10 boxes)", "MAT-010", 500, "pack"),
                ("Candles 6pk", "CAN-006", 700, "pack"),
            ],
        ),
        (
            "Snacks",
            [
                ("Plantain Chips", "PLC-100", 500, "unit"),
                ("Groundnuts 250g", "GNT-250", 800, "unit"),
                ("Digestive Biscuits", "BIS-DIG", 900, "pack"),
            ],
        ),
        (
            "Personal Care",
            [("Toothpaste 100ml", "TPA-100", 1100, "unit"), ("Shea Butter 250g", "SHE-250", 2500, "jar")],
        ),
    ],
    "deli": [
        (
            "Sandwiches",
            [
                ("Bacon, Egg & Cheese", "BEC-001", 650, "unit"),
                ("Pastrami on Rye", "PAS-RYE", 1595, "unit"),
                ("Chopped Cheese", "CHC-001", 899, "unit"),
                ("Turkey Club", "TUR-CLB", 1250, "unit"),
                ("Veggie Wrap", "VEG-WRP", 950, "unit"),
            ],
        ),
        (
            "Drinks",
            [
                ("Coffee 12oz", "COF-12", 250, "cup"),
                ("Iced Tea 20oz", "ICT-20", 325, "bottle"),
                ("Seltzer 12oz", "SEL-12", 175, "can"),
                ("Orange Juice 16oz", "OJ-16", 450, "bottle"),
            ],
        ),
        (
            "Grocery",
            [
                ("Bagels 6pk", "BAG-6", 799, "pack"),
                ("Whole Milk 1gal", "MLK-GAL", 529, "unit"),
                ("Eggs, Dozen", "EGG-12", 699, "pack"),
                ("Cream Cheese 8oz", "CRC-8", 449, "unit"),
            ],
        ),
        (
            "Snacks",
            [
                ("Potato Chips", "CHP-1", 199, "bag"),
                ("Chocolate Bar", "CHO-1", 225, "unit"),
                ("Beef Jerky 3oz", "JRK-3", 899, "unit"),
            ],
        ),
        ("Household", [("Paper Towels 2pk", "PTW-2", 599, "pack"), ("Dish Soap", "DSH-1", 399, "bottle")]),
    ],
    "stationery": [
        (
            "筆記具",
            [
                ("ボールペン 黒", "BP-BLK", 15000, "本"),
                ("ボールペン 赤", "BP-RED", 15000, "本"),
                ("シャープペンシル 0.5", "SP-05", 33000, "本"),
                ("万年筆", "FP-001", 330000, "本"),
                ("蛍光ペン 5色", "HL-5", 55000, "セット"),
                ("消しゴム", "ER-01", 11000, "個"),
            ],
        ),
        (
            "ノート",
            [
                ("A5ノート", "NT-A5", 22000, "冊"),
                ("B5ノート", "NT-B5", 26000, "冊"),
                ("手帳 2027", "DI-27", 180000, "冊"),
                ("方眼ノート", "NT-GRD", 30000, "冊"),
            ],
        ),
        (
            "紙製品",
            [
                ("和紙 便箋", "WS-BIN", 60000, "冊"),
                ("封筒 10枚", "EN-10", 25000, "袋"),
                ("折り紙 100枚", "OR-100", 44000, "袋"),
                ("付箋", "FS-75", 30000, "個"),
            ],
        ),
        (
            "画材",
            [
                ("水彩絵の具 12色", "WC-12", 120000, "セット"),
                ("色鉛筆 24色", "CP-24", 165000, "セット"),
                ("筆ペン", "FD-01", 38000, "本"),
            ],
        ),
    ],
    "cafe": [
        (
            "Napoje",
            [
                ("Bottled Water 500ml", "WAT-500", 500, "bottle"),
                ("Coca-Cola 500ml", "COK-500", 900, "bottle"),
                ("Sok jabłkowy 0,3l", "SOK-030", 900, "bottle"),
                ("Lemoniada", "LEM-040", 1400, "glass"),
            ],
        ),
        (
            "Kawa i herbata",
            [
                ("Espresso", "ESP-001", 900, "cup"),
                ("Cappuccino", "CAP-001", 1400, "cup"),
                ("Latte", "LAT-001", 1500, "cup"),
                ("Flat White", "FLW-001", 1500, "cup"),
                ("Kawa mrożona", "KMR-001", 1700, "cup"),
                ("Herbata czarna", "HER-001", 900, "cup"),
            ],
        ),
        (
            "Wypieki",
            [
                ("Pączek z różą", "PAC-001", 600, "unit"),
                ("Sernik (kawałek)", "SER-001", 1600, "unit"),
                ("Szarlotka", "SZA-001", 1500, "unit"),
                ("Drożdżówka", "DRO-001", 700, "unit"),
                ("Croissant", "CRO-001", 800, "unit"),
            ],
        ),
        (
            "Kanapki",
            [
                ("Kanapka z łososiem", "KAN-LOS", 2400, "unit"),
                ("Bajgiel z serem", "BAJ-SER", 1800, "unit"),
                ("Zapiekanka", "ZAP-001", 1600, "unit"),
                ("Pierogi ruskie (8 szt.)", "PIE-RUS", 2800, "unit"),
            ],
        ),
    ],
    "electronics": [
        (
            "إكسسوارات",
            [
                ("شاحن USB-C سريع", "CHG-USBC", 7900, "unit"),
                ("iPhone Case", "CAS-IP", 5900, "unit"),
                ("Screen Protector", "SCP-01", 2900, "unit"),
                ("HDMI Adapter", "ADP-HD", 4900, "unit"),
                ("كابل HDMI 2م", "HDMI-2M", 4500, "unit"),
                ("Laptop Stand", "LST-01", 11900, "unit"),
            ],
        ),
        (
            "صوتيات",
            [
                ("سماعات لاسلكية", "EAR-BT", 24900, "unit"),
                ("Bluetooth Speaker", "SPK-BT", 19900, "unit"),
                ("Smart Watch", "SWT-01", 89900, "unit"),
            ],
        ),
        (
            "حواسيب",
            [
                ("ماوس لاسلكي", "MOU-W", 6900, "unit"),
                ("لوحة مفاتيح", "KBD-01", 12900, "unit"),
                ("شاشة 24 بوصة", "MON-24", 59900, "unit"),
                ("Power Bank 20000mAh", "PWB-20K", 14900, "unit"),
            ],
        ),
        (
            "تخزين",
            [
                ("USB Flash 64GB", "USB-64", 3900, "unit"),
                ("SD Card 128GB", "SDC-128", 7900, "unit"),
                ("External SSD 1TB", "SSD-1T", 39900, "unit"),
            ],
        ),
    ],
    "surf": [
        (
            "Boards",
            [
                ("Longboard 9'0\"", "LB-90", 89900, "unit"),
                ("Shortboard 6'2\"", "SB-62", 69900, "unit"),
                ("Soft-top 8'", "ST-8", 34900, "unit"),
                ('Bodyboard 42"', "BB-42", 12900, "unit"),
            ],
        ),
        (
            "Apparel",
            [
                ("Rash Guard", "RG-01", 4500, "unit"),
                ("Board Shorts", "BS-01", 5500, "unit"),
                ("Aloha Shirt", "AS-01", 6500, "unit"),
                ("Trucker Hat", "HT-01", 2800, "unit"),
            ],
        ),
        (
            "Accessories",
            [
                ("Surf Wax", "SW-01", 400, "bar"),
                ("Leash 9'", "LS-9", 3500, "unit"),
                ("Fins Set", "FN-01", 4900, "set"),
                ("Reef-safe Sunscreen", "SS-01", 1600, "unit"),
                ("Traction Pad", "TP-01", 4200, "unit"),
            ],
        ),
        (
            "Rentals & Lessons",
            [("Board Rental 2h", "RNT-2H", 3000, "hour"), ("Surf Lesson 90min", "LSN-90", 9500, "unit")],
        ),
        ("Snacks", [("Spam Musubi", "MUS-01", 350, "unit"), ("Coconut Water", "CW-01", 450, "unit")]),
    ],
}

# Customer names; a trailing "*" marks a wholesale customer.
_CUSTOMERS: dict[str, list[str]] = {
    "grocery": [
        "Ama Mensah",
        "Kwame Boateng",
        "José Álvarez",
        "Zoë Ørsted",
        "王小明",
        "فاطمة الزهراء",
        "<b>Bold</b> & Co*",
        "=SUM(A1:A9)",
        "Akosua Owusu",
        "Osu Hotel Ltd*",
        "Yaw Asante",
        "Efua Sarpong",
        "+Plus Traders*",
        "Accra Catering Co*",
        "Kojo Antwi",
        "Abena Darko",
    ],
    "deli": [
        "Maria Rodriguez",
        "DeShawn Williams",
        "Jake O'Connor",
        'Sam "The Man" Greene',
        "Priya Patel",
        "Brooklyn Brewery Café*",
        "Chen Wei",
        "Rivka Goldberg",
        "Luis Ortiz",
        "Park Slope Daycare*",
        "Tony Russo",
        "Aisha Johnson",
    ],
    "stationery": [
        "佐藤 花子",
        "鈴木 一郎",
        "高橋 健",
        "株式会社ミドリ商事*",
        "田中 美咲",
        "渡辺 翔",
        "伊藤 さくら",
        "山本 大輔",
        "中村 あや",
        "東京デザイン学校*",
        "小林 直樹",
    ],
    "cafe": [
        "Ama Mensah",
        "Jan Kowalski",
        "Zofia Wiśniewska",
        "Łukasz Żółkiewski",
        "Kawiarnia Pod Aniołem*",
        "Hotel Grand Łódź*",
        "Agnieszka Dąbrowska",
        "Piotr Nowak",
        "Ewa Wójcik",
        "Krzysztof Lewandowski",
        "Marta Kamińska",
        "Tomasz Zieliński",
        "Zoë Ørsted",
    ],
    "electronics": [
        "محمد العلي",
        "Ahmed Al Mansoori",
        "Rashid Electronics LLC*",
        "أحمد خليل",
        "Priya Nair",
        "Omar Haddad",
        "نورة سالم",
        "Gulf Tech Trading*",
        "John Smith",
        "فاطمة الزهراء",
        "Svetlana Ivanova",
    ],
    "surf": [
        "Keoni Kahale",
        "Leilani Akana",
        "Makoa Kealoha",
        "North Shore Surf School*",
        "Kai Nakamura",
        "Malia Fernandes",
        "Brandon Lee",
        "Hōkū Palakiko",
        "Aloha Rentals LLC*",
        "Emma Thompson",
    ],
}

_STAFF: dict[str, list[tuple[str, str]]] = {
    "grocery": [
        ("Kofi", "Mensah"),
        ("Adwoa", "Asare"),
        ("Kwabena", "Ofori"),
        ("Esi", "Quaye"),
        ("Kwame", ""),
        ("Nana", "Addo"),
        ("Yaa", "Badu"),
    ],
    "deli": [
        ("Miguel", "Santos"),
        ("Tanya", "Brooks"),
        ("Ray", "Kim"),
        ("Dana", "Levy"),
        ("Marcus", "Hill"),
        ("Olu", "Adeyemi"),
    ],
    "stationery": [("健太", "山田"), ("由美", "松本"), ("翔太", "井上"), ("愛", "木村"), ("Ken", "Watanabe")],
    "cafe": [
        ("Małgorzata", "Kowalczyk"),
        ("Paweł", "Szymański"),
        ("Ola", "Woźniak"),
        ("Michał", "Kozłowski"),
        ("Anna", "Jankowska"),
        ("Bartek", "Mazur"),
        ("Iga", "Krawczyk"),
        ("Kuba", "Piotrowski"),
    ],
    "electronics": [
        ("Khalid", "Al Falasi"),
        ("Sara", "Haddad"),
        ("Ravi", "Menon"),
        ("مريم", "الشامسي"),
        ("Joseph", "D'Souza"),
        ("Layla", "Nasser"),
    ],
    "surf": [("Kimo", "Kahananui"), ("Nalu", "Kealoha"), ("Jess", "Moore"), ("Duke", "Palama")],
}

# (id, name, time zone, currency, active, catalog, tax basis points, storefronts [(name, location)])
_BUSINESSES: list[tuple[int, str, str, str, bool, str, int, list[tuple[str, str | None]]]] = [
    (
        1,
        "Kofi's Corner Shop",
        "Africa/Accra",
        "GHS",
        True,
        "grocery",
        1500,
        [
            ("Osu Main Store", "Oxford St, Osu, Accra"),
            ("Makola Market Stall", "Makola Market, Accra"),
            ("Kumasi Branch", "Adum, Kumasi"),
        ],
    ),
    (
        2,
        "Brooklyn Bodega & Deli",
        "America/New_York",
        "USD",
        True,
        "deli",
        888,
        [("Bedford Ave", "512 Bedford Ave, Brooklyn, NY"), ("Flatbush", "1100 Flatbush Ave, Brooklyn, NY")],
    ),
    (
        3,
        "東京文具店",
        "Asia/Tokyo",
        "JPY",
        True,
        "stationery",
        1000,
        [
            ("渋谷店", "東京都渋谷区道玄坂1-2-3"),
            ("吉祥寺店", "東京都武蔵野市吉祥寺本町2-1"),
            ("オンライン", None),
        ],
    ),
    (
        4,
        "Café Łódź",
        "Europe/Warsaw",
        "PLN",
        True,
        "cafe",
        800,
        [("Piotrkowska 101", "ul. Piotrkowska 101, Łódź"), ("Manufaktura", "ul. Drewnowska 58, Łódź")],
    ),
    (
        5,
        "متجر دبي للإلكترونيات",
        "Asia/Dubai",
        "AED",
        True,
        "electronics",
        500,
        [("Dubai Mall Kiosk", "The Dubai Mall, Level 2"), ("ديرة سيتي سنتر", "ديرة، دبي")],
    ),
    (
        6,
        "Aloha Surf Co",
        "Pacific/Honolulu",
        "USD",
        False,
        "surf",
        450,
        [
            ("Waikiki Beach Shack", "2335 Kalākaua Ave, Honolulu, HI"),
            ("North Shore", "66-250 Kamehameha Hwy, Haleʻiwa"),
        ],
    ),
]
_EXTRA_WORDS = ("Demo Mart", "Corner Store", "Market Hall", "Trading Post", "Express", "Emporium")

_ROLES = ("owner", "manager", "cashier", "cashier", "admin", "manager", "cashier", "viewer")
_REFUND_REASONS = (
    "Damaged item",
    "Wrong item",
    "Customer changed mind",
    "Expired product",
    "Overcharged",
    None,
)
_CREDIT_PAY_TEXT = ("Cash payment", "Mobile money payment", "Bank transfer", "@handle paid via app", None)
_POS_AGENTS = (
    "PulsePOS/4.2.1 (Android 13; SM-T220)",
    "PulsePOS/4.2.0 (iPadOS 17.5; iPad13,18)",
    "PulsePOS/3.9.8 (Windows NT 10.0; Win64; x64)",
)
_WEB_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/17.5",
    None,
)

# Customer profiles, in the order the first customers of every business get them.
_PROFILES = ("slow", "near", "overpaid", "blocked", "inactive", "good", "good", "new")


def _ascii_slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isascii() and ch.isalnum())


# --------------------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------------------


class _Clock:
    """Business-local ISO timestamps from (day index from the first day, microseconds after midnight)."""

    def __init__(self, tz: ZoneInfo, start: datetime.date) -> None:
        self.tz, self.start = tz, start
        self._days: dict[int, tuple[str, datetime.date, list[str | None]]] = {}

    def fmt(self, d: int, us: int) -> str:
        if not 0 <= us < _DAY:
            q, us = divmod(us, _DAY)
            d += q
        day = self._days.get(d)
        if day is None:
            date = self.start + datetime.timedelta(days=d)
            day = self._days[d] = (date.isoformat(), date, [None] * 24)
        h, rem = divmod(us, _HOUR)
        off = day[2][h]
        if off is None:
            off = day[2][h] = self._offset(day[1], h)
        m, rem = divmod(rem, _MIN)
        s, f = divmod(rem, _US)
        return f"{day[0]}T{h:02d}:{m:02d}:{s:02d}.{f:06d}{off}"

    def _offset(self, date: datetime.date, hour: int) -> str:
        local = datetime.datetime(date.year, date.month, date.day, hour, tzinfo=self.tz)
        # Round-trip through UTC so a wall time in a DST gap would not be written with a wrong offset.
        if local.astimezone(datetime.UTC).astimezone(self.tz).replace(tzinfo=None) != local.replace(tzinfo=None):
            raise ValueError(f"{date} {hour:02d}:00 does not exist in {self.tz}")
        return local.isoformat()[19:]


# --------------------------------------------------------------------------------------------------------
# The fixed part of the world: businesses, storefronts, users, catalog, customers
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Customer:
    id: int
    profile: str  # see _PROFILES; "cash" and "credit" for the rest
    wholesale: bool
    limit: int
    active: bool
    blocked: bool


@dataclass
class _Business:
    id: int
    tz: ZoneInfo
    tax_bp: int
    storefronts: list[int]
    sellers: list[int]
    managers: list[int]
    owner: int
    product_ids: list[int]  # sellable products
    prices: list[list[int]]  # per storefront, aligned with product_ids
    wholesale_prices: list[list[int]]
    costs: list[list[int]]
    customers: list[_Customer]
    median_price: int
    rows: dict[str, list[tuple]] = field(default_factory=dict)


_DONE = ("completed", "refunded", "partially_refunded")  # the statuses of a sale that was paid


@dataclass
class _Sale:
    """One drawn sale: local day `d`, start and end (microseconds into the day), storefront index, ids and sums."""

    d: int
    us: int
    end_us: int
    si: int
    sid: int
    receipt: str
    cashier: int
    cust: _Customer | None
    status: str
    ptype: str
    delay: int | None
    wholesale: bool
    lines: list[tuple[int, int]]
    sub: int
    disc: int
    tax: int
    total: int


class _IdCounter:
    """Running ids of the tables whose ids are global across businesses."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def take(self, table: str) -> int:
        value = self.next.get(table, 0) + 1
        self.next[table] = value
        return value


def _business_list(
    spec: DemoSpec,
) -> list[tuple[int, str, str, str, bool, str, int, list[tuple[str, str | None]]]]:
    out = list(_BUSINESSES)
    for n in range(spec.extra_businesses):
        bid = 7 + n
        base = _BUSINESSES[n % len(_BUSINESSES)]
        name = f"{_EXTRA_WORDS[n % len(_EXTRA_WORDS)]} {bid}"
        stores = [(f"{name} #{k + 1}", f"{k + 1} Market Street") for k in range(2 + n % 2)]
        out.append((bid, name, base[2], base[3], True, base[5], base[6], stores))
    if spec.only_business_ids is not None:
        wanted = set(spec.only_business_ids)
        out = [b for b in out if b[0] in wanted]
    return out


def _build_world(spec: DemoSpec, start: datetime.date, days: int) -> list[_Business]:
    ids = _IdCounter()
    world: list[_Business] = []
    owners: dict[int, int] = {}
    for bid, name, tz_name, currency, active, kind, tax_bp, stores in _business_list(spec):
        r = random.Random(f"{spec.seed}/{bid}/static").random  # one stream per business: draws in this order
        tz = ZoneInfo(tz_name)
        clock = _Clock(tz, start)
        rows: dict[str, list[tuple]] = {t: [] for t in STATIC_TABLES}
        created_d = -(400 + int(r() * 600))
        rows["businesses"].append(
            (bid, name, tz_name, currency, active, clock.fmt(created_d, 9 * _HOUR + int(r() * 8 * _HOUR)))
        )
        storefronts = []
        for k, (sf_name, location) in enumerate(stores):
            sf = ids.take("storefronts")
            storefronts.append(sf)
            when = clock.fmt(created_d + 1 + k * 30 + int(r() * 20), 8 * _HOUR + int(r() * 10 * _HOUR))
            rows["storefronts"].append((sf, sf_name, location, when))
            rows["business_storefronts"].append((bid, sf))
        sellers, managers, owner = _staff(r, ids, rows, bid, kind)
        if bid == 4 and 1 in owners:  # a user who belongs to two businesses
            rows["business_memberships"].append((bid, owners[1], "viewer", True))
        owners[bid] = owner
        product_ids, base_prices = _catalogue(r, ids, rows, clock, bid, kind, created_d)
        sellable = len(product_ids) - 1  # the last product is discontinued (never sold)
        prices, wprices, costs = _stock_levels(r, rows, clock, days, storefronts, product_ids, base_prices)
        median = sorted(base_prices)[len(base_prices) // 2]
        customers = _customer_rows(r, ids, rows, clock, bid, kind, created_d, median)
        world.append(
            _Business(
                bid,
                tz,
                tax_bp,
                storefronts,
                sellers,
                managers,
                owner,
                product_ids[:sellable],
                prices,
                wprices,
                costs,
                customers,
                median,
                rows,
            )
        )
    return world


def _staff(
    r: Callable[[], float], ids: _IdCounter, rows: dict[str, list[tuple]], bid: int, kind: str
) -> tuple[list[int], list[int], int]:
    """The business's users and memberships: (sellers, managers, owner)."""
    staff = _STAFF[kind]
    n_users = min(len(staff), 4 + int(r() * 5))
    sellers, managers, owner = [], [], 0
    for k in range(n_users):
        first, last = staff[k]
        uid = ids.take("users")
        email = f"{_ascii_slug(first) or 'user'}.{_ascii_slug(last) or 'staff'}.{uid}@b{bid}.example.com"
        role = _ROLES[k]
        member_active = not (k == n_users - 1 and role == "cashier")
        rows["users"].append((uid, email, first, last, member_active))
        rows["business_memberships"].append((bid, uid, role, member_active))
        if role == "owner":
            owner = uid
        if role in ("owner", "manager", "admin"):
            managers.append(uid)
        if role in ("cashier", "manager") and member_active:
            sellers.append(uid)
    return sellers, managers, owner


def _catalogue(
    r: Callable[[], float],
    ids: _IdCounter,
    rows: dict[str, list[tuple]],
    clock: _Clock,
    bid: int,
    kind: str,
    created_d: int,
) -> tuple[list[int], list[int]]:
    """Categories and products: (product ids, base prices)."""
    product_ids, base_prices, product_rows = [], [], []
    for cat_name, products in _CATALOGS[kind]:
        cid = ids.take("categories")
        rows["categories"].append((cid, bid, cat_name))
        for p_name, sku, price, unit in products:
            pid = ids.take("products")
            barcode = None if r() < 0.15 else f"{600 + bid % 400:03d}{int(r() * 1e10):010d}"
            made = clock.fmt(created_d + 40 + int(r() * 200), 10 * _HOUR + int(r() * 8 * _HOUR))
            product_rows.append([pid, bid, cid, p_name, sku, barcode, unit, True, made])
            product_ids.append(pid)
            base_prices.append(price)
    product_rows[-1][7] = False  # one discontinued product (never sold)
    rows["products"] = [tuple(p) for p in product_rows]
    return product_ids, base_prices


def _stock_levels(
    r: Callable[[], float],
    rows: dict[str, list[tuple]],
    clock: _Clock,
    days: int,
    storefronts: list[int],
    product_ids: list[int],
    base_prices: list[int],
) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Each storefront's inventory rows: (retail prices, wholesale prices, costs) of the sellable products."""
    sellable = len(product_ids) - 1
    updated = clock.fmt(days - 1, 22 * _HOUR + int(r() * _HOUR))
    prices, wprices, costs = [], [], []
    for si, sf in enumerate(storefronts):
        sp, wp, cp = [], [], []
        for j, pid in enumerate(product_ids):
            price = base_prices[j] + (base_prices[j] * (int(r() * 11) - 5) // 100 if si else 0)
            cost = price * (55 + int(r() * 35)) // 100 if r() > 0.05 else price + price // 10
            reorder = 5 + int(r() * 16)
            slot = (j + si) % 10
            if si == 0 and j == 2:
                qty = -1 - int(r() * 5)  # oversold
            elif slot == 0:
                qty = 0
            elif slot == 1:
                qty = 1 + int(r() * reorder)
            else:
                qty = reorder + 1 + int(r() * 200)
            rows["storefront_inventory"].append((sf, pid, qty, reorder, cost, price, updated))
            if j < sellable:
                sp.append(price)
                wp.append(price * 90 // 100)
                cp.append(cost)
        prices.append(sp)
        wprices.append(wp)
        costs.append(cp)
    return prices, wprices, costs


_LIMIT_TIMES_MEDIAN = {"slow": 8, "near": 30, "overpaid": 20, "blocked": 10, "good": 40, "credit": 25}


def _customer_rows(
    r: Callable[[], float],
    ids: _IdCounter,
    rows: dict[str, list[tuple]],
    clock: _Clock,
    bid: int,
    kind: str,
    created_d: int,
    median: int,
) -> list[_Customer]:
    """The business's customers, each with the profile that drives their credit history."""
    names = _CUSTOMERS[kind]
    n_cust = min(len(names), max(8, 8 + int(r() * 13)))
    customers = []
    for k in range(n_cust):
        c_name = names[k]
        wholesale = c_name.endswith("*")
        c_name = c_name.rstrip("*")
        cid = ids.take("customers")
        profile = _PROFILES[k] if k < len(_PROFILES) else ("credit" if r() < 0.4 else "cash")
        limit = -(-median * _LIMIT_TIMES_MEDIAN.get(profile, 0) // 100) * 100  # rounded up to whole units
        slug = _ascii_slug(c_name)
        email = f"{slug}@example.com" if slug and r() < 0.7 else None
        phone = f"+{200 + bid} {20 + int(r() * 79)} 555 {int(r() * 10000):04d}" if r() < 0.8 else None
        address = f"{1 + int(r() * 300)} {('High St', 'Market Rd', 'Station Ave')[k % 3]}" if r() < 0.6 else None
        if bid == 1 and k == 1:
            phone, address, email = "+233 24 555 0101", "-5 Main St", "@handle"
        if profile == "new":
            when = clock.fmt(0, 6 * _HOUR + 30 * _MIN)
        else:
            when = clock.fmt(created_d + 60 + int(r() * 300), 9 * _HOUR + int(r() * 9 * _HOUR))
        c = _Customer(cid, profile, wholesale, limit, profile != "inactive", profile == "blocked")
        customers.append(c)
        kind_of = "wholesale" if wholesale else "retail"
        rows["customers"].append((cid, bid, c_name, email, phone, address, kind_of, limit, c.active, c.blocked, when))
    return customers


# --------------------------------------------------------------------------------------------------------
# The daily simulation
# --------------------------------------------------------------------------------------------------------

_COVER = (
    ("completed", "cash"),
    ("completed", "card"),
    ("completed", "mobile_money"),
    ("completed", "mixed"),
    ("completed", "credit"),
    ("draft", "cash"),
    ("cancelled", "card"),
    ("refunded", "card"),
    ("partially_refunded", "mixed"),
    ("refunded", "credit"),
)


class _Sim:
    """One business's history, day by day; `day(d)` returns the rows of table `want` for local day d."""

    def __init__(
        self, biz: _Business, spec: DemoSpec, start: datetime.date, days: int, ids: list[int], want: str
    ) -> None:
        self.b, self.spec, self.days, self.ids, self.want = biz, spec, days, ids, want
        self.rng = random.Random(f"{spec.seed}/{biz.id}/days")
        self.arng = random.Random(f"{spec.seed}/{biz.id}/audit")  # audit row details only
        self.clock = _Clock(biz.tz, start)
        self.start = start
        self.receipt = 0
        self.balance = {c.id: 0 for c in biz.customers}
        self.pending: list[tuple] = []  # refunds due later: (absolute us, seq, ...)
        self.seq = 0
        cs = biz.customers
        self.buyers = [c for c in cs if c.active and not c.blocked and c.profile not in ("slow",)]
        self.credit_buyers = [c for c in self.buyers if c.limit > 0 and c.profile != "new"]
        self.good = [c for c in cs if c.profile == "good"] or self.credit_buyers
        self.prof = {c.profile: c for c in reversed(cs)}
        last = days - 1
        slow_days = {last - min(105, last), last - 75, last - 45, last - 10}
        self.slow_days = {d for d in slow_days if d >= 0}
        self.block_day = min(2, last)
        self.limit_change_day = days // 3
        sfs = biz.storefronts
        self.ips = [[f"10.{biz.id % 250}.{si}.{11 + k}" for k in range(3)] for si in range(len(sfs))]
        self.out: list[tuple] = []

    # -- helpers ----------------------------------------------------------------------------------------
    def _audit(
        self,
        d: int,
        us: int,
        user: int | None,
        event: str,
        sale: int | None = None,
        customer: int | None = None,
        payment: int | None = None,
        refund: int | None = None,
        desc: str = "",
        data: str | None = None,
        si: int | None = None,
    ) -> None:
        self.ids[6] += 1
        if self.want != "audit_logs":
            return
        a = self.arng.random
        q = a()
        if q < 0.02:
            data = None
        elif q < 0.027:
            data = _MALFORMED[int(a() * len(_MALFORMED))]
        if si is None:
            ip = f"203.0.113.{1 + int(a() * 250)}" if a() < 0.8 else f"2001:db8::{int(a() * 65535):x}"
            agent = _WEB_AGENTS[int(a() * len(_WEB_AGENTS))]
        else:
            ip = self.ips[si][int(a() * 3)]
            agent = _POS_AGENTS[si % len(_POS_AGENTS)]
        self.out.append(
            (
                self.ids[6],
                self.b.id,
                user,
                event,
                sale,
                customer,
                payment,
                refund,
                desc,
                data,
                ip,
                agent,
                self.clock.fmt(d, us),
            )
        )

    def _credit(
        self,
        d: int,
        us: int,
        cust: _Customer,
        kind: str,
        amount: int,
        sale: int | None,
        reference: str | None,
        desc: str | None,
    ) -> None:
        self.ids[4] += 1
        self.balance[cust.id] += amount
        if self.want == "credit_transactions":
            self.out.append(
                (self.ids[4], self.b.id, cust.id, sale, kind, amount, reference, desc, self.clock.fmt(d, us))
            )

    def _stock(
        self, d: int, us: int, si: int, pid: int, change: int, reason: str, ref: str | None, user: int | None
    ) -> None:
        self.ids[5] += 1
        if self.want == "stock_movements":
            self.out.append(
                (
                    self.ids[5],
                    self.b.id,
                    self.b.storefronts[si],
                    pid,
                    change,
                    reason,
                    ref,
                    user,
                    self.clock.fmt(d, us),
                )
            )

    # -- one day ----------------------------------------------------------------------------------------
    def day(self, d: int) -> list[tuple]:
        """Staff sign in, the day's sales (with payments, credit and refunds due), stock and credit events,
        staff sign out; every random draw in a fixed order, so the same seed gives the same rows."""
        self.out = []
        self._sign_in(d)
        for us, si, _, force in self._sale_times(d):
            self._sale(d, us, si, force)
        self._refunds_due(d)
        self._stock_events(d)
        self._credit_events(d)
        self._sign_out(d)
        return self.out

    def _sign_in(self, d: int) -> None:
        """Staff logins and what happens before opening."""
        b, r = self.b, self.rng.random
        for si in range(len(b.storefronts)):
            self._audit(
                d,
                6 * _HOUR + 35 * _MIN + int(r() * 20 * _MIN),
                b.sellers[si % len(b.sellers)],
                "user_login",
                desc="Signed in",
                data='{"method": "pin"}',
                si=si,
            )
        if d == 0 and "new" in self.prof:
            c = self.prof["new"]
            self._audit(
                d,
                6 * _HOUR + 30 * _MIN,
                b.owner,
                "customer_created",
                customer=c.id,
                desc="Customer created",
                data=f'{{"customer_id": {c.id}, "credit_limit_cents": {c.limit}}}',
            )

    def _sign_out(self, d: int) -> None:
        b, r = self.b, self.rng.random
        for si in range(len(b.storefronts)):
            self._audit(
                d,
                22 * _HOUR + 10 * _MIN + int(r() * 30 * _MIN),
                b.sellers[si % len(b.sellers)],
                "user_logout",
                desc="Signed out",
                data=None,
                si=si,
            )

    def _sale_times(self, d: int) -> list[tuple[int, int, int, tuple | None]]:
        """Sale start times, sorted, with forced sales that guarantee every case the demo promises."""
        r, last, nsf = self.rng.random, self.days - 1, len(self.b.storefronts)
        date = self.start + datetime.timedelta(days=d)
        events: list[tuple[int, int, int, tuple | None]] = []
        k_sales = self.spec.sales_per_day * _WEEKDAY[date.weekday()]
        for si in range(nsf):
            for _ in range(int(k_sales * (0.85 + 0.3 * r()) + 0.5)):
                events.append((_OPEN + int(r() * _SPAN), si, 0, None))
        if d > 0 and (d == 1 or r() < 0.35):
            events.append((30 * _US + int(r() * 9 * _MIN), 0, 0, None))  # just after local midnight
        if d == 2 or r() < 0.35:
            events.append((_DAY - 10 * _MIN + int(r() * 9 * _MIN), 0, 0, None))  # just before local midnight
        if d == 0:
            for k, (status, ptype) in enumerate(_COVER):
                cust = self.good[k % len(self.good)] if ptype == "credit" else None
                events.append((9 * _HOUR + k * 7 * _MIN, k % nsf, 1 + k, (status, ptype, cust, 1)))
        if d in self.slow_days and "slow" in self.prof:
            events.append((11 * _HOUR + int(r() * _HOUR), 0, 20, ("completed", "credit", self.prof["slow"], None)))
        if d < 2 and "blocked" in self.prof:
            events.append((12 * _HOUR + int(r() * _HOUR), 0, 21, ("completed", "credit", self.prof["blocked"], None)))
        if d < last and (date + datetime.timedelta(days=1)).day == 1:  # month end: refund next month
            events.append((15 * _HOUR + int(r() * _HOUR), 0, 22, ("partially_refunded", "card", None, 3)))
        events.sort()
        return events

    def _sale_kind(self, force: tuple | None) -> tuple[_Customer | None, str, str, int | None]:
        """(customer, status, payment type, refund delay) of a sale: drawn, or forced."""
        if force is not None:
            status, ptype, cust, delay = force
            return cust, status, ("cash" if ptype == "credit" and cust is None else ptype), delay
        r, buyers = self.rng.random, self.buyers
        cust = buyers[int(r() * len(buyers))] if r() < 0.4 and buyers else None
        y = r()
        status = (
            "completed"
            if y < 0.87
            else "draft"
            if y < 0.90
            else "cancelled"
            if y < 0.94
            else "partially_refunded"  # 4% of sales lose 5-30% of their total, 2% all of it: refunds stay
            if y < 0.98  # a few percent of sales, as in a real shop
            else "refunded"
        )
        if status == "refunded" and cust is not None and cust.wholesale:
            status = "partially_refunded"  # a wholesale order comes back in part, not all of it
        z = r()
        if cust is not None and cust.limit > 0 and z < 0.45 and cust.profile != "new":
            ptype = "credit"
        else:
            ptype = "cash" if z < 0.45 else "card" if z < 0.72 else "mobile_money" if z < 0.9 else "mixed"
        return cust, status, ptype, None

    def _sale_lines(self, sid: int, si: int, wholesale: bool) -> tuple[list[tuple[int, int]], int, int, int]:
        """The sale's line items: ([(product index, quantity)], subtotal, discount, tax)."""
        b, r, ids = self.b, self.rng.random, self.ids
        lo, hi = self.spec.items_per_sale
        prices = b.wholesale_prices[si] if wholesale else b.prices[si]
        costs, pids = b.costs[si], b.product_ids
        sub = disc = tax = 0
        lines = []
        for _ in range(lo + int(r() * (hi - lo + 1))):
            j = int(r() * len(pids))
            u = r()
            q = 5 + int(u * 46) if wholesale else 1 if u < 0.7 else 2 + int(u * 40) % 4
            price = prices[j]
            line = q * price
            dc = line * (5 + int(r() * 16)) // 100 if r() < 0.1 else 0
            tx = (line - dc) * b.tax_bp // 10000
            sub += line
            disc += dc
            tax += tx
            ids[1] += 1
            if self.want == "sale_items":
                self.out.append((ids[1], sid, pids[j], q, price, costs[j], dc, tx, line - dc + tx))
            lines.append((j, q))
        return lines, sub, disc, tax

    def _sale(self, d: int, us: int, si: int, force: tuple | None) -> None:
        """One sale started at `us` in storefront `si`: its rows, payments, credit, stock and audit events."""
        sale = self._new_sale(d, us, si, force)
        self._sale_row(sale)
        cust_id = sale.cust.id if sale.cust else None
        self._sale_opened(d, us, si, sale.sid, sale.receipt, sale.cashier, cust_id, sale.status, sale.lines)
        if sale.status == "cancelled":
            self._sale_cancelled(sale)
        if sale.status not in _DONE:
            return
        self._sale_completed(sale)
        self._sale_stock(sale)
        if sale.status != "completed":
            self._queue_refund(
                d, sale.end_us, si, sale.sid, sale.receipt, sale.cust, sale.ptype, sale.status, sale.total,
                sale.lines, sale.delay,
            )  # fmt: skip

    def _new_sale(self, d: int, us: int, si: int, force: tuple | None) -> _Sale:
        """Draw the sale: its receipt, cashier, customer, status, payment type, lines and end time."""
        b, r, ids = self.b, self.rng.random, self.ids
        ids[0] += 1
        self.receipt += 1
        cashier = b.sellers[int(r() * len(b.sellers))]
        cust, status, ptype, delay = self._sale_kind(force)
        wholesale = cust is not None and cust.wholesale
        lines, sub, disc, tax = self._sale_lines(ids[0], si, wholesale)
        total = sub - disc + tax
        if ptype == "credit" and status in _DONE and force is None and self.balance[cust.id] + total > cust.limit:
            ptype = "cash"  # the POS refuses credit over the limit
        end_us = us + _MIN + int(r() * 14 * _MIN)
        if d == self.days - 1 and end_us >= _DAY:
            end_us = _DAY - 1
        return _Sale(
            d, us, end_us, si, ids[0], f"R{b.id}-{self.receipt:06d}", cashier, cust, status, ptype, delay,
            wholesale, lines, sub, disc, tax, total,
        )  # fmt: skip

    def _sale_row(self, s: _Sale) -> None:
        if self.want != "sales":
            return
        fmt = self.clock.fmt
        self.out.append(
            (
                s.sid,
                self.b.id,
                self.b.storefronts[s.si],
                s.cust.id if s.cust else None,
                s.cashier,
                s.receipt,
                "wholesale" if s.wholesale else "retail",
                s.status,
                s.ptype,
                s.sub,
                s.disc,
                s.tax,
                s.total,
                fmt(s.d, s.us),
                fmt(s.d, s.end_us) if s.status in _DONE else None,
            )
        )

    def _sale_cancelled(self, s: _Sale) -> None:
        self._audit(
            s.d,
            s.end_us,
            s.cashier,
            "sale_cancelled",
            sale=s.sid,
            customer=s.cust.id if s.cust else None,
            desc=f"Sale {s.receipt} cancelled",
            data='{"reason": "customer left"}',
            si=s.si,
        )

    def _sale_completed(self, s: _Sale) -> None:
        """A completed sale's audit event, its payments and (on credit) the charge to the customer's account."""
        cust_id = s.cust.id if s.cust else None
        self._audit(
            s.d,
            s.end_us,
            s.cashier,
            "sale_completed",
            sale=s.sid,
            customer=cust_id,
            desc=f"Sale {s.receipt} completed",
            data=f'{{"receipt": "{s.receipt}", "total_cents": {s.total}, "payment_type": "{s.ptype}"}}',
            si=s.si,
        )
        self._payments(s.d, s.end_us, s.si, s.sid, s.cashier, cust_id, s.ptype, s.total)
        if s.ptype != "credit":
            return
        self._credit(s.d, s.end_us, s.cust, "charge", s.total, s.sid, s.receipt, f"Credit sale {s.receipt}")
        self._audit(
            s.d,
            s.end_us,
            s.cashier,
            "credit_charged",
            sale=s.sid,
            customer=cust_id,
            desc="Charged to account",
            data=f'{{"amount_cents": {s.total}}}',
            si=s.si,
        )

    def _sale_stock(self, s: _Sale) -> None:
        """The stock leaving with a completed sale, one movement per line."""
        b, ids = self.b, self.ids
        if self.want != "stock_movements":
            ids[5] += len(s.lines)  # same ids, no rows
            return
        at = self.clock.fmt(s.d, s.end_us)
        for j, q in s.lines:
            ids[5] += 1
            self.out.append((ids[5], b.id, b.storefronts[s.si], b.product_ids[j], -q, "sale", s.receipt, s.cashier, at))

    def _sale_opened(
        self,
        d: int,
        us: int,
        si: int,
        sid: int,
        receipt: str,
        cashier: int,
        cust_id: int | None,
        status: str,
        lines: list[tuple[int, int]],
    ) -> None:
        """The audit events of opening a sale (and of each item added to one never completed)."""
        unfinished = status in ("draft", "cancelled")
        if self.want != "audit_logs":  # same ids, no detail drawn (the audit rng is its own stream)
            self.ids[6] += 1 + (len(lines) if unfinished else 0)
            return
        self._audit(
            d,
            us,
            cashier,
            "sale_created",
            sale=sid,
            customer=cust_id,
            desc=f"Sale {receipt} opened",
            data=f'{{"receipt": "{receipt}", "storefront_id": {self.b.storefronts[si]}}}',
            si=si,
        )
        if unfinished:
            for j, q in lines:
                self._audit(
                    d,
                    us + 1000,
                    cashier,
                    "item_added",
                    sale=sid,
                    data=f'{{"product_id": {self.b.product_ids[j]}, "quantity": {q}}}',
                    si=si,
                )

    def _payments(
        self, d: int, end_us: int, si: int, sid: int, cashier: int, cust_id: int | None, ptype: str, total: int
    ) -> None:
        r, ids = self.rng.random, self.ids
        if ptype == "mixed":
            a = max(1, min(total - 1, total * (20 + int(r() * 61)) // 100))
            pays = (("cash", a), ("card" if r() < 0.6 else "mobile_money", total - a))
        else:
            pays = ((ptype, total),)
        for method, amount in pays:
            ids[2] += 1
            if self.want == "payments":
                self.out.append((ids[2], self.b.id, sid, method, amount, self.clock.fmt(d, end_us)))
            self._audit(
                d,
                end_us,
                cashier,
                "payment_received",
                sale=sid,
                customer=cust_id,
                payment=ids[2],
                desc=f"{method} payment",
                data=f'{{"method": "{method}", "amount_cents": {amount}}}',
                si=si,
            )

    def _queue_refund(
        self,
        d: int,
        end_us: int,
        si: int,
        sid: int,
        receipt: str,
        cust: _Customer | None,
        ptype: str,
        status: str,
        total: int,
        lines: list[tuple[int, int]],
        delay: int | None,
    ) -> None:
        """A refunded or partly refunded sale: its refund, due the same day or up to ten days later."""
        r, last, pids = self.rng.random, self.days - 1, self.b.product_ids
        if delay is None:
            delay = 1 + int(r() * 10) if r() < 0.45 else 0
            if delay > last - d:  # due after the last day: refunded the same day instead, not all on the last day
                delay = 0
        delay = min(delay, last - d)
        if delay == 0:
            ref_us = end_us + 10 * _MIN + int(r() * 3 * _HOUR)
        else:
            ref_us = delay * _DAY + 9 * _HOUR + int(r() * 10 * _HOUR)
        ref_us = min(ref_us, (last - d + 1) * _DAY - 1)
        amount = total if status == "refunded" else max(1, total * (5 + int(r() * 26)) // 100)
        reason = _REFUND_REASONS[int(r() * len(_REFUND_REASONS))]
        returned = lines if status == "refunded" else lines[:1]
        self.seq += 1
        heapq.heappush(
            self.pending,
            (
                d * _DAY + ref_us,
                self.seq,
                sid,
                si,
                amount,
                reason,
                receipt,
                cust if ptype == "credit" else None,
                cust.id if cust else None,
                [(pids[j], q if status == "refunded" else 1) for j, q in returned],
            ),
        )

    def _refunds_due(self, d: int) -> None:
        """The refunds due today (of today's or earlier sales)."""
        b, r = self.b, self.rng.random
        while self.pending and self.pending[0][0] < (d + 1) * _DAY:
            at, _, sid, si, amount, reason, receipt, credit_cust, cust_id, returned = heapq.heappop(self.pending)
            ref_us = at - d * _DAY
            user = b.managers[int(r() * len(b.managers))]
            self.ids[3] += 1
            rid = self.ids[3]
            if self.want == "refunds":
                self.out.append((rid, b.id, sid, amount, reason, user, self.clock.fmt(d, ref_us)))
            for pid, q in returned:
                self._stock(d, ref_us, si, pid, q, "return", receipt, user)
            if credit_cust is not None:
                self._credit(d, ref_us, credit_cust, "adjustment", -amount, sid, receipt, f"Refund of {receipt}")
            self._audit(
                d,
                ref_us,
                user,
                "refund_issued",
                sale=sid,
                customer=cust_id,
                refund=rid,
                desc=f"Refund for {receipt}",
                data=f'{{"amount_cents": {amount}}}',
                si=si,
            )

    def _stock_events(self, d: int) -> None:
        b, r = self.b, self.rng.random
        nsf, npids = len(b.storefronts), len(b.product_ids)
        first = d == 0
        for si in range(nsf):
            if first or r() < 0.3:
                ref = f"PO-{b.id}-{d:04d}-{si}"
                user = b.managers[int(r() * len(b.managers))]
                at = 8 * _HOUR + int(r() * 2 * _HOUR)
                for _ in range(1 + int(r() * 3)):
                    self._stock(d, at, si, b.product_ids[int(r() * npids)], 12 + int(r() * 109), "purchase", ref, user)
        user = b.managers[int(r() * len(b.managers))]
        if first or r() < 0.3:
            si, pid, delta = int(r() * nsf), b.product_ids[int(r() * npids)], 1 + int(r() * 5)
            delta = -delta if r() < 0.6 else delta
            at = 13 * _HOUR + int(r() * 4 * _HOUR)
            self._stock(d, at, si, pid, delta, "adjustment", "Stock count", user)
            self._audit(
                d,
                at,
                user,
                "stock_adjusted",
                desc="Stock count correction",
                data=f'{{"product_id": {pid}, "quantity_change": {delta}}}',
                si=si,
            )
        if nsf > 1 and (first or r() < 0.15):
            a = int(r() * nsf)
            c = (a + 1 + int(r() * (nsf - 1))) % nsf
            pid, qty = b.product_ids[int(r() * npids)], 2 + int(r() * 19)
            at = 10 * _HOUR + int(r() * 6 * _HOUR)
            ref = f"TR-{b.id}-{d:04d}"
            self._stock(d, at, a, pid, -qty, "transfer_out", ref, user)
            self._stock(d, at + 45 * _MIN, c, pid, qty, "transfer_in", ref, user)
            self._audit(
                d,
                at,
                user,
                "stock_transferred",
                desc=ref,
                data=(
                    f'{{"product_id": {pid}, "quantity": {qty}, "from_storefront_id": '
                    f'{b.storefronts[a]}, "to_storefront_id": {b.storefronts[c]}}}'
                ),
                si=a,
            )
        if first or r() < 0.1:
            si = int(r() * nsf)
            self._stock(
                d,
                18 * _HOUR + int(r() * 2 * _HOUR),
                si,
                b.product_ids[int(r() * npids)],
                -1 - int(r() * 3),
                "damage",
                "Damaged in store",
                user,
            )

    def _credit_events(self, d: int) -> None:
        """The day's account events after the sales: payments, an adjustment, customer changes, an export."""
        self._account_payments(d)
        self._account_adjustment(d)
        self._customer_updated(d)
        self._account_milestones(d)
        if d % 7 == 0:
            self._report_exported(d)
        if d == self.days - 1:
            self._settle(d)

    def _account_payments(self, d: int) -> None:
        """Customers with a credit profile paying (part of) what they owe."""
        b, r, bal = self.b, self.rng.random, self.balance
        for c in b.customers:
            if c.profile not in ("good", "overpaid", "near", "credit"):
                continue
            owed = bal[c.id]
            pay = 0
            if c.profile == "near":
                if owed > c.limit * 95 // 100 and r() < 0.3:
                    pay = owed * (20 + int(r() * 20)) // 100
            elif owed > 0 and r() < 0.15:
                pay = owed if r() < 0.7 else max(1, owed * (50 + int(r() * 50)) // 100)
            if not pay:
                continue
            at = 9 * _HOUR + int(r() * 10 * _HOUR)
            text = _CREDIT_PAY_TEXT[int(r() * len(_CREDIT_PAY_TEXT))]
            self._credit(d, at, c, "payment", -pay, None, f"CP-{b.id}-{self.ids[4] + 1}", text)
            self._audit(
                d,
                at,
                b.owner,
                "credit_payment",
                customer=c.id,
                desc="Account payment",
                data=f'{{"amount_cents": {pay}}}',
            )

    def _account_adjustment(self, d: int) -> None:
        """Now and then a goodwill discount on an account that owes, or a statement fee on one that does not."""
        r, bal = self.rng.random, self.balance
        if not (r() < 0.06 and self.credit_buyers):
            return
        c = self.credit_buyers[int(r() * len(self.credit_buyers))]
        at = 16 * _HOUR + int(r() * 2 * _HOUR)
        if bal[c.id] > 100:
            discount = max(1, bal[c.id] * (1 + int(r() * 4)) // 100)
            self._credit(d, at, c, "adjustment", -discount, None, None, "Goodwill discount")
        else:
            self._credit(d, at, c, "adjustment", 500, None, None, "Statement fee")

    def _customer_updated(self, d: int) -> None:
        r = self.rng.random
        if not (r() < 0.1 and self.buyers):
            return
        c = self.buyers[int(r() * len(self.buyers))]
        at = 11 * _HOUR + int(r() * 5 * _HOUR)
        self._audit(
            d,
            at,
            self.b.owner,
            "customer_updated",
            customer=c.id,
            desc="Contact details updated",
            data=json.dumps({"fields": ["phone", "address"], "note": "Zmiana adresu – ул. Ленина"}, ensure_ascii=False),
        )

    def _account_milestones(self, d: int) -> None:
        """On their fixed days: the "near" customer's credit limit raised, the "blocked" one blocked."""
        owner = self.b.owner
        if d == self.limit_change_day and "near" in self.prof:
            c = self.prof["near"]
            self._audit(
                d,
                10 * _HOUR,
                owner,
                "credit_limit_changed",
                customer=c.id,
                desc="Credit limit raised",
                data=f'{{"old_limit_cents": {c.limit * 4 // 5}, "new_limit_cents": {c.limit}}}',
            )
        if d == self.block_day and "blocked" in self.prof:
            c = self.prof["blocked"]
            self._audit(
                d,
                17 * _HOUR,
                owner,
                "customer_blocked",
                customer=c.id,
                desc="Blocked: payments overdue",
                data='{"reason": "overdue"}',
            )

    def _report_exported(self, d: int) -> None:
        """A weekly export by the owner; every other week its audit data is malformed JSON."""
        at = 20 * _HOUR + int(self.rng.random() * _HOUR)
        data = '{"broken": ' if (d // 7) % 2 == 0 else '{"report": "daily_sales", "format": "xlsx"}'
        self._audit(d, at, self.b.owner, "report_exported", desc="Exported daily sales", data=data)

    def _settle(self, d: int) -> None:
        """On the last day, bring the profile customers to the balances the demo promises."""
        r, bal = self.rng.random, self.balance
        at = 21 * _HOUR + int(r() * 30 * _MIN)
        for c in self.b.customers:
            owed = bal[c.id]
            if c.profile == "slow" and owed <= c.limit:
                self._credit(
                    d,
                    at,
                    c,
                    "adjustment",
                    c.limit - owed + c.limit // 10 + 1,
                    None,
                    None,
                    "Late payment fee and interest",
                )
            elif c.profile == "near":
                target = c.limit * (85 + int(r() * 10)) // 100
                if not c.limit * 80 // 100 < owed < c.limit * 99 // 100:
                    diff = target - owed
                    if diff > 0:
                        self._credit(d, at, c, "adjustment", diff, None, None, "Balance transfer from old account")
                    else:
                        self._credit(d, at, c, "payment", diff, None, None, "Partial payment")
            elif c.profile == "overpaid":
                credit = c.limit // 10 + 1
                self._credit(d, at, c, "payment", -(owed + credit), None, None, "Overpayment kept as store credit")


# --------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------


def generate(spec: DemoSpec) -> Iterator[tuple[str, list[str], Iterable[tuple]]]:
    """Yield (table, columns, rows) in FK-safe order; rows are generators, consumed one table at a time."""
    end = spec.resolved_end_date()
    start = end - datetime.timedelta(days=spec.days - 1)
    world = _build_world(spec, start, spec.days)
    for table in STATIC_TABLES:
        yield table, list(TABLES[table]), (row for biz in world for row in biz.rows[table])
    for table in DAILY_TABLES:
        yield table, list(TABLES[table]), _daily_rows(world, spec, start, table)


def _daily_rows(world: list[_Business], spec: DemoSpec, start: datetime.date, table: str) -> Iterator[tuple]:
    ids = [0] * 7  # sale, sale_item, payment, refund, credit_transaction, stock_movement, audit_log
    for biz in world:
        sim = _Sim(biz, spec, start, spec.days, ids, table)
        for d in range(spec.days):
            yield from sim.day(d)


def _counted(rows: Iterable[tuple], counts: dict[str, int], table: str) -> Iterator[tuple]:
    counts[table] = 0
    for row in rows:
        counts[table] += 1
        yield row


def _build_sqlite_at(tmp: pathlib.Path, spec: DemoSpec) -> dict[str, int]:
    if tmp.exists():
        tmp.unlink()
    counts: dict[str, int] = {}
    conn = sqlite3.connect(tmp)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(SCHEMA_PATH.read_text(encoding="utf-8"))
        conn.execute("BEGIN")
        for table, columns, rows in generate(spec):
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            conn.executemany(sql, _counted(rows, counts, table))
        conn.commit()
    finally:
        conn.close()
    return counts


def build_sqlite(path: pathlib.Path, spec: DemoSpec = DemoSpec()) -> dict[str, int]:  # noqa: B008
    """Create a new SQLite database at `path` (built beside it, then renamed into place). Rows per table."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        counts = _build_sqlite_at(tmp, spec)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return counts


_REFERENCES = re.compile(r"^[ \t]*(\w+)[ \t][^,\n]*?([ \t]+REFERENCES[ \t]+(\w+)[ \t]*\((\w+)\))", re.MULTILINE)


def _schema_statements() -> tuple[list[str], list[str], list[str]]:
    """The schema split for bulk loading: (CREATE TABLE without inline foreign keys, ALTER TABLE ... ADD
    FOREIGN KEY, CREATE INDEX). Adding the same foreign keys after the load gives the same schema (same
    default constraint names) and checks them in one pass instead of one trigger call per row."""
    text = "\n".join(line.split("--", 1)[0] for line in SCHEMA_PATH.read_text(encoding="utf-8").splitlines())
    creates, foreign_keys, indexes = [], [], []
    for statement in (s.strip() for s in text.split(";")):
        if statement.upper().startswith("CREATE INDEX"):
            indexes.append(statement)
        elif statement.upper().startswith("CREATE TABLE"):
            table = statement.split()[2]
            for m in _REFERENCES.finditer(statement):
                foreign_keys.append(f"ALTER TABLE {table} ADD FOREIGN KEY ({m[1]}) REFERENCES {m[3]}({m[4]})")
            creates.append(_REFERENCES.sub(lambda m: m[0][: m.start(2) - m.start(0)], statement))
        elif statement:
            creates.append(statement)
    return creates, foreign_keys, indexes


def _csv_chunks(spec: DemoSpec, chunk_rows: int) -> Iterator[tuple[str, str, io.StringIO | None, int]]:
    """(table, COPY statement, CSV buffer, rows) per chunk; a None buffer closes a table."""
    for table, columns, rows in generate(spec):
        options = "FORMAT csv"
        if table in _FORCE_NOT_NULL:
            options += f", FORCE_NOT_NULL ({', '.join(_FORCE_NOT_NULL[table])})"
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH ({options})"
        if table == "audit_logs":
            rows = _valid_json_only(rows, columns.index("event_data"))
        it = iter(rows)
        while chunk := list(itertools.islice(it, chunk_rows)):
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(chunk)
            buf.seek(0)
            yield table, sql, buf, len(chunk)
        yield table, sql, None, 0


def _produce(spec: DemoSpec, chunk_rows: int, q: multiprocessing.Queue) -> None:
    """Child process body: put (table, COPY statement, CSV text or None, rows) items, then None."""
    try:
        for table, sql, buf, n in _csv_chunks(spec, chunk_rows):
            q.put((table, sql, None if buf is None else buf.getvalue(), n))
        q.put(None)
    except BaseException as exc:  # handed to the parent as text
        q.put(f"{type(exc).__name__}: {exc}")


def _chunks_from_process(spec: DemoSpec, chunk_rows: int) -> Iterator[tuple[str, str, io.StringIO | None, int]]:
    """Like `_csv_chunks`, but generated in a forked child process so generation overlaps the COPYs.

    Fork (not spawn) so callers need no `if __name__ == "__main__"` guard; the child only generates text and
    leaves with os._exit, never touching the parent's connection. Without fork, generate in-process."""
    if "fork" not in multiprocessing.get_all_start_methods():
        yield from _csv_chunks(spec, chunk_rows)
        return
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue(maxsize=6)
    proc = ctx.Process(target=_produce, args=(spec, chunk_rows, q), name="pos-demo-generator", daemon=True)
    proc.start()
    try:
        while True:
            try:
                item = q.get(timeout=1.0)
            except queue.Empty:
                if not proc.is_alive():
                    raise RuntimeError(f"demo generator process died (exit code {proc.exitcode})") from None
                continue
            if item is None:
                return
            if isinstance(item, str):
                raise RuntimeError(f"demo generator failed: {item}")
            table, sql, text, n = item
            yield table, sql, None if text is None else io.StringIO(text), n
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join()


def build_postgres(
    url: str,
    spec: DemoSpec = DemoSpec(),  # noqa: B008
    *,
    drop_existing: bool = False,
    chunk_rows: int = 50_000,
    parallel: bool = True,
) -> dict[str, int]:
    """Create the schema at libpq `url` and COPY the demo data in (one transaction). Rows per table.

    Foreign keys and indexes are added after the load; with `parallel` the rows are generated in a
    child process while this one feeds COPY."""
    import psycopg2

    creates, foreign_keys, indexes = _schema_statements()
    counts: dict[str, int] = {}
    conn = psycopg2.connect(url)
    try:
        conn.set_client_encoding("UTF8")
        with conn.cursor() as cur:
            if drop_existing:
                cur.execute(f"DROP TABLE IF EXISTS {', '.join(reversed(TABLES))} CASCADE")
            for statement in creates:
                cur.execute(statement)
            for table, sql, buf, n in (_chunks_from_process if parallel else _csv_chunks)(spec, chunk_rows):
                counts[table] = counts.get(table, 0) + n
                if buf is not None:
                    cur.copy_expert(sql, buf)
            for statement in foreign_keys + indexes:
                cur.execute(statement)
            cur.execute(f"ANALYZE {', '.join(TABLES)}")
        conn.commit()
    finally:
        conn.close()
    return counts


def _valid_json_only(rows: Iterable[tuple], col: int) -> Iterator[tuple]:
    for row in rows:
        if row[col] in MALFORMED_EVENT_DATA:
            row = row[:col] + (None,) + row[col + 1 :]
        yield row


def ensure_demo_database(path: pathlib.Path) -> pathlib.Path:
    """Build the default demo database at `path` unless it exists; safe when processes race. Returns path."""
    path = pathlib.Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        _build_sqlite_at(tmp, DemoSpec())
        if not path.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line: build a demo database and print rows per table."""
    parser = argparse.ArgumentParser(description="Build the deterministic POS demo database.")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--sqlite", type=pathlib.Path, help="SQLite file to create")
    target.add_argument("--postgres", metavar="URL", help="libpq URL of a PostgreSQL database")
    defaults = DemoSpec()
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--sales-per-day", type=int, default=defaults.sales_per_day)
    parser.add_argument("--extra-businesses", type=int, default=defaults.extra_businesses)
    parser.add_argument("--end-date", type=datetime.date.fromisoformat, help="YYYY-MM-DD (default: yesterday)")
    parser.add_argument("--only-business", type=int, action="append", help="only this business id (repeatable)")
    parser.add_argument("--drop-existing", action="store_true", help="PostgreSQL: drop the POS tables first")
    args = parser.parse_args(argv)
    spec = DemoSpec(
        seed=args.seed,
        end_date=args.end_date,
        days=args.days,
        sales_per_day=args.sales_per_day,
        extra_businesses=args.extra_businesses,
        only_business_ids=tuple(args.only_business) if args.only_business else None,
    )
    started = time.perf_counter()
    if args.sqlite:
        counts = build_sqlite(args.sqlite, spec)
    else:
        counts = build_postgres(args.postgres, spec, drop_existing=args.drop_existing)
    for table, n in counts.items():
        print(f"{table:22} {n:>10,}")
    print(f"{'total':22} {sum(counts.values()):>10,}  ({time.perf_counter() - started:.1f}s)")


if __name__ == "__main__":
    main()
