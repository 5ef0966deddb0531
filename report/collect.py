"""What the report shows, gathered from a run folder: the recipe, the funnel (core/funnel.py) with a sample of
rows per drop and fail reason, on/off pairs, output lengths per category and mode, the trainer's metrics.jsonl
and the evaluation's report.json and plots. Every read is bounded, so a 1,000,000-row run reports in seconds."""

from __future__ import annotations

import base64
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from thinktoggle.core.funnel import funnel_from_run, read_funnel
from thinktoggle.core.layout import KEPT
from thinktoggle.core.registry import STAGE_ORDER
from thinktoggle.report.rows import RowQuery, RunRows, row_view

SAMPLES_PER_REASON = 3
PAIRS = 6
PAIR_SCAN_ROWS = 5_000  # pairs are chosen among the first rows of the last data stage
LENGTH_ROWS = 50_000  # lengths come from at most this many rows, spread over the stage's files
METRIC_POINTS = 1_000  # the most points a training curve draws
DATA_STAGES = tuple(s for s in STAGE_ORDER if s not in ("train", "validate"))  # stages whose kept/ holds records


@dataclass
class ReportData:
    run_dir: str
    name: str
    recipe: str | None
    funnel: dict[str, Any]
    other_stages: list[dict[str, Any]] = field(default_factory=list)  # stage folders beside the recipe's (distill/)
    reason_samples: list[dict[str, Any]] = field(default_factory=list)
    pairs_stage: str | None = None
    pairs: list[dict[str, Any]] = field(default_factory=list)
    lengths: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    train_summary: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    eval_plots: list[tuple[str, str]] = field(default_factory=list)  # (name, data: URI)
    browse_stages: list[str] = field(default_factory=list)


def collect(run_dir: Path, rows: RunRows | None = None) -> ReportData:
    rows = rows or RunRows(run_dir)
    run_stats = run_dir / "stats.json"
    funnel = read_funnel(run_stats) if run_stats.is_file() else funnel_from_run(run_dir)
    in_funnel = {s["stage"] for s in funnel["stages"]}
    others = []
    for stage in rows.stages():
        stats = rows.stats(stage)
        if stage not in in_funnel and stats is not None:
            others.append(stats.to_dict() | {"stage": stage})
    recipe = run_dir / "recipe.resolved.yaml"
    data = ReportData(
        run_dir=str(run_dir),
        name=_run_name(run_dir),
        recipe=recipe.read_text() if recipe.is_file() else None,
        funnel=funnel,
        other_stages=others,
        browse_stages=rows.stages(),
    )
    data.reason_samples = reason_samples(rows, [*funnel["stages"], *others])
    data.pairs_stage = last_data_stage(rows)
    if data.pairs_stage:
        data.pairs = pairs(rows, data.pairs_stage)
        data.lengths = lengths(rows, data.pairs_stage)
    train = rows.folders.get("train", run_dir / "train")
    data.metrics = read_metrics(train / "metrics.jsonl")
    if (train / "train_summary.json").is_file():
        data.train_summary = json.loads((train / "train_summary.json").read_text())
    validate = rows.folders.get("validate", run_dir / "validate")
    if (validate / "report.json").is_file():
        data.evaluation = json.loads((validate / "report.json").read_text())
        data.eval_plots = [(p.stem, _data_uri(p)) for p in sorted((validate / "plots").glob("*.png"))]
    return data


def _run_name(run_dir: Path) -> str:
    run_stats = run_dir / "stats.json"
    if run_stats.is_file():
        name = json.loads(run_stats.read_text()).get("recipe")
        if name:
            return str(name)
    return run_dir.resolve().name


def reason_samples(rows: RunRows, stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each drop and fail reason of each stage: its count and the first rows with it."""
    samples = []
    for stats in stages:
        if stats["stage"] not in rows.folders:
            continue
        for kind, table in (("dropped", stats["dropped_reasons"]), ("failed", stats["failed_reasons"])):
            for reason, n in table.items():
                query = RowQuery(stats["stage"], kind, reason=reason, page_size=SAMPLES_PER_REASON)
                page = rows.page(query, count=False)  # stats.json has the count
                samples.append(
                    {"stage": stats["stage"], "kind": kind, "reason": reason, "count": n, "rows": page["rows"]}
                )
    return samples


def last_data_stage(rows: RunRows) -> str | None:
    """The last stage of the recipe whose kept/ holds records: where the final pairs and lengths are."""
    for stage in reversed(DATA_STAGES):
        if stage in rows.folders and rows.count(stage, KEPT):
            return stage
    return None


def pairs(rows: RunRows, stage: str, n: int = PAIRS) -> list[dict[str, Any]]:
    """The first `n` prompts of `stage` answered in both modes, each with all its kept samples per mode."""
    frame = rows.scan(stage, KEPT)
    assert frame is not None
    head = frame.select("pair_id", "reasoning").head(PAIR_SCAN_ROWS).collect()
    seen: dict[str, set[str]] = {}
    chosen: list[str] = []
    for pair_id, mode in head.iter_rows():
        seen.setdefault(pair_id, set()).add(mode)
        if seen[pair_id] >= {"on", "off"} and pair_id not in chosen:
            chosen.append(pair_id)
            if len(chosen) == n:
                break
    if not chosen:
        return []
    found = frame.filter(pl.col("pair_id").is_in(chosen)).collect().to_dicts()
    out = []
    for pair_id in chosen:
        mine = [row_view(r) for r in found if r["pair_id"] == pair_id]
        mine.sort(key=lambda r: (r["reasoning"], r["sample"] or 0))
        out.append(
            {
                "pair_id": pair_id,
                "on": [r for r in mine if r["reasoning"] == "on"],
                "off": [r for r in mine if r["reasoning"] == "off"],
            }
        )
    return out


def lengths(rows: RunRows, stage: str, limit: int = LENGTH_ROWS) -> dict[str, Any]:
    """Output lengths in characters per category and mode, from at most `limit` rows (the first rows of each
    file, so every shard is represented), with n, median, mean and p95 per category and mode."""
    files = rows.files(stage, KEPT)
    per_file = -(-limit // max(1, len(files)))
    parts = [
        pl.scan_parquet(path)
        .select("category", "reasoning", pl.col("output").fill_null("").str.len_chars().alias("chars"))
        .head(per_file)
        for path in files
    ]
    frame = pl.concat(parts).collect() if parts else pl.DataFrame()
    by_category: dict[str, dict[str, list[int]]] = {}
    for category, mode, chars in frame.iter_rows() if frame.height else ():
        by_category.setdefault(category or "?", {}).setdefault(mode or "?", []).append(chars)
    table = []
    for category in sorted(by_category):
        for mode in sorted(by_category[category]):
            values = sorted(by_category[category][mode])
            p95 = values[max(0, -(-95 * len(values) // 100) - 1)]
            table.append(
                {
                    "category": category,
                    "mode": mode,
                    "n": len(values),
                    "median": statistics.median(values),
                    "mean": statistics.fmean(values),
                    "p95": p95,
                }
            )
    return {
        "stage": stage,
        "rows_read": frame.height,
        "rows_total": rows.count(stage, KEPT),
        "by_category": {c: dict(sorted(m.items())) for c, m in sorted(by_category.items())},
        "table": table,
    }


def read_metrics(path: Path, points: int = METRIC_POINTS) -> list[dict[str, Any]]:
    """The trainer's metrics.jsonl, thinned to at most `points` lines (the last one always kept)."""
    if not path.is_file():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if len(lines) <= points:
        return lines
    every = -(-len(lines) // points)
    return lines[::every] + ([lines[-1]] if (len(lines) - 1) % every else [])


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
