"""The filter stage: records in, verdicts on, kept / dropped / failed out — every record accounted for.

    [partition: each input row read once, bucketed by prompt] -> reader (this rank's bucket)
        -> format -> length -> repetition -> toolcall -> math -> code [-> judge] -> writer

    out_dir/kept/      kept records (RECORD_SCHEMA, provenance and verdicts kept): the next stage's input
    out_dir/dropped/   dropped records + stage, reason (the filter's), detail, source (file:line)
    out_dir/failed/    records a filter could not judge, and unreadable input rows
    out_dir/stats.json {"in", "kept", "dropped", "failed", "by_filter": {name: {"kept", "dropped", "failed"}}}
    out_dir/ranks/     per-rank stats and progress;  out_dir/logs/  datatrove logs and completion markers

Filters run cheapest first, and a record leaves at the first filter that rejects it. A filter that does not
apply to a row (math on a chat row) lets it through: `by_filter[name]["kept"]` counts every row that got past.
On several ranks a partition phase reads every input row once and buckets it by pair id, so that all samples
of a prompt meet in one rank (the majority vote needs them) and each rank reads only its share. Math rows
without gold wait in their rank until its input ends, then vote. Each filter is a datatrove step, so the
stage runs on the Local and Ray executors unchanged; a rerun into the same folder skips the ranks that
completed (datatrove's completion markers) and merges every rank's stats again.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.utils.batching import batched

from thinktoggle.core.executors import ExecutorConfig, make_executor
from thinktoggle.core.layout import logs_dir, ranks_dir
from thinktoggle.core.outputs import completed_stats, merge_rank_stats, rank_prefix
from thinktoggle.core.stats import StageStats
from thinktoggle.core.verdicts import KeepPolicy
from thinktoggle.filters.format import FormatConfig, format_verdict
from thinktoggle.filters.judge import JudgeConfig, JudgeFilter
from thinktoggle.filters.length import LengthConfig, length_verdict, make_token_counter
from thinktoggle.filters.majority import MajorityConfig, majority_vote
from thinktoggle.filters.repetition import RepetitionConfig, repetition_verdict
from thinktoggle.filters.steps import (
    FILTER_ERROR,
    PARTITION,
    FilterStageWriter,
    PartitionStep,
    RecordFilter,
    RecordReader,
    is_rejected,
)
from thinktoggle.filters.toolcall import ToolCallConfig, toolcall_verdict
from thinktoggle.schemas.convert import document_to_record
from thinktoggle.schemas.io import atomic_write_text, discover_files
from thinktoggle.schemas.record import Record, Verdict

FILTER_ORDER = ("format", "length", "repetition", "toolcall", "math", "code", "judge")
DEFAULT_FILTERS = FILTER_ORDER[:6]  # the judge needs a model: it runs only when `only` names it


@dataclass(frozen=True)
class MathConfig:
    categories: tuple[str, ...] = ("math",)
    row_timeout_s: float = 10.0  # wall-clock per row; the worker is killed and replaced past it
    processes: int = 1  # verifier processes per rank (ranks themselves are the executor's tasks)
    memory_mb: int = 4096  # address-space limit of a verifier process
    batch_size: int = 64  # rows handed to the verifier processes at once
    majority: bool = True  # rows without gold: majority vote over the samples of their prompt and mode
    min_agreement: float = 0.5
    min_samples: int = 2

    def __post_init__(self) -> None:
        if self.row_timeout_s <= 0 or self.processes < 1 or self.batch_size < 1:
            raise ValueError("math: row_timeout_s > 0, processes >= 1 and batch_size >= 1 are required")
        MajorityConfig(self.min_agreement, self.min_samples)  # validates


@dataclass(frozen=True)
class CodeConfig:
    """The code filter (thinktoggle.filters.code): sandbox limits per program and how many sandboxes."""

    categories: tuple[str, ...] = ("code",)
    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 1024
    workers: int = 1  # concurrent sandboxes per rank
    batch_size: int = 16  # rows handed to the sandboxes at once
    allow_unsafe: bool = False  # run code WITHOUT isolation when bubblewrap is missing (never on real data)


@dataclass(frozen=True)
class FilterConfig:
    """The `filter:` section of a recipe."""

    only: tuple[str, ...] = DEFAULT_FILTERS  # which filters run (always in FILTER_ORDER)
    keep: tuple[str, ...] = ("pass",)  # verdicts that keep a row: see steps.KeepPolicy
    format: FormatConfig = field(default_factory=FormatConfig)
    length: LengthConfig = field(default_factory=LengthConfig)
    repetition: RepetitionConfig = field(default_factory=RepetitionConfig)
    toolcall: ToolCallConfig = field(default_factory=ToolCallConfig)  # filters/toolcall.py: declared functions
    math: MathConfig = field(default_factory=MathConfig)
    code: CodeConfig = field(default_factory=CodeConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)  # filters/judge.py: an LLM judge

    def __post_init__(self) -> None:
        unknown = [name for name in self.only if name not in FILTER_ORDER]
        if unknown:
            raise ValueError(f"only: unknown filter(s) {unknown}; known: {list(FILTER_ORDER)}")
        if not self.only:
            raise ValueError("only: at least one filter")
        KeepPolicy(tuple(self.keep))  # validates
        if "judge" in self.only:
            try:
                self.judge.check_runnable()
            except ValueError as exc:
                raise ValueError(f"judge: {exc}") from None

    @property
    def filters(self) -> list[str]:
        return [name for name in FILTER_ORDER if name in self.only]


# -- the filters as datatrove steps ------------------------------------------------------------------------
class FormatFilter(RecordFilter):
    filter_name = "format"

    def __init__(self, config: FormatConfig, keep: KeepPolicy) -> None:
        super().__init__(keep)
        self.config = config

    def judge(self, record: Record) -> Verdict:
        return format_verdict(record, self.config)


class LengthFilter(RecordFilter):
    filter_name = "length"

    def __init__(self, config: LengthConfig, keep: KeepPolicy) -> None:
        super().__init__(keep)
        self.config = config
        self._count = None  # built in the rank (a tokenizer is not shipped to workers)

    def judge(self, record: Record) -> Verdict:
        if self._count is None:
            self._count = make_token_counter(self.config)
        return length_verdict(record, self._count, self.config)


class RepetitionFilter(RecordFilter):
    filter_name = "repetition"

    def __init__(self, config: RepetitionConfig, keep: KeepPolicy) -> None:
        super().__init__(keep)
        self.config = config

    def judge(self, record: Record) -> Verdict:
        return repetition_verdict(record, self.config)


class ToolCallFilter(RecordFilter):
    filter_name = "toolcall"

    def __init__(self, config: ToolCallConfig, keep: KeepPolicy) -> None:
        super().__init__(keep)
        self.config = config

    def judge(self, record: Record) -> Verdict | None:
        return toolcall_verdict(record, self.config)


class MathFilter(RecordFilter):
    """Math rows: compared with their gold answer in a verifier pool; without gold, majority vote.

    Rows without gold wait until the rank's input ends (the samples of a prompt may be anywhere in it; the
    reader sends all of them to this rank), then vote group by group.
    """

    filter_name = "math"

    def __init__(self, config: MathConfig, keep: KeepPolicy) -> None:
        super().__init__(keep, batch_size=config.batch_size)
        self.config = config

    def applies(self, record: Record) -> bool:
        return record.category in self.config.categories

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from thinktoggle.filters.math_pool import MathVerifierPool

        pool = MathVerifierPool(self.config.processes, self.config.row_timeout_s, self.config.memory_mb)
        voters: list[tuple[Document, Record]] = []
        try:
            for batch in batched(data, self.batch_size):
                graded: list[tuple[Document, Record]] = []
                waiting: set[int] = set()
                for doc in batch:
                    if is_rejected(doc):
                        continue
                    record = document_to_record(doc)
                    if not self.applies(record):
                        self.apply(doc, None)
                    elif self.config.majority and not (record.expected_answer or "").strip():
                        voters.append((doc, record))
                        waiting.add(id(doc))
                    else:
                        graded.append((doc, record))
                if graded:
                    with self.track_time("batch"):
                        outcomes = pool.verify_many([(r.output, r.expected_answer) for _, r in graded])
                    for (doc, _), outcome in zip(graded, outcomes, strict=True):
                        doc.metadata["metadata"] = {**doc.metadata.get("metadata", {}), "math_answer": outcome.answer}
                        self.apply(doc, outcome.to_verdict())
                yield from (doc for doc in batch if id(doc) not in waiting)
            yield from self._vote(pool, voters)
        finally:
            pool.close()

    def _vote(self, pool, voters: list[tuple[Document, Record]]) -> DocumentsPipeline:
        groups: dict[tuple[str, str], list[tuple[Document, Record]]] = defaultdict(list)
        for doc, record in voters:
            groups[(record.pair_id, record.reasoning)].append((doc, record))
        majority = MajorityConfig(self.config.min_agreement, self.config.min_samples)
        group_list = list(groups.values())
        for chunk in batched(group_list, self.batch_size):
            results = pool.cluster_many([[r.output for _, r in group] for group in chunk])
            for group, result in zip(chunk, results, strict=True):
                if result.error:
                    verdicts = [Verdict(self.filter_name, "error", result.error)] * len(group)
                    chosen, agreement = None, 0.0
                else:
                    decision = majority_vote(result.answers, result.clusters, majority, result.timed_out)
                    verdicts, chosen, agreement = decision.verdicts, decision.answer, decision.agreement
                for i, ((doc, _), verdict) in enumerate(zip(group, verdicts, strict=True)):
                    extra = {"math_answer": result.answers[i], "majority_answer": chosen, "agreement": agreement}
                    doc.metadata["metadata"] = {**doc.metadata.get("metadata", {}), **extra}
                    self.apply(doc, verdict)
                    yield doc


class CodeFilter(RecordFilter):
    """Code rows: `thinktoggle.filters.code` runs the final answer's program against the row's tests.

    One warm sandbox pool per rank (`workers` sandboxes), shared by every batch of the rank.
    """

    filter_name = "code"

    def __init__(self, config: CodeConfig, keep: KeepPolicy) -> None:
        super().__init__(keep, batch_size=config.batch_size)
        self.config = config
        self._sandbox = None

    def judge_batch(self, records: list[Record]) -> list[Verdict | None]:
        from thinktoggle.filters.code import verify_code_batch
        from thinktoggle.filters.sandbox import Sandbox, SandboxLimits

        verdicts: list[Verdict | None] = [None] * len(records)
        todo = [i for i, r in enumerate(records) if r.category in self.config.categories]
        if not todo:
            return verdicts
        if self._sandbox is None:
            limits = SandboxLimits(wall_s=self.config.wall_s, cpu_s=self.config.cpu_s, memory_mb=self.config.memory_mb)
            self._sandbox = Sandbox(
                limits, warm=True, workers=self.config.workers, allow_unsafe=self.config.allow_unsafe
            )
        try:
            results = verify_code_batch([records[i] for i in todo], workers=self.config.workers, sandbox=self._sandbox)
        except Exception as exc:  # noqa: BLE001 - the batch could not be judged: its rows fail, the rank goes on
            error = Verdict(self.filter_name, "error", f"{FILTER_ERROR}: {type(exc).__name__}: {exc}"[:500])
            results = [error] * len(todo)
        for i, verdict in zip(todo, results, strict=True):
            verdicts[i] = verdict
        return verdicts

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        try:
            yield from super().run(data, rank, world_size)
        finally:
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None


def build_filters(config: FilterConfig) -> list[RecordFilter]:
    keep = KeepPolicy(tuple(config.keep))
    makers = {
        "format": lambda: FormatFilter(config.format, keep),
        "length": lambda: LengthFilter(config.length, keep),
        "repetition": lambda: RepetitionFilter(config.repetition, keep),
        "toolcall": lambda: ToolCallFilter(config.toolcall, keep),
        "math": lambda: MathFilter(config.math, keep),
        "code": lambda: CodeFilter(config.code, keep),
        "judge": lambda: JudgeFilter(config.judge, keep),
    }
    return [makers[name]() for name in config.filters]


def build_pipeline(config: FilterConfig, inputs: list[Path], out_dir: Path, partitioned: bool) -> list:
    return [
        RecordReader([str(p) for p in inputs], str(out_dir), partitioned),
        *build_filters(config),
        FilterStageWriter(str(out_dir), config.filters),
    ]


# -- running -------------------------------------------------------------------------------------------------
def _check_code_filter(config: FilterConfig) -> None:
    """Fail before any work when the code filter cannot run here (module missing, no sandbox)."""
    if "code" not in config.filters:
        return
    try:
        from thinktoggle.filters import code  # noqa: F401
        from thinktoggle.filters.sandbox import SandboxUnavailable, check_bwrap
    except ImportError as exc:
        raise RuntimeError(f"the code filter is not available: {exc}; run with --only excluding code") from None
    if not config.code.allow_unsafe:
        try:
            check_bwrap()
        except SandboxUnavailable as exc:
            raise RuntimeError(f"the code filter refuses to run code without a sandbox: {exc}") from None


def _run_signature(config: FilterConfig, inputs: list[Path], executor: ExecutorConfig) -> dict[str, Any]:
    return {
        "config": dataclasses.asdict(config),
        "inputs": [str(Path(p).resolve()) for p in inputs],
        "tasks": executor.tasks,
    }


def _guard_rerun(out_dir: Path, signature: dict[str, Any]) -> None:
    """Completed ranks are only reusable by the same run: same config, inputs and number of tasks."""
    path = out_dir / "filter_run.json"
    text = json.dumps(signature, indent=2, sort_keys=True, default=list) + "\n"
    if path.exists() and path.read_text() != text:
        raise ValueError(
            f"{out_dir} holds a filter run with another config, inputs or task count ({path}); "
            "use a new --out folder or delete this one"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def run_filter(
    config: FilterConfig, inputs: list[Path], out_dir: Path, executor: ExecutorConfig = ExecutorConfig()
) -> StageStats:
    """Run the filter stage (the Stage API): read `inputs`, write `out_dir`, return the merged stats."""
    out_dir = Path(out_dir)
    inputs = [Path(p) for p in inputs]
    discover_files(inputs)  # raises InputError naming a missing or unknown path before any work
    _check_code_filter(config)
    _guard_rerun(out_dir, _run_signature(config, inputs, executor))
    if (done := completed_stats(out_dir)) is not None:  # the same run finished: nothing to redo
        return done
    partitioned = executor.tasks > 1
    ranks = [rank_prefix(r) for r in range(executor.tasks)]
    if partitioned:
        n_files = len(discover_files(inputs))
        readers = replace(executor, tasks=max(1, min(executor.tasks, n_files)))
        atomic_write_text(json.dumps({"buckets": executor.tasks}), out_dir / PARTITION / "buckets.json")
        partition = make_executor(
            readers,
            [PartitionStep([str(p) for p in inputs], str(out_dir))],
            logs_dir(out_dir) / "partition",
            job_name="thinktoggle-filter-partition",
        )
        partition.run()
        ranks += [f"partition{r:05d}" for r in range(readers.tasks)]
    pipeline = build_pipeline(config, inputs, out_dir, partitioned)
    make_executor(executor, pipeline, logs_dir(out_dir), job_name="thinktoggle-filter").run()
    stats = merge_rank_stats(out_dir, "filter", ranks)
    # The buckets (about the input's size) served their ranks; stats.json now marks the stage complete.
    shutil.rmtree(out_dir / PARTITION, ignore_errors=True)
    return stats


def count_input_rows(inputs: list[Path]) -> int | None:
    """How many rows the inputs hold (for a progress bar); None when it cannot be told cheaply."""
    import gzip

    import pyarrow.parquet as pq

    total = 0
    for path in discover_files(inputs):
        name = path.name.lower()
        if name.endswith(".parquet"):
            try:
                total += pq.ParquetFile(path).metadata.num_rows
            except (OSError, ValueError):  # corrupt or not parquet: the reader reports it as a failed row, named
                total += 1
        elif name.endswith((".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as handle:
                total += sum(1 for line in handle if line.strip())
        else:
            return None
    return total


def progress_done(out_dir: Path) -> int:
    """Rows the ranks have written so far (their progress files)."""
    done = 0
    for path in ranks_dir(out_dir).glob("rank*.progress"):
        try:
            done += json.loads(path.read_text())["done"]
        except (OSError, ValueError, KeyError):
            continue
    return done
