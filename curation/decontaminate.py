"""Decontamination: drop prompts that share a word n-gram with a benchmark (files or Hub datasets).

Text on both sides is normalised the same way (NFKC, lower case, whitespace collapsed) and split into words
(`\\w+` runs, one character each in scripts without spaces such as Japanese: `dedup.WORD`; punctuation and
LaTeX braces do not matter); a prompt is contaminated when any of its word n-grams
is an n-gram of a benchmark item. n = 13 is the common choice; open-r1 uses 8. Items shorter than n words
cannot match and are counted in the report.

The decision depends on the prompt only, and every sample of a prompt (on and off) has the same prompt, so
the stage is pair-consistent by construction. It runs record by record as a datatrove PipelineStep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.outputs import RecordStageStep, completed_stats, rank_prefix, run_record_stage
from thinktoggle.core.stats import StageStats
from thinktoggle.curation.dedup import WORD, normalise_text, prompt_text
from thinktoggle.schemas.hub import load_hub_dataset
from thinktoggle.schemas.io import atomic_write_text, iter_rows
from thinktoggle.schemas.record import Record, Verdict

STAGE = "decontaminate"
REPORT = "decontamination_report.json"


@dataclass(frozen=True)
class BenchmarkConfig:
    """One benchmark: a local file/folder (jsonl, parquet, …) or a Hub dataset, and the text column(s)."""

    name: str
    path: str = ""
    hub_id: str = ""  # e.g. HuggingFaceH4/MATH-500, loaded with schemas.hub.load_hub_dataset
    hub_config: str = ""
    split: str = "test"
    columns: tuple[str, ...] = ("problem",)


@dataclass(frozen=True)
class DecontaminateConfig:
    ngram: int = 13
    benchmarks: tuple[BenchmarkConfig, ...] = ()
    max_examples: int = 5  # matched examples kept per benchmark in the report


def words(text: str) -> list[str]:
    return WORD.findall(normalise_text(text))


def word_ngrams(text: str, n: int) -> list[str]:
    tokens = words(text)
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _benchmark_rows(benchmark: BenchmarkConfig):
    """(where, row) for every item of the benchmark; unreadable rows raise with their file:line."""
    if benchmark.path:
        for read in iter_rows([benchmark.path]):
            if read.error is not None:
                raise ValueError(f"benchmark {benchmark.name}: {read.where}: {read.error}")
            yield read.where, read.row
    elif benchmark.hub_id:
        dataset = load_hub_dataset(benchmark.hub_id, benchmark.hub_config or None, split=benchmark.split)
        for index, row in enumerate(dataset, start=1):
            yield f"hub:{benchmark.hub_id}/{benchmark.split}:{index}", row
    else:
        raise ValueError(f"benchmark {benchmark.name}: give `path` (a file or folder) or `hub_id`")


def benchmark_texts(benchmark: BenchmarkConfig) -> list[str]:
    """The text of every item: its columns joined. A missing column is an error naming the row."""
    texts = []
    for where, row in _benchmark_rows(benchmark):
        missing = [c for c in benchmark.columns if c not in row]
        if missing:
            raise ValueError(f"benchmark {benchmark.name}: {where}: no column {missing[0]!r} (has {sorted(row)})")
        texts.append("\n".join(str(row[c]) for c in benchmark.columns if row[c] is not None))
    return texts


@dataclass
class NgramIndex:
    """n-gram -> (benchmark, item index), and what each benchmark contributed."""

    n: int
    ngrams: dict[str, tuple[str, int]] = field(default_factory=dict)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def build(cls, config: DecontaminateConfig) -> NgramIndex:
        index = cls(config.ngram)
        names = [b.name for b in config.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError(f"decontaminate.benchmarks: names must be unique, got {names}")
        for benchmark in config.benchmarks:
            texts = benchmark_texts(benchmark)
            own: set[str] = set()
            short = 0
            for item, text in enumerate(texts):
                grams = word_ngrams(text, config.ngram)
                short += not grams
                for gram in grams:
                    own.add(gram)
                    index.ngrams.setdefault(gram, (benchmark.name, item))
            index.summary[benchmark.name] = {
                "source": benchmark.path
                or f"hub:{benchmark.hub_id}" + (f"/{benchmark.split}" if benchmark.split else ""),
                "items": len(texts),
                "items_shorter_than_n": short,
                "ngrams": len(own),
            }
        return index

    def match(self, text: str) -> tuple[str, int, str] | None:
        """The first (benchmark, item, n-gram) that `text` shares, or None."""
        for gram in word_ngrams(text, self.n):
            if (hit := self.ngrams.get(gram)) is not None:
                return hit[0], hit[1], gram
        return None


class DecontaminateStep(RecordStageStep):
    """Drops records whose prompt shares a word n-gram with a benchmark item."""

    name = "🧼 decontaminate"

    def __init__(self, index: NgramIndex, inputs: list[str | Path], out_dir: str | Path, max_examples: int = 5):
        super().__init__(inputs, out_dir, STAGE)
        self.index = index
        self.max_examples = max_examples
        self._report: dict[str, dict[str, Any]] = {}

    def judge(self, record: Record) -> Verdict | None:
        hit = self.index.match(prompt_text(record))
        if hit is None:
            return None
        benchmark, item, gram = hit
        entry = self._report.setdefault(benchmark, {"rows_removed": 0, "pair_ids": [], "examples": []})
        entry["rows_removed"] += 1
        if record.pair_id not in entry["pair_ids"]:
            entry["pair_ids"].append(record.pair_id)
            if len(entry["examples"]) < self.max_examples:
                entry["examples"].append(
                    {"pair_id": record.pair_id, "prompt": record.prompt[:300], "item": item, "ngram": gram}
                )
        record.metadata = {**record.metadata, STAGE: {"benchmark": benchmark, "item": item, "ngram": gram}}
        detail = f"{self.index.n}-gram shared with {benchmark} item {item}: {gram!r}"
        return Verdict(STAGE, "fail", f"contaminated:{benchmark}: {detail}")

    def finish_rank(self, rank: int) -> None:
        atomic_write_text(json.dumps(self._report), Path(self.out_dir) / "reports" / f"{rank_prefix(rank)}.json")
        self._report = {}


def merge_reports(out_dir: Path, index: NgramIndex, max_examples: int) -> dict[str, Any]:
    """decontamination_report.json: per benchmark, its items and n-grams, rows and prompts removed, examples."""
    report = {
        name: {**summary, "rows_removed": 0, "prompts_removed": 0, "examples": []}
        for name, summary in index.summary.items()
    }
    pairs: dict[str, set[str]] = {name: set() for name in report}
    for part in sorted((out_dir / "reports").glob("*.json")):
        for name, entry in json.loads(part.read_text()).items():
            report[name]["rows_removed"] += entry["rows_removed"]
            pairs[name].update(entry["pair_ids"])
            room = max_examples - len(report[name]["examples"])
            report[name]["examples"].extend(entry["examples"][:room])
    for name in report:
        report[name]["prompts_removed"] = len(pairs[name])
    atomic_write_text(json.dumps({"ngram": index.n, "benchmarks": report}, indent=2) + "\n", out_dir / REPORT)
    return report


def run_decontaminate(
    config: DecontaminateConfig, inputs: list[Path], out_dir: Path, executor: ExecutorConfig = ExecutorConfig()
) -> StageStats:
    """Drop contaminated prompts (both modes) from `inputs` into `out_dir`; write the per-benchmark report."""
    out_dir = Path(out_dir)
    if (done := completed_stats(out_dir)) and (out_dir / REPORT).exists():
        return done
    if not config.benchmarks:
        raise ValueError("decontaminate.benchmarks: none given (a stage that checks against nothing is a mistake)")
    if config.ngram < 1:
        raise ValueError(f"decontaminate.ngram: must be >= 1, got {config.ngram}")
    index = NgramIndex.build(config)
    # Ranks that finished in an earlier, interrupted run are skipped (datatrove completion markers).
    step = DecontaminateStep(index, inputs, out_dir, config.max_examples)
    stats = run_record_stage(step, executor, job_name=STAGE)
    merge_reports(out_dir, index, config.max_examples)
    return stats
