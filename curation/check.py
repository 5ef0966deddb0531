"""`thinktoggle check`: validate files of published rows against the published schema.

A stage's kept records (internal-record parquet, e.g. `ingest`'s or `export`'s kept/) are checked as the
published rows they export to, so `check` answers "would this publish?" for any stage folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from thinktoggle.schemas.convert import record_to_row
from thinktoggle.schemas.io import discover_files, iter_records_of, iter_rows
from thinktoggle.schemas.published import row_problems


@dataclass
class CheckSummary:
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.rows} rows, {self.valid} valid, {self.invalid} invalid"


def check_paths(
    paths: Iterable[str | Path], report: Callable[[str], None] | None = None, keep_problems: int = 1000
) -> CheckSummary:
    """Validate every row under `paths`. Each problem is reported as `file:line: field: reason`.

    An unreadable row (malformed JSON, bad UTF-8, an empty file) counts as one invalid row; a folder without
    data files is reported too (the command then fails, since nothing was checked).
    """
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
            row = record_to_row(record) if record is not None else None
        else:
            row = read.row
        if read.error is not None:
            lines = [f"{read.where}: {read.field}: {read.error}"]
        else:
            lines = [f"{read.where}: {problem}" for problem in row_problems(row)]
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


def _is_record(row: dict | None) -> bool:
    """An internal record (it carries its sampling provenance) rather than a published row."""
    return row is not None and "sampling" in row and "pair_id" in row
