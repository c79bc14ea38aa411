"""The layers of the package import only downwards (docs/architecture.md): no exception."""

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
    "service",  # the HTTP API: launched by `pos-exports serve`, so below the CLI
    "cli",
]


def _imported_parts(node: ast.AST) -> list[str]:
    """The top-level parts of the package an import names: `from pos_exports.x.y import z` and `import
    pos_exports.x` name x, `from pos_exports import x, y` names x and y."""
    if isinstance(node, ast.ImportFrom) and node.module == "pos_exports":
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pos_exports."):
        return [node.module.split(".")[1]]
    if isinstance(node, ast.Import):
        return [a.name.split(".")[1] for a in node.names if a.name.startswith("pos_exports.")]
    return []


def _upward_imports() -> set[tuple[str, str]]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        mine = rank[relative.split("/")[0].removesuffix(".py")] if relative != "__init__.py" else -1
        for node in ast.walk(ast.parse(path.read_text())):
            for other in _imported_parts(node):
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
    assert _upward_imports() == set(), "a lower layer imports a higher one (docs/architecture.md)"


def test_the_operations_are_plain_functions_without_dagster():
    """Retention, catch-up, cleanup, statistics, summaries and planning run (and are tested) without Dagster."""
    for path in (PACKAGE / "operations").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            assert not any(n.split(".")[0].startswith("dagster") for n in [*names, module or ""]), path
