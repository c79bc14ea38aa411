"""Renderers: any `pos_exports.reports.model.Report` to XLSX, CSV or PDF (`RENDERERS[fmt](report, path)`)."""

from pos_exports.core.catalog import FORMATS
from pos_exports.render.csvs import render_csv
from pos_exports.render.pdf import render_pdf
from pos_exports.render.xlsx import render_xlsx

RENDERERS = {"xlsx": render_xlsx, "csv": render_csv, "pdf": render_pdf}
assert tuple(RENDERERS) == FORMATS, "one renderer per format of the catalogue"

__all__ = ["FORMATS", "RENDERERS", "render_csv", "render_pdf", "render_xlsx"]
