"""Rendering and archive reads do not import Dagster (1.4 CPU-s a process) or the state database, and an
export without PDFs does not import reportlab."""

import subprocess
import sys


def test_export_path_imports_no_dagster_nor_state_database():
    code = (
        "import sys\n"
        "from pos_exports.exports.produce import export_available, export_period\n"
        "from pos_exports.render import RENDERERS\n"
        "from pos_exports.reports import BUILDERS\n"
        "print(sorted(m for m in ('dagster', 'sqlalchemy', 'reportlab') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_render_pdf_from_the_package_is_the_pdf_renderer(tmp_path):
    from pos_exports.render import RENDERERS, render_pdf
    from pos_exports_tests.render.sample import sample_report

    assert RENDERERS["pdf"] is render_pdf
    path = tmp_path / "r.pdf"
    assert render_pdf(sample_report(), path) == {"sales": 50, "storefronts": 3}
    assert path.read_bytes().startswith(b"%PDF")


def test_old_names_still_work():
    from pos_exports.archive import index, read
    from pos_exports.defs import retries
    from pos_exports.transient import is_transient

    assert retries.is_transient is is_transient
    assert read.archived_days is index.archived_days
    assert retries.is_transient(TimeoutError()) and not retries.is_transient(ValueError())
