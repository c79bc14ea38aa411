from decimal import Decimal

import pyarrow as pa

from pos_exports.render import FORMATS, RENDERERS
from pos_exports.render.text import (
    format_money,
    format_percent,
    needs_neutralising,
    neutralise,
    neutralise_array,
    plain_money,
    xml_clean,
    xml_clean_array,
)
from pos_exports.render.xlsx import _SheetNames, fit_cell_text


def test_renderers_registry():
    assert FORMATS == ("xlsx", "csv", "pdf")
    assert set(RENDERERS) == set(FORMATS)


EVALUATED = ["=SUM(A1)", "@handle", "\tTab", "＝cmd", "\rCR", "＋1", "－1", "＠x", "+Plus Traders", "-5-5", "-5 -5"]
EVALUATED += ["-2+3+cmd|' /C calc'!A0", "+1 (555) 123", "-5%", "-5 A1:B2", '-5 "x"', "- 5", "-5 Main\nSt", "+SUM(A1)"]
READABLE = ["+201 55 555 0512", "-5 Main St", "+233 20", "-5", "-5 Main St, Accra #3", "-1.5", "plain", "", "a=b"]
READABLE += ["'quoted"]


def test_neutralise_python_and_arrow_agree():
    """One rule (`needs_neutralising`): what a spreadsheet would evaluate gets an apostrophe, the rest stays."""
    texts = [*EVALUATED, *READABLE]
    expected = [neutralise(t) for t in texts]
    assert expected == ["'" + t for t in EVALUATED] + READABLE
    assert [needs_neutralising(t) for t in texts] == [True] * len(EVALUATED) + [False] * len(READABLE)
    assert neutralise_array(pa.array([*texts, None])).to_pylist() == [*expected, None]
    assert neutralise_array(pa.array([*texts, None], pa.large_string())).to_pylist() == [*expected, None]


def test_neutralise_array_finds_each_prefix_alone_in_slices_and_chunks():
    """The first-byte pre-check (before the regex) must see every prefix, also in sliced and chunked arrays."""
    prefixes = ["=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20"]
    for prefix in prefixes:
        values = ["plain", None, "", f"{prefix}x", "tail"]
        expected = [neutralise(v) if v is not None else None for v in values]
        assert neutralise_array(pa.array(values)).to_pylist() == expected
        assert neutralise_array(pa.array(["skip", *values]).slice(1)).to_pylist() == expected
        assert neutralise_array(pa.chunked_array([values[:2], values[2:]])).to_pylist() == expected
    clean = pa.array(["a", "b=c", "\uff21 full-width A", "\uffe5 yen", "\ufeffbom", "\uff1c", "é", None, ""])
    assert neutralise_array(clean) is clean
    assert neutralise_array(pa.array(["=x", "ok"]).slice(1)).to_pylist() == ["ok"]
    mixed = [chr(c) + "v" for c in range(0x20, 0x80)] + [chr(c) + "w" for c in range(0xFF00, 0xFF30)]
    assert neutralise_array(pa.array(mixed)).to_pylist() == [neutralise(v) for v in mixed]


def test_xml_clean():
    dirty = "a\x00b\x07c\x1fd\ufffee\uffff\tf\ng\rh"
    assert xml_clean(dirty) == "abcde\tf\ng\rh"
    assert xml_clean("lone \ud800 surrogate") == "lone  surrogate"
    assert xml_clean_array(pa.array([dirty, None])).to_pylist() == ["abcde\tf\ng\rh", None]


def test_money_and_percent_formats():
    assert format_money(Decimal("1234.5")) == "1,234.50"
    assert format_money(Decimal("-1234567.891")) == "-1,234,567.89"
    assert format_money(Decimal("0")) == "0.00"
    assert plain_money(Decimal("1234.5")) == "1234.50"
    assert format_percent(0.1547) == "15.47%"
    assert format_percent(0.1547, sign=False) == "15.47"
    assert format_percent(None) == ""
    assert format_percent(float("nan")) == ""


def test_sheet_names_valid_and_unique():
    names = _SheetNames()
    assert names.claim("Summary") == "Summary"
    assert names.claim("summary") == "summary (2)"
    long = names.claim("Sales: by [store]/day * really? a very long title indeed")
    assert len(long) <= 31 and not any(ch in long for ch in "[]:*?/\\")
    again = names.claim("Sales: by [store]/day * really? a very long title indeed")
    assert again != long and again.endswith("(2)") and len(again) <= 31
    assert names.claim("History") == "History data"


def test_long_sheet_names_are_cut_at_words():
    names = _SheetNames()
    # a trailing remark in parentheses goes first, then whole words; never a word cut in two
    assert names.claim("Compared with the previous period (23 Nov-29 Nov 2026)") == "Compared with the previous"
    assert names.claim("Stock movements of every storefront this month") == "Stock movements of every"
    assert names.claim("Stock movements of every storefront this month", 2) == "Stock movements of every (2)"
    assert names.claim("Abcdefghijklmnopqrstuvwxyzabcdefghij") == "Abcdefghijklmnopqrstuvwxyzabcde"  # one word
    assert names.claim("Credit transactions of customer list") == "Credit transactions of customer"  # 31: a word end


def test_fit_cell_text_flags_the_cut():
    text = "x" * 40_000
    cut = fit_cell_text(text)
    assert len(cut) <= 32_767
    assert cut.endswith("of 40,000 characters; full text in the CSV]")
    assert "[truncated: showing" in cut
    astral = "😀" * 20_000  # 40,000 UTF-16 units: over Excel's limit although 20,000 characters
    assert len(fit_cell_text(astral).encode("utf-16-le")) // 2 <= 32_767
