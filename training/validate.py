"""The evaluation (`validate` stage): benchmarks answered in both modes, n samples each, scored and reported.

    benchmarks (training/benchmarks.py: known ones by name, or any prompt source with a scorer), and `prompts`
    (held-out prompt records or rows: one more benchmark) → every prompt in every mode: the mode's system
    prompt, the paper's decoding (on: T=0.6, top-p 0.95; off: greedy), n samples → per answer:
      compliant  on: one closed, non-empty `<think>` block at the start, then a non-empty answer;
                 off: no think tags, a non-empty answer  (`filters.format.output_problem`: the format filter's rule)
      correct    compliant, and the final answer right by the benchmark's scorer: math (`filters.math`'s verifier
                 pool), code (`filters.code` in the sandbox: every test must pass), choice (`filters.choice`)
    → metrics per benchmark and mode (training/eval_metrics.py: pass@1 over the samples, pass@k, maj@k, no-answer,
      compliance, reasoning / answer tokens, stderr) → report.json, report.md (a table per benchmark), plots/,
      answers.jsonl, and the stage layout: kept/ the prompts scored, dropped/ (no answer key, duplicates),
      failed/ (unusable rows, with file:line and field), stats.json.
    With `budgets`, every prompt is answered "on" once more at each thinking budget (the engine closes the think
    block there; an empty block is then in format) → `benchmarks.<name>.budget_curve` (training/eval_budget.py).

An answer that breaks its mode's format is never correct: a model that ignores the toggle gets no credit for an
answer in the wrong form.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from thinktoggle.core.layout import stats_path
from thinktoggle.core.outputs import StageOutputs, clear_partial
from thinktoggle.core.stats import StageStats
from thinktoggle.filters.choice import judge_choice
from thinktoggle.filters.code import extract_code, verify_code_batch
from thinktoggle.filters.format import output_problem
from thinktoggle.filters.math import answer_of_output
from thinktoggle.generators.engines.base import ChatRequest, SamplingConfig
from thinktoggle.generators.engines.config import EngineConfig, resolve_kind
from thinktoggle.generators.sources import SourceConfig
from thinktoggle.schemas.io import atomic_write_text
from thinktoggle.schemas.record import Record
from thinktoggle.schemas.think import THINK_CLOSE, THINK_OPEN, system_prompt_for
from thinktoggle.training.benchmarks import Benchmark, BenchmarkConfig, iter_benchmark, resolve
from thinktoggle.training.eval_budget import budget_curves, check_levels, format_curves, median_thinking, resolve_levels
from thinktoggle.training.eval_metrics import Sample, summarize

MODES = ("on", "off")
STAGE = "validate"
PROMPTS_BENCHMARK = "prompts"  # the name of the benchmark `prompts` gives


@dataclass(frozen=True)
class ValidateConfig:
    """The `validate:` section of a recipe (and `thinktoggle validate`'s options)."""

    benchmarks: tuple[BenchmarkConfig, ...] = ()  # known names (MATH-500, GPQA-Diamond, ...) or sources with a scorer
    prompts: str = ""  # held-out prompts (files/folders of records or rows): one more benchmark, "prompts"
    model: str = ""  # checkpoint folder ("": `<input>/model`, the train stage's output); openai: the served name
    engine: EngineConfig = EngineConfig(kind="auto")  # kind: auto (vLLM where installed), vllm, transformers or openai
    modes: tuple[str, ...] = MODES  # the modes to evaluate
    sampling_on: SamplingConfig = SamplingConfig(n=1, temperature=0.6, top_p=0.95, max_tokens=256)  # on mode
    sampling_off: SamplingConfig = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=256)  # off mode
    limit: int = 0  # score only the first `limit` prompts of each benchmark (0: all)
    seed: int = 0  # the engine's seed; request i is seeded seed + i
    verify_timeout_s: float = 10.0  # seconds per answer for the math verifier
    verify_processes: int = 1  # math verifier worker processes
    code_workers: int = 2  # code benchmarks: programs run at once in the sandbox
    code_allow_unsafe: bool = False  # run code without bubblewrap's sandbox (only for models you trust)
    plots: bool = True  # write plots/*.png (accuracy by benchmark and mode; accuracy against tokens)
    budgets: tuple[
        str, ...
    ] = ()  # thinking budgets for the budget curve: tokens (64) or shares of the median trace (50%)
    budget_samples: int = 0  # samples per prompt at each budget (0: sampling_on.n)
    progress: bool = True  # a progress bar per engine call (samples done, tokens/s)

    def __post_init__(self) -> None:
        if self.engine.kind not in ("auto", "vllm", "transformers", "openai"):
            raise ValueError(f"engine: kind auto, vllm, transformers or openai, got {self.engine.kind!r}")
        if not self.modes or any(m not in MODES for m in self.modes):
            raise ValueError(f"modes: expected a non-empty subset of {MODES}, got {list(self.modes)}")
        if self.budgets:
            check_levels(self.budgets)
            if "on" not in self.modes:
                raise ValueError("budgets: a budget curve needs the on mode (modes: [on, off])")
            if self.sampling_on.thinking_budget is not None:
                raise ValueError("budgets: the curve's unlimited end needs sampling_on.thinking_budget unset")
        if self.budget_samples < 0:
            raise ValueError(f"budget_samples must be >= 0 (0: sampling_on.n), got {self.budget_samples}")
        names = [b.name for b in self.benchmarks] + ([PROMPTS_BENCHMARK] if self.prompts else [])
        if len(set(names)) != len(names):
            raise ValueError(f"benchmarks: names must be unique, got {names}")

    def sampling(self, mode: str) -> SamplingConfig:
        return self.sampling_on if mode == "on" else self.sampling_off

    def budgeted(self, budget: int) -> SamplingConfig:
        """The on mode's sampling with a thinking budget (budget_samples samples)."""
        return replace(self.sampling_on, thinking_budget=budget, n=self.budget_samples or self.sampling_on.n)

    def resolved(self) -> list[Benchmark]:
        benchmarks = [resolve(b, self.limit) for b in self.benchmarks]
        if self.prompts:
            source = SourceConfig(type="file", path=self.prompts, limit=self.limit)
            benchmarks.append(Benchmark(PROMPTS_BENCHMARK, source, "auto", ""))
        return benchmarks


@dataclass(frozen=True)
class Item:
    """A prompt to evaluate: its benchmark, its scorer and the prompt record."""

    benchmark: str
    scorer: str  # math | code | choice
    record: Record


def scorer_for(benchmark: Benchmark, record: Record) -> str:
    if benchmark.scorer != "auto":
        return benchmark.scorer
    return "code" if record.tests or record.category == "code" else "math"


def read_items(benchmarks: list[Benchmark], outputs: StageOutputs) -> list[Item]:
    """Every usable prompt of every benchmark, in order; unusable rows failed, prompts without an answer key
    (math, choice: expected_answer; code: tests) or repeated within a benchmark dropped, each with its reason."""
    items: list[Item] = []
    for benchmark in benchmarks:
        seen: set[str] = set()
        for read, record in iter_benchmark(benchmark):
            if record is None:
                outputs.fail(None, "unusable_row", f"{benchmark.name}: {read.field}: {read.error}", read.where)
                print(f"validate: {benchmark.name}: skipping {read.where}: {read.field}: {read.error}")
                continue
            scorer = scorer_for(benchmark, record)
            if scorer == "code" and not record.tests:
                outputs.drop(record, "no_tests", benchmark.name, read.where)
            elif scorer != "code" and not (record.expected_answer or "").strip():
                outputs.drop(record, "no_expected_answer", benchmark.name, read.where)
            elif record.pair_id in seen:
                outputs.drop(record, "duplicate_prompt", benchmark.name, read.where)
            else:
                seen.add(record.pair_id)
                outputs.keep(record)
                items.append(Item(benchmark.name, scorer, record))
    return items


# ------------------------------------------------------------------------------------------------- scoring


def score_answers(
    answers: list[dict[str, Any]],
    timeout_s: float = 10.0,
    processes: int = 1,
    code_workers: int = 2,
    allow_unsafe: bool = False,
    math_pool: Any = None,
) -> None:
    """Score answers `{"scorer", "mode", "output", "expected_answer", "tests"}` in place: adds compliant,
    answer (what was extracted, None: none), correct, verdict and reason. Compliance is the format filter's
    `output_problem`; correctness is checked only for compliant answers, by the filters' own verifiers.
    `math_pool`: a started `MathVerifierPool` to use (the caller closes it); None: one for this call."""
    math_todo: list[int] = []
    code_todo: list[int] = []
    for i, a in enumerate(answers):
        problem = output_problem(a["output"], a["mode"], bool(a.get("think_cut")))
        a["compliant"] = problem is None
        a["correct"] = False
        a["verdict"], a["reason"] = ("fail", problem) if problem else ("pass", "")
        scorer = a.get("scorer", "math")
        if scorer == "choice":
            verdict, letter = judge_choice(a["output"], a.get("expected_answer"))
            a["answer"] = letter
            if not problem:
                a.update(verdict=verdict.verdict, reason=verdict.reason, correct=verdict.verdict == "pass")
        elif scorer == "code":
            a["answer"] = extract_code(a["output"])
            if not problem:
                code_todo.append(i)
        else:
            a["answer"] = answer_of_output(a["output"])
            if not problem:
                math_todo.append(i)
    if math_todo:
        from thinktoggle.filters.math_pool import MathVerifierPool

        pairs = [(answers[i]["output"], answers[i].get("expected_answer")) for i in math_todo]
        if math_pool is not None:
            outcomes = math_pool.verify_many(pairs)
        else:
            with MathVerifierPool(processes=processes, row_timeout_s=timeout_s) as pool:
                outcomes = pool.verify_many(pairs)
        for i, outcome in zip(math_todo, outcomes, strict=True):
            answers[i].update(verdict=outcome.verdict, reason=outcome.reason, correct=outcome.verdict == "pass")
    if code_todo:
        records = [
            Record(
                input=[{"role": "user", "content": "?"}],
                output=answers[i]["output"],
                reasoning=answers[i]["mode"],
                category="code",
                tests=answers[i].get("tests"),
            )
            for i in code_todo
        ]
        verdicts = verify_code_batch(records, workers=code_workers, allow_unsafe=allow_unsafe)
        for i, verdict in zip(code_todo, verdicts, strict=True):
            answers[i].update(verdict=verdict.verdict, reason=verdict.reason, correct=verdict.verdict == "pass")


class TokenSplit:
    """Reasoning and answer tokens of an output: counted with the model's tokenizer where it loads (a local
    checkpoint), else the completion's tokens shared out by characters."""

    def __init__(self, model: str) -> None:
        self.tokenizer = None
        if (Path(model) / "tokenizer_config.json").exists():
            try:
                from transformers import AutoTokenizer

                self.tokenizer = AutoTokenizer.from_pretrained(model)
            except Exception:  # noqa: BLE001 - counting falls back to characters; never fail an evaluation on it
                self.tokenizer = None

    def many(self, answers: list[dict[str, Any]]) -> list[tuple[int, int]]:
        """(reasoning tokens, answer tokens) of each answer's `output`; they add up to its `tokens`."""
        outputs = [a["output"] for a in answers]
        heads = [o[: o.find(THINK_CLOSE) + len(THINK_CLOSE)] if THINK_CLOSE in o else "" for o in outputs]
        totals = [int(a.get("tokens") or 0) for a in answers]
        if self.tokenizer is not None:  # one batched call each (fast tokenizers batch in Rust)
            reasoning = [len(ids) for ids in self.tokenizer(heads, add_special_tokens=False)["input_ids"]]
            if not all(totals):
                counted = self.tokenizer(outputs, add_special_tokens=False)["input_ids"]
                totals = [t or len(ids) for t, ids in zip(totals, counted, strict=True)]
        else:
            reasoning = [round(t * len(h) / len(o)) if o else 0 for t, h, o in zip(totals, heads, outputs, strict=True)]
        return [(min(r, t), t - min(r, t)) for r, t in zip(reasoning, totals, strict=True)]

    def thinking(self, outputs: list[str]) -> list[int | None]:
        """Tokens inside each output's think block, tags excluded (None: no closed block): for engines that
        do not count them. Without the tokenizer, whitespace-separated words stand in for tokens."""
        inner = [_think_inner(o) for o in outputs]
        texts = [t for t in inner if t is not None]
        if self.tokenizer is not None and texts:
            counts = iter(len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"])
        else:
            counts = iter(len(t.split()) for t in texts)
        return [None if t is None else next(counts) for t in inner]


def _think_inner(output: str) -> str | None:
    start, end = output.find(THINK_OPEN), output.find(THINK_CLOSE)
    return output[start + len(THINK_OPEN) : end] if 0 <= start < end else None


# --------------------------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class Job:
    """One item answered once: in `mode` with `sampling`; `budget` the budget level's label (None: none)."""

    item: Item
    index: int  # the item's position: its request is seeded seed + index in every round
    mode: str
    sampling: SamplingConfig
    budget: str | None = None


def generate_answers(
    items: list[Item], config: ValidateConfig, engine: Any, split: TokenSplit | None = None
) -> list[dict[str, Any]]:
    """Every item in every mode, `sampling.n` samples each, one engine call per mode (the engine batches);
    then, with `config.budgets`, every item "on" at each budget level (one more call)."""
    answers: list[dict[str, Any]] = []
    for mode in config.modes:
        jobs = [Job(item, i, mode, config.sampling(mode)) for i, item in enumerate(items)]
        answers += answer_jobs(jobs, config, engine, split, title=f"validate {mode}")
    if config.budgets and "on" in config.modes:
        medians = median_thinking(answers)
        jobs = [
            Job(item, i, "on", config.budgeted(level.budget), level.label)
            for i, item in enumerate(items)
            for level in resolve_levels(config.budgets, medians.get(item.benchmark, 0.0))
        ]
        answers += answer_jobs(jobs, config, engine, split, title="validate budgets")
    return answers


def answer_jobs(
    jobs: list[Job], config: ValidateConfig, engine: Any, split: TokenSplit | None, title: str = "validate"
) -> list[dict[str, Any]]:
    """The answers of `jobs` (one engine call), with thinking tokens: the engine's count, else the tokenizer's."""
    from thinktoggle.generators.progress import GenerationProgress

    requests = [
        ChatRequest(
            messages=[{"role": "system", "content": system_prompt_for(job.mode)}, *job.item.record.input],
            sampling=job.sampling,
            n=job.sampling.n,
            model=config.model,
            reasoning=job.mode,
            seed=config.seed + job.index,
        )
        for job in jobs
    ]
    with GenerationProgress(title, sum(r.n for r in requests), config.progress) as bar:
        results = engine.generate(requests, progress=bar.advance)
    answers = []
    for job, completions in zip(jobs, results, strict=True):
        item = job.item
        for sample, c in enumerate(completions):
            answers.append(
                {
                    "benchmark": item.benchmark,
                    "scorer": item.scorer,
                    "pair_id": item.record.pair_id,
                    "prompt": item.record.prompt,
                    "mode": job.mode,
                    "budget": job.budget,
                    "thinking_budget": job.sampling.thinking_budget,
                    "sample": sample,
                    "output": c.text if c.error is None else "",
                    "error": c.error,
                    "tokens": c.completion_tokens,
                    "thinking_tokens": c.thinking_tokens,
                    "think_cut": c.think_cut,
                    "finish_reason": c.finish_reason,
                    "expected_answer": item.record.expected_answer,
                    "tests": item.record.tests,
                }
            )
    uncounted = [a for a in answers if a["thinking_tokens"] is None]
    if uncounted:
        counter = split or TokenSplit(config.model)
        for a, count in zip(uncounted, counter.thinking([a["output"] for a in uncounted]), strict=True):
            a["thinking_tokens"] = count
    return answers


def metrics(answers: list[dict[str, Any]], split: TokenSplit | None = None) -> dict[str, dict[str, Any]]:
    """`{benchmark: {mode: metrics + reasons}}` of scored answers (eval_metrics.summarize per benchmark and mode)."""
    groups: dict[tuple[str, str], dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    reasons: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    code: dict[str, bool] = defaultdict(bool)
    answers = [a for a in answers if a.get("budget") is None]  # the budget curve's points: eval_budget.py
    if split is not None:
        for a, (reasoning, answer) in zip(answers, split.many(answers), strict=True):
            a["reasoning_tokens"], a["answer_tokens"] = reasoning, answer
    for a in answers:
        key = (a["benchmark"], a["mode"])
        answer = a.get("answer")
        groups[key][a["pair_id"]].append(
            Sample(
                correct=bool(a["correct"]),
                answer=None if answer is None else " ".join(str(answer).split()),
                compliant=bool(a["compliant"]),
                reasoning_tokens=int(a.get("reasoning_tokens", 0)),
                answer_tokens=int(a.get("answer_tokens", a.get("tokens") or 0)),
            )
        )
        if not a["correct"]:
            reasons[key][a.get("error") and "generation_failed" or a["reason"] or a["verdict"]] += 1
        code[a["benchmark"]] |= a.get("scorer") == "code"
    report: dict[str, dict[str, Any]] = {}
    for (benchmark, mode), by_prompt in groups.items():
        row = summarize(list(by_prompt.values()), vote=not code[benchmark])
        row["reasons"] = dict(sorted(reasons[(benchmark, mode)].items()))
        report.setdefault(benchmark, {})[mode] = row
    return {b: {m: rows[m] for m in MODES if m in rows} for b, rows in report.items()}


# ----------------------------------------------------------------------------------------------- report


def format_table(benchmarks: dict[str, dict[str, Any]]) -> str:
    """A table per benchmark: one row per metric, the paper's `on | off` columns."""
    blocks = []
    for name, modes in benchmarks.items():
        shown = [m for m in MODES if m in modes]
        any_row = modes[shown[0]]
        n = max(int(modes[m]["n_samples"]) for m in shown)
        rows: list[tuple[str, list[str]]] = [
            ("prompts x samples", [f"{modes[m]['n_prompts']} x {modes[m]['n_samples']}" for m in shown]),
            ("pass@1", [f"{modes[m]['pass@1']:.3f}" + _pm(modes[m]["stderr"]) for m in shown]),
        ]
        if n > 1:
            rows.append((f"pass@{n}", [_at(modes[m]["pass@k"], n) for m in shown]))
            if any_row["maj@k"] is not None:
                rows.append((f"maj@{n}", [_at(modes[m]["maj@k"], n) for m in shown]))
        rows += [
            ("compliance", [f"{modes[m]['compliance']:.3f}" for m in shown]),
            ("no answer", [f"{modes[m]['no_answer']:.3f}" for m in shown]),
            ("reasoning tokens", [_tokens(modes[m]["reasoning_tokens"]) for m in shown]),
            ("answer tokens", [_tokens(modes[m]["answer_tokens"]) for m in shown]),
        ]
        width = max(len(r[0]) for r in rows)
        cells = max(18, *(len(c) for _, values in rows for c in values))
        lines = [f"{name}", f"  {'':<{width}}  " + "  ".join(f"{m:>{cells}}" for m in shown)]
        lines += [f"  {label:<{width}}  " + "  ".join(f"{v:>{cells}}" for v in values) for label, values in rows]
        if "on" in modes and "off" in modes:
            lines.append(f"  pass@1 on - off: {modes['on']['pass@1'] - modes['off']['pass@1']:+.3f}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _pm(stderr: float | None) -> str:
    return f" ± {stderr:.3f}" if stderr is not None else ""


def _at(values: dict[str, float] | None, k: int) -> str:
    return "-" if not values or str(k) not in values else f"{values[str(k)]:.3f}"


def _tokens(spread: dict[str, float]) -> str:
    return f"{spread['mean']:.0f} / {spread['median']:.0f} / {spread['p95']:.0f}"


def evaluate(
    items: list[Item], config: ValidateConfig, model: str, engine: Any = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer and score every item; `engine` is built from `config.engine` on `model` when None (and closed)."""
    from thinktoggle.filters.math_pool import MathVerifierPool
    from thinktoggle.generators.engines.factory import make_engine

    # The verifier workers start first: they import math-verify while the model generates, not after it.
    pool = None
    if any(item.scorer == "math" for item in items):
        pool = MathVerifierPool(config.verify_processes, config.verify_timeout_s).start()
    own = engine is None
    split = TokenSplit(model)
    try:
        engine = engine or make_engine(config.engine, model, seed=config.seed)
        try:
            answers = generate_answers(items, config, engine, split)
        finally:
            if own:
                engine.close()
        score_answers(
            answers,
            config.verify_timeout_s,
            config.verify_processes,
            config.code_workers,
            config.code_allow_unsafe,
            math_pool=pool,
        )
    finally:
        if pool is not None:
            pool.close()
    benchmarks: dict[str, dict[str, Any]] = metrics(answers, split)
    for name, curve in budget_curves(answers, config.sampling_on.thinking_grace).items():
        benchmarks[name]["budget_curve"] = curve
    return {"engine": f"{engine.name} {engine.version}", "benchmarks": benchmarks}, answers


def run_validate(config: ValidateConfig, inputs: list[Path], out_dir: Path, executor: Any = None) -> StageStats:
    """Evaluate the model (config.model, or `<inputs[0]>/model`) on the benchmarks; write the report and layout.

    Stats count the benchmark rows read: kept (scored), dropped (no answer key, duplicate), failed (unusable).
    `executor` is accepted for the Stage API and unused: the engine batches every prompt itself.
    """
    out_dir = Path(out_dir)
    model = config.model or (str(Path(inputs[0]) / "model") if inputs else "")
    if resolve_kind(config.engine.kind) == "openai":
        if not config.model:
            raise ValueError("validate.model: the served model's name (the openai engine serves no folder)")
    elif not model:
        raise ValueError("validate.model: give the checkpoint (--model DIR or a Hub id), or the train stage's folder")
    elif _is_path(model) and not (Path(model) / "config.json").exists():
        raise FileNotFoundError(f"validate: no model at {model} (config.json missing)")
    benchmarks = config.resolved()
    if not benchmarks:
        raise ValueError("validate.benchmarks: give benchmarks (known names or sources) or prompts (--prompts)")
    clear_partial(out_dir, "prompts")
    with StageOutputs(out_dir, STAGE, prefix="prompts") as outputs:
        items = read_items(benchmarks, outputs)
    stats = outputs.stats
    if not items:
        stats.write(stats_path(out_dir))
        raise ValueError(f"validate: no prompt with an answer key in {', '.join(b.name for b in benchmarks)}")
    result, answers = evaluate(items, config, model)
    report = {"model": model, **result, "config": _plain(config)}
    atomic_write_text(json.dumps(report, indent=2) + "\n", out_dir / "report.json")
    table = format_table(report["benchmarks"])
    curves = {name: modes["budget_curve"] for name, modes in report["benchmarks"].items() if "budget_curve" in modes}
    if curves:
        table += "\n\n" + format_curves(curves)
    atomic_write_text(f"# Evaluation of {model}\n\n```\n{table}\n```\n", out_dir / "report.md")
    atomic_write_text("".join(json.dumps(a) + "\n" for a in answers), out_dir / "answers.jsonl")
    if config.plots:
        from thinktoggle.training.eval_plots import write_plots

        write_plots(report["benchmarks"], out_dir / "plots")
    print(table)
    print(
        f"report: {out_dir / 'report.json'}, {out_dir / 'report.md'}"
        + (f", {out_dir / 'plots'}/" if config.plots else "")
    )
    stats.write(stats_path(out_dir))
    return stats


def _is_path(model: str) -> bool:
    """A local checkpoint rather than a Hub id (ORG/NAME): it exists, or it is written as a path."""
    return Path(model).exists() or model.startswith(("/", "./", "../", "~")) or model.count("/") != 1


def _plain(config: ValidateConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config), default=str))
