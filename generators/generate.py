"""The generate stage: every prompt answered in both modes by its teachers, n samples each, resumably.

    load prompts → plan (deterministic shards of prompts) → per rank, per teacher: skip completed samples
    → build requests (toggle convention) → engine → normalise → write the shard's part atomically → stats

Layout of `out_dir`:
    plan.json                         the prompts' fingerprint and the shard split (a rerun must match it)
    .prompts/prompts.parquet          the prompts, in plan order (internal records, output ""); hidden so that
                                      reading out_dir as the next stage's input finds the generated records only
    kept/shard-00000-on.parquet       generated records (RECORD_SCHEMA), one part per shard and mode;
                                      mode-breaking answers included, with a Verdict(filter="toggle", "fail")
    failed/shard-00000-on.parquet     samples that could not be generated (REJECTED_SCHEMA: the record with
                                      output "" and Verdict("generate", "error"), reason, detail)
    failed/inputs.parquet             input rows that are not usable prompts (source file:line, field: error)
    stats.json                        in = prompts × modes × n + unusable input rows = kept + failed
    logs/                             datatrove's logs

Resume: the truth is what `kept/` holds. A rerun regenerates exactly the samples missing from it (never
started, killed mid-shard, or failed) and rewrites that part atomically with old + new samples, so a
`kill -9` at any moment loses nothing and duplicates nothing. Data parallelism: the shards are dealt to
datatrove ranks (shard k → rank k mod world size); each rank builds its own engine.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from thinktoggle.core.executors import ExecutorConfig, make_executor
from thinktoggle.core.layout import failed_dir, kept_dir, logs_dir, stats_path
from thinktoggle.core.outputs import UNREADABLE, rejected_row
from thinktoggle.core.stats import StageStats
from thinktoggle.core.verdicts import reason_key
from thinktoggle.generators.engines.base import ChatRequest, Completion, Engine, SamplingConfig
from thinktoggle.generators.engines.config import LOCAL_KINDS, EngineConfig
from thinktoggle.generators.engines.factory import check_model, make_engine
from thinktoggle.generators.toggle import TOGGLE_FILTER, TOGGLES, normalise_answer, toggle_request
from thinktoggle.schemas.arrow import RECORD_SCHEMA, REJECTED_SCHEMA
from thinktoggle.schemas.convert import arrow_row_to_record, record_to_arrow_row
from thinktoggle.schemas.io import atomic_write_parquet, atomic_write_text, iter_records
from thinktoggle.schemas.record import Record, Verdict, content_hash
from thinktoggle.schemas.think import THINK_CLOSE, THINK_OPEN

MODES = ("on", "off")
GENERATE_FILTER = "generate"  # the Verdict.filter of failed samples


@dataclass(frozen=True)
class GenerateConfig:
    """The `generate:` section of a recipe."""

    engine: EngineConfig = EngineConfig()  # how the teachers are served, e.g. {kind: vllm, tp: 8}
    teacher_on: str = ""  # model path/id (vllm, transformers) or served name (openai); unused by procedural
    teacher_off: str = ""  # "" = the same teacher as on
    toggle_on: str = "nemotron"  # how the on teacher is asked to think: nemotron | qwen3 | slash
    toggle_off: str = "nemotron"  # how the off teacher is asked not to think
    sampling_on: SamplingConfig = SamplingConfig(n=1, temperature=0.6, top_p=0.95, max_tokens=1024)  # on mode
    sampling_off: SamplingConfig = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=1024)  # off mode
    modes: tuple[str, ...] = MODES  # the modes to generate
    budgeted_on: tuple[int, ...] = ()  # thinking budgets: one more on row a prompt, its think block cut at one
    seed: int | None = 0  # per-request seeds are derived from it and the prompt: reproducible in any batch
    dp: int = 1  # data-parallel ranks (one engine each); maps onto the executor's tasks
    # work split
    shard_size: int = 1000  # prompts per shard: the unit written atomically and skipped on rerun
    progress: bool = True  # show a progress bar

    def __post_init__(self) -> None:
        if self.engine.kind != "procedural" and not self.teacher_on:
            raise ValueError(f"generate.teacher_on: required for the {self.engine.kind} engine")
        for name in ("toggle_on", "toggle_off"):
            if getattr(self, name) not in TOGGLES:
                raise ValueError(f"generate.{name}: expected one of {TOGGLES}, got {getattr(self, name)!r}")
        if not self.modes or any(m not in MODES for m in self.modes):
            raise ValueError(f"generate.modes: expected a non-empty subset of {MODES}, got {list(self.modes)}")
        if self.shard_size < 1 or self.dp < 1:
            raise ValueError("generate.shard_size and dp must be >= 1")
        if any(b < 0 for b in self.budgeted_on):
            raise ValueError(f"generate.budgeted_on: budgets must be >= 0 tokens, got {list(self.budgeted_on)}")
        if self.budgeted_on and "on" not in self.modes:
            raise ValueError("generate.budgeted_on: budgeted rows are on samples: modes must include on")

    def teacher(self, mode: str) -> str:
        return (self.teacher_off or self.teacher_on) if mode == "off" else self.teacher_on

    def toggle(self, mode: str) -> str:
        return self.toggle_on if mode == "on" else self.toggle_off

    def sampling(self, mode: str) -> SamplingConfig:
        return self.sampling_on if mode == "on" else self.sampling_off

    def parts(self, shard: int) -> list[Part]:
        """The parts of a shard: one per mode, and the budgeted on samples when `budgeted_on` is set."""
        return [Part(shard, mode) for mode in self.modes] + ([Part(shard, "on", True)] if self.budgeted_on else [])

    def part_samples(self, part: Part) -> range:
        """Sample indices of a prompt in `part`: 0..n-1 in a mode; the budgeted sample comes after the on ones."""
        n_on = self.sampling_on.n
        return range(n_on, n_on + 1) if part.budgeted else range(self.sampling(part.mode).n)

    def part_sampling(self, part: Part, pair_id: str) -> SamplingConfig:
        """The sampling of a prompt in `part`; a budgeted sample's budget is drawn by the prompt's hash, so a
        rerun (or another rank) gives every prompt the same budget."""
        if not part.budgeted:
            return self.sampling(part.mode)
        budget = self.budgeted_on[int(content_hash("budget", pair_id), 16) % len(self.budgeted_on)]
        return replace(self.sampling_on, n=1, thinking_budget=budget)

    def fingerprint_fields(self) -> dict[str, Any]:
        """What decides the outputs: a rerun into the same folder must not change these."""
        keep = ("teacher_on", "teacher_off", "toggle_on", "toggle_off", "sampling_on", "sampling_off", "modes")
        data = asdict(self)
        for mode in ("sampling_on", "sampling_off"):
            if data[mode]["thinking_budget"] is None:  # unbudgeted: the plan of a folder from before budgets
                del data[mode]["thinking_budget"], data[mode]["thinking_grace"]
        budgeted = {"budgeted_on": list(self.budgeted_on)} if self.budgeted_on else {}  # older plans had none
        return {k: data[k] for k in (*keep, "seed", "shard_size")} | {"modes": list(self.modes)} | budgeted


# ----------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Part:
    """The samples of one shard in one mode: the unit written atomically."""

    shard: int
    mode: str
    budgeted: bool = False  # the budgeted on samples (`budgeted_on`)

    @property
    def name(self) -> str:
        return f"shard-{self.shard:05d}-{self.mode}{'-budgeted' if self.budgeted else ''}.parquet"


def _prompts_path(out_dir: Path) -> Path:
    # Hidden, like every working copy of an input: a folder walk of out_dir (the next stage pointed at this
    # folder) must find the generated records only, never the unanswered prompts.
    return out_dir / ".prompts" / "prompts.parquet"


def read_prompt_inputs(inputs: list[Path]) -> tuple[list[Record], list[dict[str, Any]]]:
    """Prompts from prompt files (records with empty output) or published rows (their `input` reused),
    one per pair id in input order; and the rows that are not usable, as failed/ rows naming file:line."""
    from thinktoggle.generators.sources import as_prompt

    prompts: dict[str, Record] = {}
    rejected: list[dict[str, Any]] = []
    for read, record in iter_records(inputs):
        if record is None:
            rejected.append(rejected_row(None, "generate", UNREADABLE, f"{read.field}: {read.error}", read.where))
            continue
        prompts.setdefault(record.pair_id, as_prompt(record))
    return list(prompts.values()), rejected


def make_plan(
    config: GenerateConfig, prompts: list[Record], rejected: list[dict[str, Any]], out_dir: Path
) -> dict[str, Any]:
    """Write (or check, on a rerun) the plan: which prompts, in which shards, under which settings."""
    fingerprint = content_hash("plan", [p.pair_id for p in prompts], config.fingerprint_fields())
    plan = {
        "fingerprint": fingerprint,
        "prompts": len(prompts),
        "shard_size": config.shard_size,
        "shards": (len(prompts) + config.shard_size - 1) // config.shard_size,
        "modes": list(config.modes),
        "rejected_inputs": len(rejected),
    }
    plan_path = out_dir / "plan.json"
    if plan_path.exists():
        old = json.loads(plan_path.read_text())
        if old.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{out_dir} holds a generation of other prompts or other settings (teachers, toggles, sampling, "
                "seed, shard size); rerun with the same inputs and settings, or use a new --out"
            )
        if _prompts_path(out_dir).exists():
            return plan
    if rejected:
        atomic_write_parquet(pa.Table.from_pylist(rejected, schema=REJECTED_SCHEMA), _rejected_inputs_path(out_dir))
    table = pa.Table.from_pylist([record_to_arrow_row(p) for p in prompts], schema=RECORD_SCHEMA)
    atomic_write_parquet(table, _prompts_path(out_dir))
    atomic_write_text(json.dumps(plan, indent=2) + "\n", plan_path)  # last: the plan exists once all is in place
    return plan


def _rejected_inputs_path(out_dir: Path) -> Path:
    return failed_dir(out_dir) / "inputs.parquet"


def load_plan_prompts(out_dir: Path) -> list[Record]:
    return [arrow_row_to_record(row) for row in pq.read_table(_prompts_path(out_dir)).to_pylist()]


def shard_prompts(prompts: list, shard_size: int) -> list[list]:
    return [prompts[i : i + shard_size] for i in range(0, len(prompts), shard_size)]


def _present_samples(path: Path) -> set[tuple[str, int]]:
    if not path.exists():
        return set()
    table = pq.read_table(path, columns=["pair_id", "sample"])
    return set(zip(table["pair_id"].to_pylist(), table["sample"].to_pylist(), strict=True))


# ------------------------------------------------------------------------------------------- one shard part


def request_seed(config: GenerateConfig, pair_id: str, mode: str, first_sample: int) -> int | None:
    if config.seed is None:
        return None
    return int(content_hash("seed", config.seed, pair_id, mode, first_sample), 16) % 2**31


def generator_name(config: GenerateConfig, mode: str, prompt: Record) -> str:
    if config.engine.kind == "procedural":
        task = (prompt.metadata.get("procedural") or {}).get("task", "unknown")
        return f"procedural/{task}"
    return config.teacher(mode)


@dataclass
class PendingPart:
    part: Part
    prompts: list[Record]
    existing: list[Record]  # samples already in kept/
    missing: list[tuple[Record, list[int]]]  # (prompt, sample indices to generate)
    requests: list[ChatRequest] = field(default_factory=list)


_THINK_BLOCK = re.compile(re.escape(THINK_OPEN) + r".*?" + re.escape(THINK_CLOSE) + r"\s*", re.DOTALL)


def context_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A multi-turn prompt as the teacher sees it: earlier assistant turns keep their answers and tool calls but
    lose their think blocks (as in NVIDIA's published chat data); the teacher answers the last turn."""
    return [{**m, "content": _THINK_BLOCK.sub("", m["content"])} if m["role"] == "assistant" else m for m in messages]


def pending_part(config: GenerateConfig, out_dir: Path, part: Part, prompts: list[Record]) -> PendingPart | None:
    """What remains to generate for a part, or None when it is complete."""
    kept_path = kept_dir(out_dir) / part.name
    present = _present_samples(kept_path)
    missing = []
    for prompt in prompts:
        samples = [s for s in config.part_samples(part) if (prompt.pair_id, s) not in present]
        if samples:
            missing.append((prompt, samples))
    if not missing:
        if (failed_dir(out_dir) / part.name).exists():  # stale after a kill between the two writes
            (failed_dir(out_dir) / part.name).unlink()
        return None
    existing = [arrow_row_to_record(r) for r in pq.read_table(kept_path).to_pylist()] if present else []
    pending = PendingPart(part, prompts, existing, missing)
    for prompt, samples in missing:
        messages, template_kwargs = toggle_request(config.toggle(part.mode), part.mode, context_turns(prompt.input))
        pending.requests.append(
            ChatRequest(
                messages=messages,
                sampling=config.part_sampling(part, prompt.pair_id),
                n=len(samples),
                model=config.teacher(part.mode),
                reasoning=part.mode,
                chat_template_kwargs=template_kwargs,
                seed=request_seed(config, prompt.pair_id, part.mode, samples[0]),
                metadata=prompt.metadata,
            )
        )
    return pending


def answered_record(
    config: GenerateConfig, engine: Engine, prompt: Record, mode: str, sample: int, request: ChatRequest, c: Completion
) -> Record:
    """The stored record of one completion (or of one failed sample, with output "")."""
    s = request.sampling
    sampling = {
        "engine": engine.name,
        "engine_version": engine.version,
        "teacher": config.teacher(mode) if config.engine.kind != "procedural" else generator_name(config, mode, prompt),
        "toggle": config.toggle(mode),
        "n": s.n,
        "temperature": s.temperature,
        "top_p": 1.0 if s.temperature == 0 else s.top_p,
        "max_tokens": s.max_tokens,
        "seed": request.seed if getattr(engine, "per_request_seeds", True) else None,
        "finish_reason": c.finish_reason,
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "reasoning_content": c.reasoning_content is not None,
    }
    if s.thinking_budget is not None:  # budgeted samples only: unbudgeted provenance stays as it was
        sampling |= {
            "thinking_budget": s.thinking_budget,
            "thinking_grace": s.thinking_grace,
            "thinking_tokens": c.thinking_tokens,  # inside the think block, tags excluded (None: not counted)
            "think_cut": c.think_cut,  # the engine forced </think> when the budget ran out
        }
    if c.error is not None:
        output, verdicts = "", [Verdict(GENERATE_FILTER, "error", c.error)]
    else:
        normalised = normalise_answer(c.text, mode, c.reasoning_content, c.finish_reason, c.think_cut)
        output = normalised.output
        verdicts = [Verdict(TOGGLE_FILTER, "fail", normalised.problem)] if normalised.problem else []
    return Record(
        input=prompt.input,
        category=prompt.category,
        reasoning=mode,  # type: ignore[arg-type]
        output=output,
        expected_answer=prompt.expected_answer,
        tests=prompt.tests,
        generator=generator_name(config, mode, prompt),
        license=prompt.license,
        sample=sample,
        sampling=sampling,
        verdicts=verdicts,
        metadata=prompt.metadata,
        pair_id=prompt.pair_id,  # already hashed from the same input and category
    )


def write_part(
    config: GenerateConfig, out_dir: Path, engine: Engine, pending: PendingPart, results: list[list[Completion]]
) -> tuple[int, int]:
    """Write the part's kept records (old + new) and its failed samples, each atomically. Returns (kept, failed)."""
    mode = pending.part.mode
    new_kept, new_failed = [], []
    for (prompt, samples), request, completions in zip(pending.missing, pending.requests, results, strict=True):
        for sample, completion in zip(samples, completions, strict=True):
            record = answered_record(config, engine, prompt, mode, sample, request, completion)
            (new_failed if completion.error is not None else new_kept).append(record)
    order = {p.pair_id: i for i, p in enumerate(pending.prompts)}
    kept = sorted([*pending.existing, *new_kept], key=lambda r: (order[r.pair_id], r.sample))
    if new_kept:
        table = pa.Table.from_pylist([record_to_arrow_row(r) for r in kept], schema=RECORD_SCHEMA)
        atomic_write_parquet(table, kept_dir(out_dir) / pending.part.name)
    failed_path = failed_dir(out_dir) / pending.part.name
    if new_failed:
        rows = [
            rejected_row(r, "generate", reason_key(r.verdicts[-1].reason), r.verdicts[-1].reason, "")
            for r in new_failed
        ]
        atomic_write_parquet(pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA), failed_path)
    elif failed_path.exists():
        failed_path.unlink()
    return len(new_kept), len(new_failed)


# ------------------------------------------------------------------------------------------------ one rank


def run_rank(
    config: GenerateConfig,
    out_dir: Path,
    rank: int = 0,
    world_size: int = 1,
    engine: Engine | None = None,
    pin_gpus: bool = False,
) -> dict[str, int]:
    """Generate every missing sample of this rank's shards; one engine per teacher, built only if needed."""
    from thinktoggle.generators.progress import GenerationProgress

    prompts = load_plan_prompts(out_dir)
    shards = shard_prompts(prompts, config.shard_size)
    mine = [k for k in range(len(shards)) if k % world_size == rank]
    teachers: dict[str, list[str]] = {}
    for mode in config.modes:
        teachers.setdefault(config.teacher(mode), []).append(mode)
    totals = Counter()
    for teacher, modes in teachers.items():
        work = [
            [
                p
                for part in config.parts(k)
                if part.mode in modes and (p := pending_part(config, out_dir, part, shards[k])) is not None
            ]
            for k in mine
        ]
        work = [parts for parts in work if parts]
        if not work:
            continue
        n_samples = sum(r.n for parts in work for p in parts for r in p.requests)
        teacher_engine = engine or make_engine(
            config.engine, teacher, seed=config.seed or 0, rank=rank, data_parallel=config.dp if pin_gpus else 1
        )
        try:
            with GenerationProgress(
                f"generate {teacher or config.engine.kind} [{rank}]", n_samples, config.progress
            ) as bar:
                for parts in work:  # one shard: all its modes for this teacher in one engine batch
                    requests = [r for p in parts for r in p.requests]
                    results = teacher_engine.generate(requests, progress=bar.advance)
                    totals["tokens"] += sum(c.completion_tokens for out in results for c in out)
                    at = 0
                    for p in parts:
                        part_results = results[at : at + len(p.requests)]
                        at += len(p.requests)
                        kept, failed = write_part(config, out_dir, teacher_engine, p, part_results)
                        totals["kept"] += kept
                        totals["failed"] += failed
        finally:
            if engine is None:
                teacher_engine.close()
    return dict(totals)


class _SharedEngine:
    """Carries an engine built by the caller into datatrove's in-process run: deepcopy shares it, and
    pickling (a multi-process executor) is refused with a clear message."""

    def __init__(self, engine: Engine | None) -> None:
        self.engine = engine

    def __deepcopy__(self, memo: dict) -> _SharedEngine:
        return self

    def __reduce__(self):
        if self.engine is not None:
            raise TypeError("a caller-built engine runs in-process only: use one local task with one worker")
        return (_SharedEngine, (None,))


class GenerateStep(PipelineStep):
    """The generate stage as a datatrove step: each rank generates its shards (it reads and yields no documents)."""

    name = "🤖 generate"
    type = "GENERATOR"

    def __init__(self, config: GenerateConfig, out_dir: str | Path, engine: Engine | None = None, pin_gpus=False):
        super().__init__()
        self.config = config
        self.out_dir = Path(out_dir)
        self.shared = _SharedEngine(engine)
        self.pin_gpus = pin_gpus

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        totals = run_rank(self.config, self.out_dir, rank, world_size, self.shared.engine, self.pin_gpus)
        for key, value in totals.items():
            self.stat_update(key, value=value)
        yield from ()


# -------------------------------------------------------------------------------------------------- stage


def collect_stats(config: GenerateConfig, out_dir: Path, rejected: int = 0) -> StageStats:
    """Stats from what is on disk: in = expected samples + rejected inputs = kept + failed."""
    stats = StageStats("generate")
    stats.n_in += rejected
    for _ in range(rejected):
        stats.fail(UNREADABLE)
    pair_ids = pq.read_table(_prompts_path(out_dir), columns=["pair_id"])["pair_id"].to_pylist()
    flagged: Counter = Counter()
    kept_ok = 0
    for k, shard in enumerate(shard_prompts(pair_ids, config.shard_size)):
        for part in config.parts(k):
            expected = {(pair_id, s) for pair_id in shard for s in config.part_samples(part)}
            stats.n_in += len(expected)
            kept_path = kept_dir(out_dir) / part.name
            present: set[tuple[str, int]] = set()
            if kept_path.exists():
                table = pq.read_table(kept_path, columns=["pair_id", "sample", "verdicts"]).to_pylist()
                for row in table:
                    key = (row["pair_id"], row["sample"])
                    if key not in expected or key in present:
                        continue
                    present.add(key)
                    toggle = [v["reason"] for v in row["verdicts"] or [] if v["filter"] == TOGGLE_FILTER]
                    if toggle:
                        flagged[toggle[0]] += 1
                    else:
                        kept_ok += 1
            reasons = {}
            failed_path = failed_dir(out_dir) / part.name
            if failed_path.exists():
                for row in pq.read_table(failed_path, columns=["pair_id", "sample", "reason"]).to_pylist():
                    reasons[(row["pair_id"], row["sample"])] = row["reason"] or "failed"
            for _ in range(len(present)):
                stats.keep()
            for key in expected - present:
                stats.fail(reasons.get(key, "not_generated"))
    stats.by_filter[TOGGLE_FILTER] = {
        "kept": stats.kept,
        "dropped": {},
        "well_formed": kept_ok,
        "flagged": dict(flagged),
    }
    return stats


def run_generate(
    config: GenerateConfig,
    inputs: list[Path],
    out_dir: Path,
    executor: ExecutorConfig = ExecutorConfig(),
    engine: Engine | None = None,
) -> StageStats:
    """Answer every prompt of `inputs` in each mode (n samples) into `out_dir`; rerun to resume.

    `engine`: an engine built by the caller (e.g. `VLLMEngine.from_llm(llm)`), used for every teacher and run
    in this process; otherwise each datatrove rank builds its own (`dp` ranks, or the executor's tasks).
    """
    out_dir = Path(out_dir)
    if engine is None:
        for mode in config.modes:
            check_model(config.engine, config.teacher(mode), f"teacher_{mode}")
    out_dir.mkdir(parents=True, exist_ok=True)
    prompts, rejected = read_prompt_inputs([Path(p) for p in inputs])
    make_plan(config, prompts, rejected, out_dir)
    for folder in (kept_dir(out_dir), failed_dir(out_dir)):  # temp files of writes killed mid-way
        for stale in folder.glob(".*.tmp-*") if folder.exists() else ():
            stale.unlink(missing_ok=True)
    if engine is not None:
        executor = replace(executor, type="local", tasks=1, workers=1)
    elif config.dp > 1 and executor.tasks == 1:
        executor = replace(executor, tasks=config.dp, workers=config.dp)
    pin_gpus = executor.type == "local" and executor.tasks > 1 and config.engine.kind in LOCAL_KINDS
    step = GenerateStep(config, out_dir, engine, pin_gpus)
    started = time.monotonic()
    make_executor(executor, [step], logs_dir(out_dir), job_name="generate", skip_completed=False).run()
    stats = collect_stats(config, out_dir, rejected=len(rejected))
    stats.write(stats_path(out_dir))
    _log_summary(stats, time.monotonic() - started)
    return stats


def _log_summary(stats: StageStats, seconds: float) -> None:
    from rich.console import Console

    # The counts are the command's closing line; this says what only generate knows.
    flagged = sum(stats.by_filter[TOGGLE_FILTER]["flagged"].values())
    Console(stderr=True).print(
        f"generate: {flagged} of {stats.kept} kept answers break their mode (flagged for the filter), {seconds:.1f} s"
    )
