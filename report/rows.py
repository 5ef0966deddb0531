"""A run's rows, read lazily: the stage folders of a run, and a page at a time of any stage's kept/, dropped/ or
failed/ parquet, filtered by category, mode, reason and text; all the rows of one prompt across the run.

Files are listed as every stage's reader lists them (schemas/io.py:discover_files) and scanned with polars: a
page reads its slice (and the small filter columns), never the whole folder, so a 1,000,000-row run pages in a
fraction of a second at a bounded memory (bench/view.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from thinktoggle.core.layout import DROPPED, FAILED, KEPT, is_stage_folder, stats_path
from thinktoggle.core.registry import STAGE_ORDER
from thinktoggle.core.stats import StageStats
from thinktoggle.schemas.io import discover_files
from thinktoggle.schemas.think import split_output, system_prompt_for

PARTS = (KEPT, DROPPED, FAILED)
# What a row shows; the rejection columns exist in dropped/ and failed/ only (schemas/arrow.py REJECTED_SCHEMA).
RECORD_COLUMNS = (
    "id",
    "pair_id",
    "category",
    "reasoning",
    "system_prompt",
    "input",
    "output",
    "expected_answer",
    "sample",
    "generator",
    "verdicts",
)
REJECTION_COLUMNS = ("reason", "detail", "source")
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class RowQuery:
    """One page of one stage's part, filtered. Empty filters match everything."""

    stage: str
    part: str = KEPT
    category: str = ""
    mode: str = ""
    reason: str = ""
    text: str = ""  # case-insensitive, in the output and the prompt's turns
    page: int = 0
    page_size: int = 25


class RowsError(ValueError):
    """A query that names no stage or part of this run, or a bad page."""


def stage_folders(run_dir: Path) -> dict[str, Path]:
    """The run's stage folders by name, in run order: the runner's own list (stats.json `folders`) or the
    registry's order, then any other stage folder one or two levels down (the demo's distill/generate)."""
    run_dir = Path(run_dir)
    found: dict[str, Path] = {}
    run_stats = run_dir / "stats.json"
    folders = json.loads(run_stats.read_text()).get("folders", {}) if run_stats.is_file() else {}
    for stage in STAGE_ORDER:
        folder = run_dir / folders.get(stage, stage)
        if is_stage_folder(folder):
            found[stage] = folder
    known = {p.resolve() for p in found.values()}
    for child in sorted(run_dir.glob("*")) + sorted(run_dir.glob("*/*")):
        name = child.relative_to(run_dir).as_posix()
        parts = child.relative_to(run_dir).parts
        if any(p.startswith(".") for p in parts) or child.resolve() in known:
            continue
        if any((run_dir / Path(*parts[:i])).resolve() in known for i in range(1, len(parts))):
            continue  # inside a stage folder (export's SFT/, train's model/): not a stage of its own
        if is_stage_folder(child):
            found[name] = child
            known.add(child.resolve())
    return found


def row_view(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the page shows it: the output split at its think block (schemas/think.py), the system prompt a
    mode stands for when the record leaves it implicit (None)."""
    output = row.get("output") or ""
    split = split_output(output)
    system = row.get("system_prompt")
    implicit = system is None and row.get("reasoning") in ("on", "off")
    view = {
        **{k: row.get(k) for k in RECORD_COLUMNS if k not in ("input", "output", "system_prompt")},
        "system_prompt": system_prompt_for(row["reasoning"]) if implicit else system,
        "system_prompt_implicit": implicit,
        "input": [{"role": m.get("role"), "content": m.get("content")} for m in row.get("input") or []],
        "think": split.reasoning if split.has_think else None,
        "answer": split.answer if split.has_think else output,
        "output_chars": len(output),
        "verdicts": list(row.get("verdicts") or []),
    }
    for key in REJECTION_COLUMNS:
        if key in row:
            view[key] = row[key]
    return view


class RunRows:
    """Paged, filtered reads of one run folder. Listings and counts are cached: the run is read-only here."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._files: dict[Path, list[Path]] = {}
        self._rows: dict[Path, int] = {}

    @cached_property
    def folders(self) -> dict[str, Path]:
        return stage_folders(self.run_dir)

    def stages(self) -> list[str]:
        return list(self.folders)

    def files(self, stage: str, part: str) -> list[Path]:
        folder = self._folder(stage) / self._part(part)
        if folder not in self._files:
            listed = discover_files([folder]) if folder.is_dir() else []
            self._files[folder] = [p for p in listed if p.suffix == ".parquet"]
        return self._files[folder]

    def stats(self, stage: str) -> StageStats | None:
        path = stats_path(self._folder(stage))
        return StageStats.read(path) if path.is_file() else None

    def count(self, stage: str, part: str) -> int:
        """Rows in a stage's part, from the parquet footers."""
        for path in self.files(stage, part):
            if path not in self._rows:
                self._rows[path] = pq.ParquetFile(path).metadata.num_rows
        return sum(self._rows[path] for path in self.files(stage, part))

    def scan(self, stage: str, part: str) -> pl.LazyFrame | None:
        files = self.files(stage, part)
        if not files:
            return None
        present = set(pq.read_schema(files[0]).names)
        columns = [c for c in (*RECORD_COLUMNS, *REJECTION_COLUMNS) if c in present]
        # missing_columns: shards written before a column existed (tool_calls) read as null, not as an error
        return pl.scan_parquet(files, missing_columns="insert", extra_columns="ignore").select(columns)

    def page(self, query: RowQuery, count: bool = True) -> dict[str, Any]:
        """{rows, total (None under a text search: it would read every output; or when not `count`), more, page,
        page_size}."""
        if query.page < 0 or not 0 < query.page_size <= MAX_PAGE_SIZE:
            raise RowsError(f"page must be >= 0 and page_size in 1..{MAX_PAGE_SIZE}")
        frame = self.scan(query.stage, query.part)
        result: dict[str, Any] = {"page": query.page, "page_size": query.page_size, "rows": [], "more": False}
        if frame is None:
            return {**result, "total": 0}
        predicates = _predicates(query, frame.collect_schema().names())
        if predicates:
            frame = frame.filter(pl.all_horizontal(predicates))
        start = query.page * query.page_size
        # one row past the page says whether there is a next page without counting a text search
        rows = frame.slice(start, query.page_size + 1).collect().to_dicts()
        if not predicates:
            total: int | None = self.count(query.stage, query.part)
        elif query.text or not count:
            total = None
        else:
            total = frame.select(pl.len()).collect().item()
        return {
            **result,
            "rows": [row_view(r) for r in rows[: query.page_size]],
            "more": len(rows) > query.page_size,
            "total": total,
        }

    def prompt(self, pair_id: str) -> list[dict[str, Any]]:
        """Every row of one prompt (both modes, every sample) in every stage and part: [{stage, part, rows}]."""
        found = []
        for stage in self.folders:
            for part in PARTS:
                frame = self.scan(stage, part)
                if frame is None:
                    continue
                rows = frame.filter(pl.col("pair_id") == pair_id).collect().to_dicts()
                if rows:
                    found.append({"stage": stage, "part": part, "rows": [row_view(r) for r in rows]})
        return found

    def facets(self, stage: str, part: str) -> dict[str, Any]:
        """Values to filter by: categories and modes (counted from the small columns), reasons (stats.json)."""
        frame = self.scan(stage, part)
        counts = (
            frame.group_by("category", "reasoning").len().sort("category", "reasoning").collect().to_dicts()
            if frame is not None
            else []
        )
        stats = self.stats(stage)
        reasons = {}
        if stats is not None and part != KEPT:
            reasons = dict(sorted((stats.dropped if part == DROPPED else stats.failed).items()))
        return {
            "categories": sorted({c["category"] for c in counts if c["category"] is not None}),
            "modes": sorted({c["reasoning"] for c in counts if c["reasoning"] is not None}),
            "reasons": reasons,
            "rows": self.count(stage, part),
        }

    def _folder(self, stage: str) -> Path:
        if stage not in self.folders:
            raise RowsError(f"no stage {stage!r} in {self.run_dir} (stages: {', '.join(self.folders) or 'none'})")
        return self.folders[stage]

    @staticmethod
    def _part(part: str) -> str:
        if part not in PARTS:
            raise RowsError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
        return part


def _predicates(query: RowQuery, columns: list[str]) -> list[pl.Expr]:
    predicates = []
    if query.category:
        predicates.append(pl.col("category") == query.category)
    if query.mode:
        predicates.append(pl.col("reasoning") == query.mode)
    if query.reason:
        # a part without a reason column (kept/) matches no reason
        predicates.append(pl.col("reason") == query.reason if "reason" in columns else pl.lit(False))
    if query.text:
        pattern = "(?i)" + re.escape(query.text)
        prompt = pl.col("input").list.eval(pl.element().struct.field("content")).list.join("\n")
        predicates.append(
            pl.col("output").fill_null("").str.contains(pattern) | prompt.fill_null("").str.contains(pattern)
        )
    return predicates
