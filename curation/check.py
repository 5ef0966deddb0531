"""`thinktoggle check`: validate files of published rows against their layout's schema.

The layout (schemas/conversation.py: llama-nemotron, nemotron-v1, nemotron-v2) is recognised row by row from
the columns, or given. A stage's kept records (internal-record parquet, e.g. `ingest`'s or `export`'s kept/)
are checked as the published rows they export to, so `check` answers "would this publish?" for any stage
folder; unless a layout is given, a record goes to llama-nemotron when it can, else to nemotron-v1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from thinktoggle.schemas.conversation import LAYOUTS, detect_layout, layout_problems
from thinktoggle.schemas.convert import record_to_layout_row, unwritable_reason
from thinktoggle.schemas.io import discover_files, iter_records_of, iter_rows
from thinktoggle.schemas.published import Problem
from thinktoggle.schemas.record import Record

AUTO = "auto"


@dataclass
class CheckSummary:
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.rows} rows, {self.valid} valid, {self.invalid} invalid"


def check_paths(
    paths: Iterable[str | Path],
    report: Callable[[str], None] | None = None,
    keep_problems: int = 1000,
    layout: str = AUTO,
) -> CheckSummary:
    """Validate every row under `paths` against `layout` (AUTO: each row's own, by its columns). Each problem
    is reported as `file:line: field: reason`.

    An unreadable row (malformed JSON, bad UTF-8, an empty file) counts as one invalid row; a folder without
    data files is reported too (the command then fails, since nothing was checked).
    """
    if layout != AUTO and layout not in LAYOUTS:
        raise ValueError(f"layout: expected {AUTO} or one of {', '.join(LAYOUTS)}, got {layout!r}")
    summary = CheckSummary()
    files: list[Path] = []
    for path in paths:
        found = discover_files([path])  # raises InputError for a missing path or an unknown format
        if not found:
            _report(
                summary,
                f"{path}: (row): no data files (.jsonl, .parquet, .arrow) in this folder",
                report,
                keep_problems,
            )
        files.extend(found)
    for read in iter_rows(files):
        summary.rows += 1
        if read.error is None and _is_record(read.row):
            read, record = next(iter_records_of([read]))
            problems = _record_problems(record, layout) if record is not None else []
        elif read.error is None:
            problems = list(layout_problems(read.row, detect_layout(read.row) if layout == AUTO else layout))
        if read.error is not None:
            lines = [f"{read.where}: {read.field}: {read.error}"]
        else:
            lines = [f"{read.where}: {problem}" for problem in problems]
        if lines:
            summary.invalid += 1
            for text in lines:
                _report(summary, text, report, keep_problems)
        else:
            summary.valid += 1
    return summary


def _report(summary: CheckSummary, text: str, report: Callable[[str], None] | None, keep_problems: int) -> None:
    if report:
        report(text)
    if len(summary.problems) < keep_problems:
        summary.problems.append(text)


def _record_problems(record: Record, layout: str) -> list[Problem]:
    """The problems of the row a record exports to in `layout` (AUTO: llama-nemotron if it fits, else v1)."""
    if layout == AUTO:
        layout = "llama-nemotron" if unwritable_reason(record, "llama-nemotron") is None else "nemotron-v1"
    if reason := unwritable_reason(record, layout):
        return [Problem("(record)", f"cannot be written in {layout}: {reason}")]
    return list(layout_problems(record_to_layout_row(record, layout), layout))


def _is_record(row: dict | None) -> bool:
    """An internal record (it carries its sampling provenance) rather than a published row."""
    return row is not None and "sampling" in row and "pair_id" in row
