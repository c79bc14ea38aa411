"""How a figure is written for a reader: the one rule for percentages (`15.47%`), shared by the PDF, the manifest,
the emails and the CLI (`render.text.figure_text` builds on it)."""

from __future__ import annotations

from decimal import Decimal


def percent_text(ratio: float | Decimal | None, sign: bool = True) -> str:
    """`15.47%` for the ratio 0.1547 (`15.47` without `sign`); empty for None or a non-finite ratio."""
    if ratio is None:
        return ""
    value = float(ratio) * 100
    if value != value or value in (float("inf"), float("-inf")):
        return ""
    text = f"{Decimal(repr(value)).quantize(Decimal('0.01')):.2f}"
    return text + "%" if sign else text
