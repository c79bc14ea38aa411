"""Email addresses: the one rule for what counts as exactly one plain address (`owner@shop.example`).

Refused: line breaks and control characters (header injection), lists, display names, comments, quoting,
spaces, non-ASCII, anything `email.utils` reads differently, and over-long addresses.
"""

from __future__ import annotations

import email.utils
import inspect
import re
import unicodedata

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TLD = r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})"
_LOCAL = rf"{_ATOM}(?:\.{_ATOM})*"
_PUBLIC = re.compile(rf"{_LOCAL}@(?:{_LABEL}\.)+{_TLD}")
_ANY_HOST = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})*")
_STRICT = "strict" in inspect.signature(email.utils.getaddresses).parameters  # 3.11.10+ / 3.12.6+
# CR and LF, plus everything else `str.splitlines` treats as a line break, and NUL.
LINE_BREAKS = re.compile("[\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def has_control(text: str, allowed: str = "") -> bool:
    """Whether `text` holds a control character or a line or paragraph separator (other than `allowed`)."""
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") and ch not in allowed for ch in text)


def address_problem(text: str, *, public: bool = True) -> str | None:
    """None when `text` is exactly one plain address, else why not ("" when there is nothing more to say).

    `public`: the domain must end in a top-level domain (addresses people give); False also takes a
    single-label host (the sender of an internal relay)."""
    if has_control(text):
        return "it contains a line break or control character"
    if any(ch in text for ch in ",;"):
        return "give one address per entry, not a list"
    if any(ch in text for ch in '<>"()[]\\') or any(ch.isspace() for ch in text):
        return "give a plain address without a display name"
    parsed = email.utils.getaddresses([text], strict=True) if _STRICT else email.utils.getaddresses([text])
    if parsed != [("", text)] or email.utils.parseaddr(text) != ("", text):
        return ""
    if not (_PUBLIC if public else _ANY_HOST).fullmatch(text):
        return ""
    if len(text) > 254 or len(text.split("@", 1)[0]) > 64:
        return "too long"
    return None


def header_address_problem(value: object, what: str = "recipient") -> str | None:
    """None when `value` is exactly one plain address for a header (a sender or a recipient), else the message:
    empty, a line break, or not exactly one plain address (a single-label host is taken: an internal relay)."""
    if not isinstance(value, str) or not value:
        return f"{what} is empty"
    if LINE_BREAKS.search(value):
        return f"{what} contains a line break: {value!r}"
    if address_problem(value, public=False) is not None:
        return f"{what} is not exactly one plain address: {value!r}"
    return None
