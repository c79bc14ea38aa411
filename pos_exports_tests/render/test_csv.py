import csv
import io

from pos_exports.render.csvs import render_csv
from pos_exports_tests.render.sample import FORMULA_TEXTS, LONG_TEXT, META, SALE_ROWS, sample_report


def _sections(raw: bytes) -> dict[str, list[list[str]]]:
    """{title: [header, *rows]} of a sectioned CSV (title line, header, rows, empty line)."""
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    out: dict[str, list[list[str]]] = {}
    i = 0
    while i < len(rows):
        title = rows[i][0]
        assert len(rows[i]) == 1, rows[i]
        j = i + 1
        while rows[j]:
            j += 1
        out[title] = rows[i + 1 : j]
        i = j + 1
    return out


def test_csv_layout_and_values(tmp_path):
    path = tmp_path / "sales.csv"
    assert render_csv(sample_report(), path) == {"sales": SALE_ROWS, "storefronts": 3}
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    sections = _sections(raw)
    assert list(sections) == ["Summary", "Sales", "By storefront"]

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
    assert [r[3] for r in rows[5:11]] == ["'" + t for t in FORMULA_TEXTS]
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
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
