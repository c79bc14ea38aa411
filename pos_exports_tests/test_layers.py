"""The layers of the package import only downwards (docs/architecture.md); the known exceptions are listed
here, to be removed, and no new one may appear."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pos_exports"
# Lowest first: a module may import its own layer and the layers before it.
LAYERS = [
    "core",
    "redact",
    "config",
    "failures",
    "periods",
    "shards",
    "storage",
    "source",
    "transient",
    "state",
    "archive",
    "reports",
    "render",
    "exports",
    "delivery",
    "operations",
    "defs",
    "definitions",
    "cli",
]
# Upward imports that remain (issue 13's re-layout moves these concepts down, then this list goes).
KNOWN = {
    ("archive/assets.py", "automation"),
    ("archive/assets.py", "reports"),
    ("archive/delta.py", "delivery"),
    ("archive/extract.py", "delivery"),
    ("archive/index.py", "delivery"),
    ("config.py", "delivery"),
    ("config.py", "source"),
    ("delivery/deliver.py", "automation"),
    ("delivery/history_cli.py", "automation"),
    ("delivery/notify.py", "automation"),
    ("exports/assets.py", "automation"),
    ("exports/on_demand.py", "automation"),
    ("exports/produce.py", "delivery"),
    ("transient.py", "source"),
}


def _upward_imports() -> set[tuple[str, str]]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        mine = rank[relative.split("/")[0].removesuffix(".py")] if relative != "__init__.py" else -1
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pos_exports."):
                other = node.module.split(".")[1]
                if other in rank and rank[other] > mine >= 0:
                    found.add((relative, other))
    return found


def test_every_module_belongs_to_a_layer():
    names = {
        p.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for p in PACKAGE.iterdir()
        if p.suffix == ".py" or p.is_dir()
    }
    assert names - {"__init__", "__pycache__", "fonts"} <= set(LAYERS)


def test_no_new_upward_import():
    found = _upward_imports()
    assert found - KNOWN == set(), "a lower layer imports a higher one (docs/architecture.md)"
    assert KNOWN - found == set(), "an exception is gone: remove it from KNOWN"
