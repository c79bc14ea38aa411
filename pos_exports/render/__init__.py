"""Renderers: any `pos_exports.reports.model.Report` to XLSX, CSV or PDF (`RENDERERS[fmt](report, path)`)."""

from __future__ import annotations

from pathlib import Path

from pos_exports.core.catalog import FORMATS
from pos_exports.render.csvs import render_csv
from pos_exports.render.xlsx import render_xlsx
from pos_exports.reports.model import Report


def render_pdf(report: Report, path: Path) -> dict[str, int]:
    """`pos_exports.render.pdf.render_pdf`, imported on first use: reportlab costs a process 0.1-0.3 CPU-s
    that an export without PDFs need not pay."""
    from pos_exports.render.pdf import render_pdf as render

    return render(report, path)


RENDERERS = {"xlsx": render_xlsx, "csv": render_csv, "pdf": render_pdf}
assert tuple(RENDERERS) == FORMATS, "one renderer per format of the catalogue"

__all__ = ["FORMATS", "RENDERERS", "render_csv", "render_pdf", "render_xlsx"]
