import csv
import io

from pos_exports.render.csvs import render_csv
from pos_exports_tests.render.sample import LONG_TEXT, META, SALE_ROWS, sample_report


def _table(raw: bytes) -> list[list[str]]:
    """[header, *rows] of a one-table CSV file (every row as wide as the header)."""
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows and all(len(r) == len(rows[0]) for r in rows), rows[:3]
    return rows


def test_csv_layout_and_values(tmp_path):
    path = tmp_path / "sales.csv"
    assert render_csv(sample_report(), path) == {"sales": SALE_ROWS, "storefronts": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sales-storefronts.csv", "sales-summary.csv", "sales.csv"]
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    sections = {
        "Summary": _table((tmp_path / "sales-summary.csv").read_bytes()),
        "Sales": _table(raw),
        "By storefront": _table((tmp_path / "sales-storefronts.csv").read_bytes()),
    }
    assert all((tmp_path / n).read_bytes().startswith(b"\xef\xbb\xbf") for n in ("sales-summary.csv",))

    summary = sections["Summary"]
    assert summary[0] == ["Figure", "Value"]
    figures = dict(summary[1:])
    assert figures["Business"] == "Café Łódź 王 & Co"
    assert figures["Time zone"] == "Asia/Tokyo"
    assert figures["Net revenue"] == "2868.75"
    assert figures["Refunds issued"] == "-12.50"  # a negative amount stays a number
    assert figures["Margin %"] == "15.47"
    assert figures["First sale"] == "2025-03-09 10:00:00"
    assert figures["Top customer"] == "'=cmd"
    assert figures["Average sale"] == ""
    assert figures["Filter: customer_type"] == "retail" and figures["Filter: min_quantity"] == "-5"

    header, *rows = sections["Sales"]
    assert header == [
        "Completed at",
        "Business day",
        "Receipt",
        "Customer",
        "Quantity",
        "Total",
        "Margin %",
        "Metadata",
    ]
    assert len(rows) == SALE_ROWS
    assert rows[0] == [
        "2025-03-09 10:00:00",
        "2025-03-09",
        "R-1000",
        "王小明",
        "-1",
        "1234.50",
        "15.47",
        META,
    ]
    assert rows[1][3] == "فاطمة الزهراء" and rows[1][5] == "-5.00" and rows[1][6] == "" and rows[1][7] == ""
    assert rows[2][5] == "0.00" and rows[2][6] == "0.00"
    assert rows[4][3] == "<b>Bold</b> & Co"
    # what a spreadsheet would evaluate gets an apostrophe; a phone number and an address stay readable
    assert [r[3] for r in rows[5:11]] == ["'=SUM(A1)", "+233 20", "-5 Main St", "'@handle", "'\tTab", "'＝cmd"]
    assert rows[12][3] == LONG_TEXT  # full data, never truncated
    assert "\n" in rows[0][7]
    assert sections["By storefront"][1:] == [
        ["Main St", "70", "2000.00"],
        ["王府井", "30", "800.25"],
        ["Łódź", "20", "68.50"],
    ]
    assert b"1234.50" in raw and b"1,234.50" not in raw


def test_csv_is_deterministic(tmp_path):
    render_csv(sample_report(), tmp_path / "a.csv")
    render_csv(sample_report(), tmp_path / "b.csv")
    for suffix in ("", "-summary", "-storefronts"):
        assert (tmp_path / f"a{suffix}.csv").read_bytes() == (tmp_path / f"b{suffix}.csv").read_bytes()
