"""Toggle validation: answer held-out prompts in both modes, score them, report compliance and accuracy.

    held-out prompts (records with an expected answer) → for each mode: the mode's system prompt, the paper's
    decoding (on: T=0.6, top-p 0.95; off: greedy) → the model's answers → per answer:
      compliant  on: one closed, non-empty `<think>` block at the start, then a non-empty answer;
                 off: no think tags, a non-empty answer  (`filters.format.output_problem`: the format filter's rule)
      correct    compliant and the final answer verified equal to the expected one by the math filter's
                 verifier (`filters.math.verify_math_many`, its bounded worker pool): the same check the data passed
    → report.json (per mode: n, compliance, accuracy, mean response tokens; per answer: the details) and a table.

An answer that is not compliant is never counted correct: a model that ignores the toggle gets no credit
for an answer in the wrong form.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from thinktoggle.core.stats import StageStats
from thinktoggle.filters.format import output_problem
from thinktoggle.filters.math import verify_math_many
from thinktoggle.generators.engines.base import ChatRequest, SamplingConfig
from thinktoggle.generators.engines.config import EngineConfig
from thinktoggle.schemas.io import atomic_write_text
from thinktoggle.schemas.record import Record
from thinktoggle.schemas.think import system_prompt_for

MODES = ("on", "off")


@dataclass(frozen=True)
class ValidateConfig:
    """The `validate:` section of a recipe (and `thinktoggle validate`'s options)."""

    prompts: str = ""  # held-out prompts: files/folders of records or published rows with expected answers
    model: str = ""  # checkpoint folder; "" = `<input>/model` (the train stage's output)
    engine: EngineConfig = EngineConfig(kind="auto")  # kind: auto (vLLM where installed), vllm or transformers
    modes: tuple[str, ...] = MODES  # the modes to validate
    sampling_on: SamplingConfig = SamplingConfig(n=1, temperature=0.6, top_p=0.95, max_tokens=256)  # on mode
    sampling_off: SamplingConfig = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=256)  # off mode
    limit: int = 0  # score only the first `limit` prompts (0: all)
    seed: int = 0  # the engine's seed; request i is seeded seed + i
    verify_timeout_s: float = 10.0  # seconds per answer for the math verifier
    verify_processes: int = 1  # math verifier worker processes

    def __post_init__(self) -> None:
        if self.engine.kind not in ("auto", "vllm", "transformers"):
            raise ValueError(f"validate.engine: kind auto, vllm or transformers, got {self.engine.kind!r}")
        if not self.modes or any(m not in MODES for m in self.modes):
            raise ValueError(f"validate.modes: expected a non-empty subset of {MODES}, got {list(self.modes)}")

    def sampling(self, mode: str) -> SamplingConfig:
        return self.sampling_on if mode == "on" else self.sampling_off


@dataclass
class ModeScore:
    n: int = 0
    compliant: int = 0
    correct: int = 0
    tokens: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # why answers were not compliant / not correct

    def row(self) -> dict[str, Any]:
        n = max(self.n, 1)
        return {
            "n": self.n,
            "compliance": self.compliant / n,
            "accuracy": self.correct / n,
            "mean_response_tokens": self.tokens / n,
            "reasons": dict(sorted(self.reasons.items())),
        }


def score_answers(answers: list[dict[str, Any]], timeout_s: float = 10.0, processes: int = 1) -> dict[str, Any]:
    """Score answers `{"mode", "output", "expected_answer", "tokens"}` in place (adds compliant, verdict,
    correct) and return the per-mode summary, with the filters' own checks: the format filter's
    `output_problem` for compliance, the math filter's `verify_math_many` for correctness."""
    problems = [output_problem(a["output"], a["mode"]) for a in answers]
    pending = [i for i, problem in enumerate(problems) if problem is None]
    pairs = [(answers[i]["output"], answers[i]["expected_answer"]) for i in pending]
    verdicts = verify_math_many(pairs, timeout_s=timeout_s, processes=processes) if pairs else []
    by_index = dict(zip(pending, verdicts, strict=True))
    scores: dict[str, ModeScore] = {}
    for i, answer in enumerate(answers):
        score = scores.setdefault(answer["mode"], ModeScore())
        score.n += 1
        score.tokens += int(answer.get("tokens", 0))
        answer["compliant"] = problems[i] is None
        if problems[i] is not None:
            reason = problems[i]
            answer.update(verdict="fail", reason=reason, correct=False)
            score.reasons[reason] = score.reasons.get(reason, 0) + 1
            continue
        score.compliant += 1
        verdict = by_index[i]
        answer.update(verdict=verdict.verdict, reason=verdict.reason, correct=verdict.verdict == "pass")
        if answer["correct"]:
            score.correct += 1
        else:
            reason = verdict.reason or verdict.verdict
            score.reasons[reason] = score.reasons.get(reason, 0) + 1
    return {mode: scores[mode].row() for mode in MODES if mode in scores}


def read_prompts(source: str | Path, stats: StageStats, limit: int = 0) -> list[Record]:
    """Held-out prompts, one per pair id, in order: prompt files (`question` / `expected_answer` columns),
    prompt records or published rows, read by the generators' file source. Rows that are not usable or lack
    an expected answer are counted (failed / dropped) with the reason."""
    from thinktoggle.generators.sources import SourceConfig, iter_source

    prompts: dict[str, Record] = {}
    for read, record in iter_source(SourceConfig(type="file", path=str(source))):
        stats.n_in += 1
        if record is None:
            stats.fail(f"unusable: {read.field}")
            print(f"validate: skipping {read.where}: {read.field}: {read.error}")
        elif not record.expected_answer:
            stats.drop("no_expected_answer")
        elif record.pair_id in prompts:
            stats.drop("duplicate_prompt")
        elif limit and len(prompts) >= limit:
            stats.drop("over_limit")
        else:
            prompts[record.pair_id] = record
            stats.keep()
    return list(prompts.values())


def format_table(summary: dict[str, Any]) -> str:
    lines = [f"{'mode':<5} {'n':>5} {'compliance':>11} {'accuracy':>9} {'mean tokens':>12}"]
    for mode, row in summary.items():
        lines.append(
            f"{mode:<5} {row['n']:>5} {row['compliance']:>11.3f} {row['accuracy']:>9.3f} {row['mean_response_tokens']:>12.1f}"
        )
    if "on" in summary and "off" in summary:
        gap = summary["on"]["accuracy"] - summary["off"]["accuracy"]
        lines.append(f"accuracy on - off: {gap:+.3f}")
    return "\n".join(lines)


def validate_model(
    model_dir: Path, prompts: list[Record], config: ValidateConfig, engine: Any = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer every prompt in every mode with `engine` (built from `config.engine` on `model_dir` if None);
    score the answers."""
    from thinktoggle.generators.engines.factory import make_engine

    own = engine is None
    engine = engine or make_engine(config.engine, str(model_dir), seed=config.seed)
    answers: list[dict[str, Any]] = []
    try:
        for mode in config.modes:
            sampling = config.sampling(mode)
            requests = [
                ChatRequest(
                    messages=[{"role": "system", "content": system_prompt_for(mode)}, *p.input],
                    sampling=sampling,
                    n=sampling.n,
                    reasoning=mode,
                    seed=config.seed + i,
                )
                for i, p in enumerate(prompts)
            ]
            for prompt, completions in zip(prompts, engine.generate(requests), strict=True):
                for sample, c in enumerate(completions):
                    answers.append(
                        {
                            "pair_id": prompt.pair_id,
                            "prompt": prompt.prompt,
                            "mode": mode,
                            "sample": sample,
                            "output": c.text if c.error is None else "",
                            "tokens": c.completion_tokens,
                            "finish_reason": c.finish_reason,
                            "expected_answer": prompt.expected_answer,
                        }
                    )
    finally:
        if own:
            engine.close()
    summary = score_answers(answers, config.verify_timeout_s, config.verify_processes)
    for row in summary.values():
        row["engine"] = f"{engine.name} {engine.version}"
    return summary, answers


def run_validate(config: ValidateConfig, inputs: list[Path], out_dir: Path, executor: Any = None) -> StageStats:
    """Validate the model (config.model, or `<inputs[0]>/model`) on `config.prompts`; write report.json.

    Stats count the held-out prompts read (kept: scored). `executor` is accepted for the Stage API and unused.
    """
    out_dir = Path(out_dir)
    model_dir = Path(config.model) if config.model else Path(inputs[0]) / "model"
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"validate: no model at {model_dir} (config.json missing)")
    if not config.prompts:
        raise ValueError("validate.prompts: give the held-out prompts (files or folders)")
    stats = StageStats("validate")
    prompts = read_prompts(config.prompts, stats, config.limit)
    if not prompts:
        raise ValueError(f"validate: no prompts with an expected answer in {config.prompts}")
    summary, answers = validate_model(model_dir, prompts, config)
    report = {"model": str(model_dir), "prompts": config.prompts, "summary": summary, "config": _plain(config)}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(report, indent=2) + "\n", out_dir / "report.json")
    atomic_write_text("".join(json.dumps(a) + "\n" for a in answers), out_dir / "answers.jsonl")
    print(format_table(summary))
    stats.write(out_dir / "stats.json")
    return stats


def _plain(config: ValidateConfig) -> dict[str, Any]:
    data = asdict(config)
    data["modes"] = list(config.modes)
    return data
