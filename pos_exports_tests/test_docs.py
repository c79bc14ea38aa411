"""The repository's own documentation: the README links only files a user of the repository has, and the
command line's and the Launchpad's help point to docs/reports.md."""

from __future__ import annotations

import re
from pathlib import Path

from pos_exports.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_readme_and_docs_link_only_files_of_the_repository():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text and "REPORTS.md" not in text, doc.name
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not re.match(r"[a-z]+:", target):  # a relative link: the file is in the repository
                assert (doc.parent / target).exists(), (doc.name, target)


def test_docs_describe_every_csv_file_of_a_report():
    """docs/reports.md lists each CSV file the reports produce (section keys of the demo's exports)."""
    text = (ROOT / "docs" / "reports.md").read_text()
    for name in [
        "sales-previous_period.csv",
        "sales-top_products.csv",
        "sales-top_categories.csv",
        "sales-by_cashier.csv",
        "inventory-reorder_list.csv",
        "audit_log-top_users.csv",
    ]:
        assert f"`{name}`" in text, name
    assert "## Where the files are" in text and "## Filters" in text


def test_cli_and_launchpad_help_point_to_the_docs(capsys):
    from pos_exports.defs.on_demand import OnDemandConfig

    assert main(["--help"]) == 0
    assert "docs/reports.md" in " ".join(capsys.readouterr().out.split())
    fields = OnDemandConfig.model_fields
    assert "docs/reports.md" in fields["datasets"].description and "docs/reports.md" in fields["filters"].description
