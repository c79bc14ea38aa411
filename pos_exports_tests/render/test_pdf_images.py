"""The demo's PDFs as a reader sees them (issue 14): each first page rendered to an image by PDFium is not
blank, and the text layer of every page has no cut lines: no text outside the page's margins or over its
footer, no heading left alone at the foot of a page, and every table's header row on a page where rows
follow it. One business, one day: cheap enough for every run."""

from __future__ import annotations

import ctypes
import datetime as dt
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from pos_exports.archive.extract import archive_business_day
from pos_exports.archive.read import save_businesses
from pos_exports.archive.tables import DATASETS
from pos_exports.exports.produce import export_period
from pos_exports.periods import day_window
from pos_exports.render.pdf import FRAME_PAD, MARGIN, PAGE
from pos_exports.reports.period import period_for
from pos_exports.source.database import connect, list_businesses
from pos_exports.source.demo import DemoSpec, build_sqlite
from pos_exports.storage.base import LocalStorage

DAY = dt.date(2026, 11, 30)
BOTTOM = MARGIN + 4 * 2.834645669  # the story's bottom margin (12 mm + 4 mm); the footer is drawn below it


@dataclass(frozen=True)
class Run:
    """One run of text on a page as PDFium reads it: its box (PDF points, origin bottom left) and font."""

    text: str
    left: float
    bottom: float
    right: float
    top: float
    font: str
    size: float


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory) -> dict[str, pdfium.PdfDocument]:
    """The four PDFs of the demo's first business for one day, as `make demo` writes them."""
    root = tmp_path_factory.mktemp("pdf-images")
    build_sqlite(root / "pos.sqlite", DemoSpec(end_date=DAY, days=2, only_business_ids=(1,)))
    storage = LocalStorage(root / "store")
    with connect(f"sqlite:///{root / 'pos.sqlite'}") as reader:
        businesses = list_businesses(reader)
        save_businesses(storage, businesses)
        [business] = [b for b in businesses if b.id == 1]
        now = day_window(DAY, business.timezone).end + dt.timedelta(hours=1)
        for dataset in DATASETS.values():
            archive_business_day(reader, storage, dataset, business, DAY, now=now)
    folder, _ = export_period(storage, business, period_for("daily", DAY.isoformat()), list(DATASETS), ["pdf"])
    docs = {name: pdfium.PdfDocument(storage.path(folder) / f"{name}.pdf") for name in DATASETS}
    yield docs
    for doc in docs.values():
        doc.close()


def runs(page: pdfium.PdfPage) -> list[Run]:
    """The page's text runs (PDFium's rectangles), each with the font and size of its middle character."""
    text = page.get_textpage()
    out = []
    for k in range(text.count_rects()):
        left, bottom, right, top = text.get_rect(k)
        index = text.get_index((left + right) / 2, (bottom + top) / 2, (right - left) / 2 + 1, (top - bottom) / 2 + 1)
        name = ctypes.create_string_buffer(64)
        if index is not None:
            pdfium_c.FPDFText_GetFontInfo(text.raw, index, name, len(name), None)
        size = pdfium_c.FPDFText_GetFontSize(text.raw, index) if index is not None else 0.0
        content = text.get_text_bounded(left, bottom, right, top).strip()
        if content:
            out.append(Run(content, left, bottom, right, top, name.value.decode(), size))
    return out


def lines_below(run: Run, page_runs: list[Run]) -> list[float]:
    """The distinct text lines (their rounded baselines) below `run` on its page, above the footer."""
    return sorted({round(r.bottom) for r in page_runs if r.top < run.bottom and r.bottom >= BOTTOM}, reverse=True)


def test_each_first_page_renders_to_an_image_that_is_not_blank(pdfs):
    for name, doc in pdfs.items():
        image = doc[0].render(scale=0.5, rev_byteorder=True).to_numpy()[:, :, :3]  # 421 x 298 pixels, RGB
        assert image.shape[:2] == (round(PAGE[1] / 2), round(PAGE[0] / 2)), name
        inked = (image < 200).any(axis=2).mean()
        assert 0.01 < inked < 0.6, (name, inked)  # text, a grid and a chart, not an empty or a black page
        rows = (image < 200).any(axis=2).any(axis=1)  # the pixel rows with ink
        top, middle = rows[: len(rows) // 8], rows[len(rows) // 3 : len(rows) * 2 // 3]
        assert top.mean() > 0.3 and middle.mean() > 0.3, name  # the title at the top, content below it


def test_no_page_has_a_cut_line(pdfs):
    width, height = PAGE
    for name, doc in pdfs.items():
        for number in range(1, len(doc) + 1):
            page_runs = runs(doc[number - 1])
            where = (name, number)
            assert page_runs, where
            footer = [r for r in page_runs if r.bottom < BOTTOM]
            assert footer and all(r.size == 7.0 for r in footer), where  # only the footer line is below the story
            assert any(r.text.endswith(f"Page {number} of {len(doc)}") for r in footer), where
            for r in page_runs:  # nothing cut at an edge: the story inside its frame, the footer in the margins
                inset = 0 if r in footer else FRAME_PAD
                assert MARGIN + inset - 1 <= r.left and r.right <= width - MARGIN - inset + 1, (where, r)
                assert r.top <= height - MARGIN - FRAME_PAD + 1, (where, r)
            headings = [r for r in page_runs if r.font == "DejaVuSans-Bold" and r.size == 12.0]
            if number == 1:
                headings = headings[1:]  # the first is the business's name under the title
            for heading in headings:  # a heading is never left alone at the foot of a page
                assert len(lines_below(heading, page_runs)) >= 2, (where, heading.text)
            header_cells = [r for r in page_runs if r.font == "DejaVuSans-Bold" and r.size <= 8.0]
            assert header_cells or number == 1 or name == "customers", where
            for cell in header_cells:  # a table's header row: its rows begin on the same page
                below = [r for r in page_runs if r.top < cell.bottom and r.bottom >= BOTTOM]
                assert any(r.font == "DejaVuSans" for r in below), (where, cell.text)
