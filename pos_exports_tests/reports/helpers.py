"""Reading a built report back in tests."""

from __future__ import annotations

import pyarrow as pa

from pos_exports.reports.model import Report, Section


def figures(report: Report) -> dict:
    return {f.label: f.value for f in report.summary}


def section(report: Report, key: str) -> Section:
    return next(s for s in report.sections if s.key == key)


def table(report: Report, key: str) -> pa.Table:
    sec = section(report, key)
    batches = list(sec.batches())
    assert batches, f"section {key} yields no batch"
    result = pa.Table.from_batches(batches)
    assert result.num_rows == sec.row_count, (key, result.num_rows, sec.row_count)
    assert result.column_names == [c.name for c in sec.columns]
    return result


def rows(report: Report, key: str) -> list[dict]:
    return table(report, key).to_pylist()
