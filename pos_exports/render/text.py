"""Text helpers shared by the renderers: formula neutralisation, XML-safe text, display formats.

Formula neutralisation (CSV and XLSX): a text value whose first character is one a spreadsheet
would start a formula or command with (`=`, `+`, `-`, `@`, tab, CR, or the full-width `＝ ＋ － ＠`)
gets a leading apostrophe, so `=SUM(A1)` is shown as the text `'=SUM(A1)`. Only text and json
values are touched: a negative number stays a number.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pos_exports.core.figures import percent_text

FORMULA_PREFIXES = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_FORMULA_RE2 = "^([=+\\-@\\t\\r\uff1d\uff0b\uff0d\uff20])"

# XML 1.0 forbids C0 controls except \t \n \r, U+FFFE, U+FFFF and (lone) surrogates.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_ILLEGAL_RE2 = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x{fffe}\\x{ffff}]"  # valid UTF-8 holds no surrogates


def neutralise(value: str) -> str:
    """`'=SUM(A1)` for `=SUM(A1)`; any other text unchanged."""
    if value and value[0] in FORMULA_PREFIXES:
        return "'" + value
    return value


def neutralise_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`neutralise` over an Arrow string array (nulls stay null); the array itself when nothing needs it."""
    if isinstance(arr, pa.ChunkedArray):
        chunks = [neutralise_array(chunk) for chunk in arr.chunks]
        if all(new is old for new, old in zip(chunks, arr.chunks, strict=True)):
            return arr
        return pa.chunked_array(chunks, type=arr.type)
    if not len(arr):
        return arr
    if not pa.types.is_string(arr.type):  # large strings and others: by regex
        if pc.any(pc.match_substring_regex(arr, _FORMULA_RE2)).as_py():
            return pc.replace_substring_regex(arr, _FORMULA_RE2, "'\\1")
        return arr
    mask = _formula_mask(arr)
    if not mask.any():
        return arr
    return pc.if_else(pa.array(mask), pc.binary_join_element_wise("'", arr, ""), arr)


# FORMULA_PREFIXES as UTF-8: one ASCII byte, or EF BC followed by 9D (＝), 8B (＋), 8D (－) or A0 (＠).
_ASCII_PREFIX = np.zeros(256, dtype=bool)
_ASCII_PREFIX[[ord(c) for c in "=+-@\t\r"]] = True
_WIDE_THIRD = np.zeros(256, dtype=bool)
_WIDE_THIRD[[0x9D, 0x8B, 0x8D, 0xA0]] = True
assert {chr(0xFF00 + b - 0x80) for b in (0x9D, 0x8B, 0x8D, 0xA0)} == FORMULA_PREFIXES - set("=+-@\t\r")


def _formula_mask(arr: pa.Array) -> np.ndarray:
    """Which values of a string array start with a formula prefix, read from the first bytes of each value
    in the data buffer (vectorised; the same answer as `neutralise`'s test, without a regex pass)."""
    n = len(arr)
    mask = np.zeros(n, dtype=bool)
    data = arr.buffers()[2]
    if data is None:
        return mask
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
    starts, lengths = offsets[:-1], np.diff(offsets)
    valid = lengths > 0
    if arr.null_count:
        valid &= arr.is_valid().to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(valid)
    raw = np.frombuffer(data, dtype=np.uint8)
    first = raw[starts[rows]]
    hit = _ASCII_PREFIX[first]
    wide = np.flatnonzero((first == 0xEF) & (lengths[rows] >= 3))
    if len(wide):
        at = starts[rows[wide]]
        hit[wide] = (raw[at + 1] == 0xBC) & _WIDE_THIRD[raw[at + 2]]
    mask[rows] = hit
    return mask


def xml_clean(value: str) -> str:
    """The text without the characters XML 1.0 cannot carry (controls other than tab/LF/CR, U+FFFE/FFFF,
    lone surrogates)."""
    return _XML_ILLEGAL.sub("", value)


def xml_clean_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`xml_clean` over an Arrow string array; the array itself when nothing needs removing."""
    if len(arr) and pc.any(pc.match_substring_regex(arr, _XML_ILLEGAL_RE2)).as_py():
        return pc.replace_substring_regex(arr, _XML_ILLEGAL_RE2, "")
    return arr


def format_money(value: Decimal | float | int | None) -> str:
    """`1,234.50` (display: PDF); empty for None."""
    if value is None:
        return ""
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    return f"{value.quantize(Decimal('0.01')):,.2f}"


def plain_money(value: Decimal | float | int | None) -> str:
    """`1234.50` (CSV); empty for None."""
    if value is None:
        return ""
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    return f"{value.quantize(Decimal('0.01')):.2f}"


def format_percent(ratio: float | Decimal | None, sign: bool = True) -> str:
    """`15.47%` for the ratio 0.1547 (`15.47` without `sign`); empty for None or a non-finite ratio
    (the rule: `core.figures.percent_text`)."""
    return percent_text(ratio, sign)


def local_naive(value: dt.datetime, timezone: str) -> dt.datetime:
    """A datetime as naive business-local time (aware values are converted, naive ones kept)."""
    if value.tzinfo is not None:
        value = value.astimezone(zoneinfo.ZoneInfo(timezone)).replace(tzinfo=None)
    return value


def format_datetime(value: dt.datetime | None, timezone: str, seconds: bool = True) -> str:
    """`2025-03-09 10:00:00` in business time; empty for None."""
    if value is None:
        return ""
    return local_naive(value, timezone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def percent_header(header: str) -> str:
    """The CSV header of a percent column: `Margin %` (values are percentages, not ratios)."""
    return header if header.rstrip().endswith("%") else f"{header} %"


def figure_text(value: object, kind: str, timezone: str, *, display: bool) -> str:
    """A summary figure as text: display form (`1,234.50`, `15.47%`) or CSV form (`1234.50`, `15.47`)."""
    if value is None:
        return ""
    if kind == "money" and isinstance(value, Decimal | int | float):
        return format_money(value) if display else plain_money(value)
    if kind == "percent" and isinstance(value, Decimal | int | float):
        return format_percent(value, sign=display)
    if kind == "int" and isinstance(value, int) and display:
        return f"{value:,}"
    if isinstance(value, dt.datetime):
        return format_datetime(value, timezone)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
