"""Names reach a business's archive and exports only through its own rows and memberships (users are global).

The case is `fixtures.CROSS_BUSINESS` on SQLite and a real PostgreSQL: business 1's sale R-106 was rung up by
user 2, a member of business 2 only, at business 2's storefront for business 2's customer and product.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import dagster as dg
import openpyxl
import pypdf

from pos_exports.archive.extract import archive_business_day, marker_key
from pos_exports.archive.read import read_table
from pos_exports.archive.tables import DATASETS, NOT_MEMBER
from pos_exports.defs.archive import daily_archive
from pos_exports.defs.on_demand import on_demand_export_job
from pos_exports.defs.resources import ClockResource, PosDatabase, StorageResource
from pos_exports.periods import day_window
from pos_exports.source.database import connect, list_businesses
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.fixtures import CROSS_FOREIGN_TEXT, DAY

DAY_D = dt.date.fromisoformat(DAY)
EVENTS = [dg.AssetKey("sales_archive"), dg.AssetKey("audit_log_archive")]


def _rows(storage, dataset, table, key="id"):
    data = read_table(storage, dataset, table, 1, [DAY_D]).to_pylist()  # through the manifest, verified
    return {r[key]: r for r in data}


def _sheet(path, title) -> list[dict]:
    rows = list(openpyxl.load_workbook(path)[title].iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]


def test_every_joined_name_comes_from_the_business_own_rows(cross_business_db, tmp_path):
    storage = LocalStorage(tmp_path / "store")
    with connect(cross_business_db) as reader:
        business = {b.id: b for b in list_businesses(reader)}[1]
        now = day_window(DAY_D, business.timezone).end + dt.timedelta(hours=1)
        for ds in DATASETS.values():
            archive_business_day(reader, storage, ds, business, DAY_D, now=now)

    sales = _rows(storage, "sales", "sales")
    assert sales[106]["user_id"] == 2 and sales[106]["cashier_email"] is None
    assert sales[106]["cashier_name"] == f"user 2 {NOT_MEMBER}"
    assert sales[106]["customer_name"] == f"customer 2001 {NOT_MEMBER}"
    assert sales[106]["storefront_name"] == f"storefront 21 {NOT_MEMBER}"
    # A former member (inactive membership) is still the business's own user; members keep their names.
    assert (sales[107]["cashier_name"], sales[107]["cashier_email"]) == ("Esi Boateng", "esi@example.com")
    assert (sales[101]["cashier_name"], sales[101]["storefront_name"]) == ("Kofi Owusu", "Osu")
    items = _rows(storage, "sales", "sale_items")
    assert (items[14]["product_name"], items[14]["sku"]) == (f"product 21 {NOT_MEMBER}", None)
    assert (items[15]["product_name"], items[15]["category_name"]) == ("Palm wine", f"category 3 {NOT_MEMBER}")
    assert _rows(storage, "sales", "refunds")[3]["user_email"] == f"user 2 {NOT_MEMBER}"
    move = _rows(storage, "inventory", "stock_movements")[4]
    assert (move["storefront_name"], move["product_name"], move["user_email"]) == (
        f"storefront 21 {NOT_MEMBER}",
        f"product 21 {NOT_MEMBER}",
        f"user 2 {NOT_MEMBER}",
    )
    stock = _rows(storage, "inventory", "inventory", key="product_id")
    assert stock[3]["category_name"] == f"category 3 {NOT_MEMBER}"
    audit = _rows(storage, "audit_log", "audit_logs")[6]
    assert (audit["user_email"], audit["user_first_name"], audit["user_last_name"]) == (
        f"user 2 {NOT_MEMBER}",
        None,
        None,
    )
    # Nothing of business 2 anywhere in business 1's archive.
    for ds in DATASETS.values():
        for table in ds.tables:
            text = json.dumps(_rows(storage, ds.name, table.name, key=table.fields[0][0]), default=str)
            assert not [t for t in CROSS_FOREIGN_TEXT if t in text], (ds.name, table.name)

    record = json.loads(storage.read_bytes(marker_key("sales", DAY_D, 1)))
    by_table = {t["table"]: t["non_members"] for t in record["tables"]}
    assert by_table["sales"] == [
        {"column": "cashier_name", "what": "user", "id": 2, "rows": 1},
        {"column": "customer_name", "what": "customer", "id": 2001, "rows": 1},
        {"column": "storefront_name", "what": "storefront", "id": 21, "rows": 1},
    ]
    assert by_table["sale_items"] == [
        {"column": "category_name", "what": "category", "id": 3, "rows": 1},
        {"column": "product_name", "what": "product", "id": 21, "rows": 1},
    ]
    assert by_table["payments"] == []


def test_cross_business_cashier_end_to_end(cross_business_db, tmp_path):
    """Source -> archive (a real Dagster run) -> on-demand export files opened and read back."""
    root = tmp_path / "store"
    with dg.instance_for_test() as instance:
        archived = dg.materialize(
            [daily_archive],
            selection=EVENTS,
            partition_key=DAY,
            resources={
                "pos_database": PosDatabase(url=cross_business_db),
                "storage": StorageResource(root=str(root)),
                "clock": ClockResource(),
            },
            instance=instance,
            raise_on_error=False,
        )
    assert archived.success
    checks = {c.asset_key.to_user_string(): c for c in archived.get_asset_check_evaluations()}
    sales_check = checks["sales_archive"]
    assert sales_check.passed  # the rows reconcile; the foreign names are reported, not archived
    assert sales_check.metadata["non_member_references"].value == 6  # 3 in sales, 2 in sale_items, 1 in refunds
    listed = sales_check.metadata["non_members"].value
    assert f"- {DAY} business 1: sales.cashier_name: user 2 (1 row)" in listed
    assert "business 2" not in listed  # business 2's own sales name only its own rows
    assert "audit_logs.user_email: user 2 (1 row)" in checks["audit_log_archive"].metadata["non_members"].value

    exported = on_demand_export_job.execute_in_process(
        run_config={
            "ops": {
                "on_demand_export": {
                    "config": {
                        "business_id": 1,
                        "datasets": ["sales", "audit_log"],
                        "period_kind": "daily",
                        "period_key": DAY,
                    }
                }
            }
        },
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource()},
        raise_on_error=False,
    )
    assert exported.success
    folder = root / exported.output_for_node("on_demand_export")
    sales = {r["Receipt"]: r for r in _sheet(folder / "sales.xlsx", "Sales")}
    assert sales["R-106"]["Cashier"] == f"user 2 {NOT_MEMBER}"
    assert sales["R-106"]["Customer"] == f"customer 2001 {NOT_MEMBER}"
    assert sales["R-106"]["Storefront"] == f"storefront 21 {NOT_MEMBER}"
    assert sales["R-101"]["Cashier"] == "Kofi Owusu"
    audit = {r["Description"]: r for r in _sheet(folder / "audit_log.xlsx", "Audit logs")}
    assert audit["Sale R-106"]["User email"] == f"user 2 {NOT_MEMBER}"
    assert audit["Sale R-106"]["User name"] is None
    assert audit["Sale R-101"]["User email"] == "kofi@example.com"

    for path in sorted(folder.iterdir()):
        if path.suffix == ".xlsx":
            book = openpyxl.load_workbook(path)
            text = "\n".join(str(c) for ws in book for row in ws.iter_rows(values_only=True) for c in row if c)
        elif path.suffix == ".pdf":
            text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(path.read_bytes())).pages)
        else:
            text = path.read_bytes().decode("utf-8-sig")
        assert not [t for t in CROSS_FOREIGN_TEXT if t in text], path.name
        if path.name in ("sales.csv", "audit_log.csv"):  # the main table of each dataset (one table per CSV)
            assert f"user 2 {NOT_MEMBER}" in text
