"""The Dagster code location: `pos_exports.definitions:defs` (workspace.yaml, `[tool.dagster]`, deploy/).

Kept as a name only: every asset, job, schedule, sensor, check and resource lives in `pos_exports.defs`.
"""

from pos_exports.defs import build_defs, defs

__all__ = ["build_defs", "defs"]
