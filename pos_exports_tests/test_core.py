"""The shared ground: imports nothing else of the project, and the words people type mean one thing everywhere."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pos_exports.core import words

CORE = Path(__file__).resolve().parent.parent / "pos_exports" / "core"


def test_the_shared_ground_imports_nothing_else_of_the_project():
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith("pos_exports") or name.startswith("pos_exports.core"), (path.name, name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", True),
        (" y ", True),
        ("ON", True),
        ("1", True),
        ("no", False),
        ("N", False),
        ("off", False),
        ("0", False),
        ("maybe", None),
        ("", None),
    ],
)
def test_one_set_of_true_and_false_words(text, expected):
    assert words.truth(text) is expected


def test_every_parser_of_true_and_false_accepts_the_same_words():
    from pos_exports.delivery.email import SmtpSettings
    from pos_exports.delivery.subscriptions import validate_settings
    from pos_exports.reports.filters import validate_filters

    for word in sorted(words.TRUE_WORDS | words.FALSE_WORDS):
        flag = word in words.TRUE_WORDS
        assert validate_settings({"business_id": 1, "notify_success": word}).notify_success is flag
        assert (SmtpSettings.from_url(f"smtp://mail.example?starttls={word}").security == "starttls") is flag
        assert validate_filters("customers", {"is_active": word}) == {"is_active": flag}
