"""Words people type: true and false, weekdays, the ordinals of a monthly schedule."""

from __future__ import annotations

TRUE_WORDS = frozenset({"true", "yes", "y", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "off", "0"})
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")  # 0 = Monday
ORDINALS = {"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "last": -1}  # of a weekday in a month


def truth(text: str) -> bool | None:
    """True or False for a word of TRUE_WORDS / FALSE_WORDS (any case, surrounding spaces ignored), else None."""
    word = text.strip().lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None
