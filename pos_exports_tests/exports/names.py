"""The files a period export of the fixture holds per dataset: one workbook, one PDF, one CSV per table."""

CSV_TABLES = {
    "sales": (
        "",
        "-summary",
        "-previous_period",
        "-by_storefront",
        "-by_payment_type",
        "-top_products",
        "-top_categories",
        "-by_cashier",
        "-line_items",
    ),
    "customers": ("", "-summary", "-credit_aging", "-credit_transactions"),
    "inventory": ("", "-summary", "-by_storefront", "-reorder_list"),
    "audit_log": ("", "-summary", "-event_types", "-top_users"),
}


def export_files(datasets, formats=("xlsx", "csv", "pdf")) -> set[str]:
    """Every file name of these datasets and formats (`sales.csv`, `sales-summary.csv`, ... for CSV)."""
    return {
        name
        for d in datasets
        for f in formats
        for name in ([f"{d}{part}.csv" for part in CSV_TABLES[d]] if f == "csv" else [f"{d}.{f}"])
    }
