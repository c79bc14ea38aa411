"""The format-neutral report: what an export says, independent of XLSX, CSV or PDF.

A report is built per business and period from the archive (never from the POS). Its tables are
streams of Arrow record batches, so a section of millions of rows is never held in memory; each
renderer (`pos_exports.render`) turns any report into its format.

Value conventions inside section batches (renderers rely on them):
- `money`: `decimal128(18, 2)`; `percent`: float64 ratio (0.1547 = 15.47 %), null when undefined;
- `datetime`: `timestamp[us, tz=<business zone>]` (already in business time); `date`: `date32`;
- `int`: int64/int32; `text` and `json`: string (json is already pretty-printed text);
- `code`: string, a machine code (`mobile_money`, `out_of_stock`): CSV keeps it, XLSX and PDF show it as words
  (`render.text.code_word`: `Mobile money`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal

import pyarrow as pa

KINDS = ("text", "int", "money", "percent", "datetime", "date", "json", "code")
# The section comparing a period with the one before: it has rows whatever the period itself holds.
COMPARISON = "previous_period"


@dataclass(frozen=True)
class Column:
    name: str  # the column in the Arrow batches
    header: str  # what the reader sees
    kind: str = "text"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: unknown kind {self.kind!r}")


@dataclass(frozen=True)
class Section:
    """One table of the report: a sheet in XLSX, a file in CSV, a table in PDF."""

    key: str  # short machine name: "sales", "line_items" (CSV file names, manifest)
    title: str  # "Line items" (sheet name, PDF heading)
    columns: tuple[Column, ...]
    batches: Callable[[], Iterator[pa.RecordBatch]]  # may be called once per renderer
    row_count: int
    pdf_rows: int = 50  # the PDF shows the first rows only, and says so
    # The rows in the order the PDF shows them when it cuts the table (what matters first: the latest events, the
    # customers who owe most); None: the order of `batches`. `pdf_order` says which order, in the "showing" line.
    pdf_batches: Callable[[], Iterator[pa.RecordBatch]] | None = None
    pdf_order: str = ""
    pdf_columns: tuple[str, ...] | None = None  # the columns the PDF shows (None: the first 16); it names the rest
    sheet: str = ""  # the XLSX sheet name when the title is longer than a sheet name allows (31 characters)

    @property
    def pdf_limit(self) -> int:
        """How many rows the PDF shows: all of a short table (up to half as many again as `pdf_rows`, so that
        a 60-row table is not cut at 50), else `pdf_rows`."""
        rows = max(self.pdf_rows, 0)
        return self.row_count if self.row_count <= rows + rows // 2 else rows

    def pdf_source(self) -> Iterator[pa.RecordBatch]:
        return (self.pdf_batches or self.batches)()

    def ordered_for_pdf(self, batches: Callable[[], Iterator[pa.RecordBatch]], order: str) -> Section:
        """This section with the PDF's own row order."""
        return replace(self, pdf_batches=batches, pdf_order=order)

    def shown_in_pdf(self, columns: tuple[str, ...]) -> Section:
        """This section with the PDF showing only `columns` (in the section's order)."""
        unknown = set(columns) - {c.name for c in self.columns}
        if unknown:
            raise ValueError(f"section {self.key}: pdf_columns {sorted(unknown)} are not columns of it")
        return replace(self, pdf_columns=columns)


@dataclass(frozen=True)
class Figure:
    """A summary figure: `Net revenue = 2,868.75`."""

    label: str
    value: str | int | Decimal | float | dt.date | dt.datetime | None
    kind: str = "text"  # as Column.kind


@dataclass(frozen=True)
class Chart:
    """A small bar chart for the PDF (e.g. net revenue by day or by storefront)."""

    title: str
    labels: tuple[str, ...]
    values: tuple[float, ...]
    codes: bool = False  # the labels are machine codes (`payment_received`): shown as words, like a "code" column


@dataclass
class Report:
    dataset: str  # sales | customers | inventory | audit_log
    title: str  # "Sales report"
    business_id: int
    business_name: str
    currency: str
    timezone: str
    period_kind: str  # daily | weekly | monthly | range
    period_key: str  # 2025-03-09 | 2025-03-03 (week's Monday) | 2025-03
    period_label: str  # "9 Mar 2025" | "3-9 Mar 2025" | "March 2025"
    window_start: dt.datetime  # UTC
    window_end: dt.datetime  # UTC, exclusive
    summary: list[Figure] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    chart: Chart | None = None
    notes: list[str] = field(default_factory=list)  # e.g. "No sales in this period."
    filters: dict[str, object] = field(default_factory=dict)

    @property
    def generated_at(self) -> dt.datetime:
        """Fixed document date (the end of the period), so re-rendering gives identical files."""
        return self.window_end


def table_section(key: str, title: str, columns: tuple[Column, ...], table: pa.Table, pdf_rows: int = 50) -> Section:
    """A section over an in-memory Arrow table (small sections: summaries, breakdowns)."""
    return Section(key, title, columns, lambda: iter(table.to_batches()), table.num_rows, pdf_rows)
