"""Renderers: any `pos_exports.reports.model.Report` to XLSX, CSV or PDF (`RENDERERS[fmt](report, path)`).

`render_files(report, fmt)` names the files one format makes of a report: one workbook, one PDF, but one CSV
per table (`render.csvs`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pos_exports.core.catalog import FORMATS
from pos_exports.render.csvs import csv_files, render_csv
from pos_exports.render.xlsx import render_xlsx
from pos_exports.reports.model import Report


def render_pdf(report: Report, path: Path) -> dict[str, int]:
    """`pos_exports.render.pdf.render_pdf`, imported on first use: reportlab costs a process 0.1-0.3 CPU-s
    that an export without PDFs need not pay."""
    from pos_exports.render.pdf import render_pdf as render

    return render(report, path)


RENDERERS = {"xlsx": render_xlsx, "csv": render_csv, "pdf": render_pdf}
assert tuple(RENDERERS) == FORMATS, "one renderer per format of the catalogue"


def render_files(report: Report, fmt: str) -> list[tuple[str, Callable[[Path], dict[str, int]]]]:
    """(file name, writer) of each file `fmt` makes of the report: `sales.xlsx`; `sales.csv`, `sales-summary.csv`,
    `sales-line_items.csv` ...; each writer writes its file at the path given and returns the data rows per table."""
    if fmt == "csv":
        return [(f"{report.dataset}{f.suffix}.csv", _rows_of(f.key, f.write)) for f in csv_files(report)]
    return [(f"{report.dataset}.{fmt}", lambda path: RENDERERS[fmt](report, path))]


def _rows_of(key: str, write: Callable[[Path], int]) -> Callable[[Path], dict[str, int]]:
    return lambda path: {key: write(path)}


__all__ = ["FORMATS", "RENDERERS", "render_csv", "render_files", "render_pdf", "render_xlsx"]
