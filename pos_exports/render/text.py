"""Text helpers shared by the renderers: formula neutralisation, XML-safe text, code words, display formats.

Formula neutralisation (CSV only; an XLSX string cell is never evaluated, so it keeps the text as it is):
`needs_neutralising` is the one rule. Text a spreadsheet would run as a formula gets a leading
apostrophe (`=SUM(A1)` -> `'=SUM(A1)`): text starting with `=`, a tab or a CR, `@`, the full-width
`＝ ＋ － ＠`, or `+`/`-` followed by anything formula-like. What no spreadsheet evaluates stays
readable: a sign, a digit, then only digits, spaces and dots, optionally followed by a space and
words without any operator, bracket, quote, `!`, `|`, `:` or `;` (`+201 55 555 0512`, `-5 Main St`).
Only text and json values are touched: a negative number stays a number.
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
# After `+`/`-` and a number, a space and words may follow; none of these characters (operators, brackets,
# quotes, references, separators, controls) may: with them a spreadsheet could evaluate the text.
_FORMULA_CHARS = "=+\\-*/^&%<>()\\[\\]{}!|\"':;@$~\\\\\\t\\n\\r\uff1d\uff0b\uff0d\uff20"
_PLAIN_SIGNED = f"[+\\-][0-9][0-9 .]*(?: [^{_FORMULA_CHARS}]*)?"  # the same pattern for Python re and RE2
_PLAIN_SIGNED_PY = re.compile(_PLAIN_SIGNED)
_PLAIN_SIGNED_RE2 = f"^{_PLAIN_SIGNED}$"

# XML 1.0 forbids C0 controls except \t \n \r, U+FFFE, U+FFFF and (lone) surrogates.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
XML_ILLEGAL_RE2 = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x{fffe}\\x{ffff}]"  # valid UTF-8 holds no surrogates


def needs_neutralising(value: str) -> bool:
    """Whether a spreadsheet opening this text from a CSV could evaluate it as a formula (module docstring)."""
    if not value or value[0] not in FORMULA_PREFIXES:
        return False
    return _PLAIN_SIGNED_PY.fullmatch(value) is None


def neutralise(value: str) -> str:
    """`'=SUM(A1)` for `=SUM(A1)` (`needs_neutralising`); any other text unchanged."""
    return "'" + value if needs_neutralising(value) else value


def neutralise_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`neutralise` over an Arrow string array (nulls stay null); the array itself when nothing needs it."""
    if isinstance(arr, pa.ChunkedArray):
        chunks = [neutralise_array(chunk) for chunk in arr.chunks]
        if all(new is old for new, old in zip(chunks, arr.chunks, strict=True)):
            return arr
        return pa.chunked_array(chunks, type=arr.type)
    if not len(arr):
        return arr
    if pa.types.is_string(arr.type):
        mask = _formula_mask(arr)
    else:  # large strings and others: by regex
        mask = pc.fill_null(pc.match_substring_regex(arr, _FORMULA_RE2), False).to_numpy(zero_copy_only=False)
    mask = _without_plain_signed(arr, mask)
    if not mask.any():
        return arr
    quote, empty = pa.scalar("'", arr.type), pa.scalar("", arr.type)
    return pc.if_else(pa.array(mask), pc.binary_join_element_wise(quote, arr, empty), arr)


def _without_plain_signed(arr: pa.Array, mask: np.ndarray) -> np.ndarray:
    """The mask without the signed values `needs_neutralising` leaves readable (only the candidates are read)."""
    rows = np.flatnonzero(mask)
    if not len(rows):
        return mask
    plain = pc.match_substring_regex(arr.take(pa.array(rows)), _PLAIN_SIGNED_RE2).to_numpy(zero_copy_only=False)
    if plain.any():
        mask = mask.copy()
        mask[rows[plain]] = False
    return mask


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


# Codes whose word is not just the code with spaces and a capital (`mobile_money` -> `Mobile money`).
CODE_WORDS = {"pos": "POS", "sku": "SKU", "ip": "IP", "vat": "VAT"}


def code_word(code: str) -> str:
    """A machine code as a reader says it, for XLSX and PDF (CSV keeps the code): `mobile_money` -> `Mobile money`,
    `over_limit` -> `Over limit`, `out_of_stock` -> `Out of stock`."""
    if code in CODE_WORDS:
        return CODE_WORDS[code]
    words = [CODE_WORDS.get(w, w) for w in code.replace("_", " ").split(" ")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def code_words_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`code_word` over an Arrow array of codes (nulls stay null), one call per distinct code."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not len(arr):
        return arr
    encoded = pc.dictionary_encode(arr)
    words = pa.array([code_word(c) for c in encoded.dictionary.to_pylist()], arr.type)
    return pc.take(words, encoded.indices)


def xml_clean(value: str) -> str:
    """The text without the characters XML 1.0 cannot carry (controls other than tab/LF/CR, U+FFFE/FFFF,
    lone surrogates)."""
    return _XML_ILLEGAL.sub("", value)


def xml_clean_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`xml_clean` over an Arrow string array; the array itself when nothing needs removing."""
    if len(arr) and pc.any(pc.match_substring_regex(arr, XML_ILLEGAL_RE2)).as_py():
        return pc.replace_substring_regex(arr, XML_ILLEGAL_RE2, "")
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
