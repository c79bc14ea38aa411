"""The few figures an export email shows per dataset (docs/reports.md, "The email"), with the currency.

Taken from the report's own figures (the same numbers as the files), written by `render.text.figure_text`
as the PDF writes them; money as `GHS 1,234.50`. Stored in the period's manifest (`headline`) when the
files are rendered, so the email needs no report:

- sales: net sales (net revenue when the report has no net-sales figure), refunds, number of sales, profit;
- customers: total outstanding and what is owed for 91 days or more;
- inventory: stock value at cost and the items to reorder (low or out of stock: at or below their reorder level);
- audit log: events and the top event types.
"""

from __future__ import annotations

from decimal import Decimal

from pos_exports.render.text import code_word, figure_text
from pos_exports.reports.model import Figure, Report

TOP_EVENT_TYPES = 3
# (label in the email, labels of the report figure, first found; `*`: any label starting so, e.g. "Net sales
# (after refunds)")
_PICKS = {
    "sales": (
        ("Net sales", ("Net sales*",)),
        ("Net revenue", ("Net revenue",)),
        ("Refunds", ("Refunds issued",)),
        ("Number of sales", ("Sales",)),
        ("Profit", ("Gross profit",)),
    ),
    "customers": (
        ("Total outstanding", ("Total outstanding",)),
        ("Owed for 91+ days", ("Aged 91+ days",)),
    ),
    "inventory": (("Stock value (at cost)", ("Total value at cost",)),),
    "audit_log": (("Events", ("Events",)),),
}


def headline(report: Report) -> list[list[str]]:
    """[[label, text], ...] of the figures that matter for the report's dataset."""
    figures = {f.label: f for f in report.summary}
    out: list[list[str]] = []
    for label, sources in _PICKS.get(report.dataset, ()):
        figure = next((f for s in sources for f in report.summary if _matches(f.label, s)), None)
        if figure is None:
            continue
        if label == "Net revenue" and any(row[0] == "Net sales" for row in out):
            continue  # net sales shown: net revenue is in the files
        out.append([label, _text(figure, report)])
    if report.dataset == "inventory":
        reorder = [figures[s].value for s in ("Low stock", "Out of stock") if s in figures]
        if reorder:
            out.append(["Items to reorder", f"{sum(int(n or 0) for n in reorder):,}"])
    if report.dataset == "audit_log":
        if top := _top_event_types(report):
            out.append(["Top event types", top])
    return out


def _matches(label: str, source: str) -> bool:
    return label.startswith(source[:-1]) if source.endswith("*") else label == source


def _text(figure: Figure, report: Report) -> str:
    text = figure_text(figure.value, figure.kind, report.timezone, display=True)
    if figure.kind == "money" and isinstance(figure.value, Decimal | int | float):
        return f"{report.currency} {text}"
    return text


def _top_event_types(report: Report) -> str:
    """`Sale completed (2), User login (2), Refund issued (1)`: the event types section, most frequent first."""
    section = next((s for s in report.sections if s.key == "event_types"), None)
    if section is None:
        return ""
    rows = [row for batch in section.batches() for row in batch.to_pylist()]
    rows.sort(key=lambda r: (-(r["events"] or 0), str(r["event_type"])))
    return ", ".join(f"{code_word(str(r['event_type']))} ({r['events']:,})" for r in rows[:TOP_EVENT_TYPES])
