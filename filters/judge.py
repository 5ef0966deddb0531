"""The LLM-judge filter: a judge model reads (question, answer, reference) and says `Judgement: Yes` or `No`.

The Llama-Nemotron paper used a model as the judge where rules cannot decide: math answer matching (an
instruct model compares the final answer with the expected one) and general-domain rejection sampling.
Here any engine of `thinktoggle.generators` is the judge (offline vLLM, or an OpenAI-compatible server);
the recipe holds the prompt, a template with `{question}`, `{answer}` and `{reference}`:

    filter:
      only: [format, length, judge]
      judge:
        engine: {kind: openai, base_url: "http://judge-node:8000/v1"}
        model: Qwen/Qwen2.5-32B-Instruct
        categories: [chat]
        prompt: |
          ... {question} ... {answer} ... finish with "Judgement: Yes" or "Judgement: No".

Verdicts (filter "judge"):
    pass          judge_said_yes
    fail          judge_said_no, empty_answer (nothing after </think> to judge)
    unverifiable  unparsable_judgement (no Yes/No marker in the judge's reply), no_reference (the prompt
                  needs `{reference}` and the row has no expected answer)
    error         judge_error: the engine could not answer (server down, prompt too long); the stage
                  counts the row as failed (not dropped), so a rerun judges it again

Rows are judged in batches (`batch_size` requests per engine call). The judge's reply (truncated) is kept
in the record's metadata under `judge`, so a verdict can be audited.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from datatrove.data import DocumentsPipeline
from datatrove.utils.batching import batched

from thinktoggle.core.verdicts import KeepPolicy
from thinktoggle.filters.steps import FILTER_ERROR, RecordFilter, is_rejected
from thinktoggle.generators.engines.base import ChatRequest, Completion, SamplingConfig
from thinktoggle.generators.engines.config import EngineConfig
from thinktoggle.generators.engines.factory import check_model
from thinktoggle.schemas.convert import document_to_record
from thinktoggle.schemas.record import Record, Verdict
from thinktoggle.schemas.think import final_answer

FILTER = "judge"
PLACEHOLDERS = ("question", "answer", "reference")
_PLACEHOLDER = re.compile(r"\{(question|answer|reference)\}")

# The last "Judgement: Yes/No" of the reply (either spelling, markdown emphasis allowed around either part).
DEFAULT_VERDICT_PATTERN = r"judge?ment\W{0,6}\s*(yes|no)\b"

# Math answer matching, after the judge prompt of NVIDIA's OpenMathReasoning pipeline (the paper's math data).
MATH_ANSWER_PROMPT = """\
You will be asked to look at the two answers (predicted and expected) to a math problem and to judge whether \
they are equivalent within the context of the problem.

Please first explain your reasoning in a couple of sentences. Then respond with only Yes or No as your \
judgement on whether the two answers are the same. When comparing answers only perform trivial \
simplifications.

Problem: {question}

Predicted answer: {answer}

Expected answer: {reference}

Finish with one line: "Judgement: Yes" or "Judgement: No"."""


@dataclass(frozen=True)
class JudgeConfig:
    """The `filter.judge:` section: which rows, which judge model, the prompt, how to read the verdict."""

    categories: tuple[str, ...] = ("math",)  # the default prompt compares math answers with the gold
    # Judge only rows that one of these filters left `unverifiable` (e.g. [math]: math-verify could not
    # parse the answer, so the model compares it with the gold); () judges every row of `categories`.
    only_unverifiable_by: tuple[str, ...] = ()
    # Unset, the recipe's plan shows no judge; a run with `judge` in the filter stage's `only` requires it.
    engine: EngineConfig | None = None  # how the judge model is served, e.g. {kind: vllm, tp: 2}
    model: str = ""  # model path/id (vllm, transformers) or the served name (openai)
    prompt: str = MATH_ANSWER_PROMPT  # {question} {answer} {reference}; other braces are left as they are
    system: str = ""  # an optional system turn for the judge
    answer: Literal["final", "output"] = "final"  # {answer}: the final answer (after </think>) or the whole output
    verdict_pattern: str = DEFAULT_VERDICT_PATTERN  # case-insensitive; group 1 is yes or no; the last match counts
    max_chars: int = 16000  # each of question/answer/reference is cut to this many characters
    sampling: SamplingConfig = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=512)
    seed: int = 0
    batch_size: int = 64  # rows per engine call
    dp: int = 1  # data-parallel ranks on one node (each pins its own `tp` GPUs), as in the generate stage

    def __post_init__(self) -> None:
        if "{answer}" not in self.prompt:
            raise ValueError("prompt: the judge prompt must contain {answer}")
        try:
            pattern = re.compile(self.verdict_pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"verdict_pattern: not a regular expression: {exc}") from None
        if pattern.groups < 1:
            raise ValueError("verdict_pattern: needs a group capturing yes or no")
        if self.sampling.n != 1:
            raise ValueError("sampling: the judge answers once per row (n: 1)")
        if self.batch_size < 1 or self.max_chars < 1 or self.dp < 1:
            raise ValueError("batch_size, max_chars and dp must be >= 1")

    @property
    def needs_reference(self) -> bool:
        return "{reference}" in self.prompt

    def check_runnable(self) -> None:
        """What a run needs beyond the defaults (the filter stage calls this when `judge` is in `only`)."""
        if self.engine is None:
            raise ValueError("engine: required when the judge filter runs, e.g. {kind: vllm, tp: 2}")
        if self.engine.kind == "procedural":
            raise ValueError("engine: the procedural engine cannot judge (vllm, openai, transformers or auto)")
        if not self.model:
            raise ValueError("model: required when the judge filter runs (the judge model path/id or served name)")
        check_model(self.engine, self.model, "model")


# ------------------------------------------------------------------------------------------ pure functions


def render_prompt(template: str, question: str, answer: str, reference: str) -> str:
    """The template with its three placeholders filled in one pass (text inside the values is never
    substituted again, and other braces such as \\boxed{} stay as they are)."""
    values = {"question": question, "answer": answer, "reference": reference}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def parse_judgement(text: str, pattern: str = DEFAULT_VERDICT_PATTERN) -> bool | None:
    """True for Yes, False for No, None when the reply holds no verdict.

    A reasoning judge's `<think>` block is skipped (its final answer counts; an unclosed think has none);
    the last marker wins, since judges often quote the format before they decide.
    """
    answer = final_answer(text or "")
    matches = re.findall(pattern, answer, flags=re.IGNORECASE)
    if not matches:
        return None
    last = matches[-1]
    word = (last[0] if isinstance(last, tuple) else last).strip().lower()
    if word == "yes":
        return True
    if word == "no":
        return False
    return None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " […]"


@dataclass
class Judged:
    """One row's outcome: its verdict and the judge's reply (None when the judge was not asked)."""

    verdict: Verdict | None
    reply: str | None = None


def verdict_from_completion(completion: Completion, pattern: str) -> Verdict:
    if completion.error:
        return Verdict(FILTER, "error", f"judge_error: {completion.error}"[:500])
    said = parse_judgement(completion.text, pattern)
    if said is None:
        tail = " ".join(completion.text.split())[-120:]
        return Verdict(FILTER, "unverifiable", f"unparsable_judgement: {tail!r}")
    return Verdict(FILTER, "pass", "judge_said_yes") if said else Verdict(FILTER, "fail", "judge_said_no")


# ----------------------------------------------------------------------------------------------- the filter


class _EngineHolder:
    """An engine built by the caller rides through datatrove's deepcopy of the pipeline (one local task,
    in-process); pickling it for another process is refused with a clear message."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def __deepcopy__(self, memo: dict) -> _EngineHolder:
        return self

    def __reduce__(self):
        if self.engine is not None:
            raise TypeError("a caller-built judge engine runs in-process only: use one local task with one worker")
        return (_EngineHolder, (None,))


class JudgeFilter(RecordFilter):
    """Asks the judge model about each applicable row, a batch of rows per engine call."""

    filter_name = FILTER

    def __init__(self, config: JudgeConfig, keep: KeepPolicy = KeepPolicy(), engine: Any = None) -> None:
        super().__init__(keep, batch_size=config.batch_size)
        self.config = config
        self._given = _EngineHolder(engine)
        self._engine = None  # built in the rank from the config when no engine was given
        self._rank = 0

    # -- which rows, what to ask ---------------------------------------------------------------------------
    def applies(self, record: Record) -> bool:
        if record.category not in self.config.categories:
            return False
        if not self.config.only_unverifiable_by:
            return True
        return any(
            v.filter in self.config.only_unverifiable_by and v.verdict == "unverifiable" for v in record.verdicts
        )

    def request(self, record: Record) -> ChatRequest | Judged:
        """The judge request for a row, or the row's outcome when there is nothing to ask."""
        answer = final_answer(record.output) if self.config.answer == "final" else record.output
        if not answer.strip():
            return Judged(Verdict(FILTER, "fail", "empty_answer: nothing after </think> to judge"))
        reference = (record.expected_answer or "").strip()
        if self.config.needs_reference and not reference:
            return Judged(Verdict(FILTER, "unverifiable", "no_reference: the judge prompt needs an expected answer"))
        limit = self.config.max_chars
        question = (
            "\n\n".join(f"{m['role']}: {m['content']}" for m in record.input)
            if len(record.input) > 1
            else record.prompt
        )
        prompt = render_prompt(self.config.prompt, _cut(question, limit), _cut(answer, limit), _cut(reference, limit))
        messages = ([{"role": "system", "content": self.config.system}] if self.config.system else []) + [
            {"role": "user", "content": prompt}
        ]
        return ChatRequest(
            messages=messages,
            sampling=self.config.sampling,
            n=1,
            model=self.config.model,
            reasoning="off",
            seed=self.config.seed,
        )

    # -- judging ---------------------------------------------------------------------------------------------
    def engine(self):
        if self._given.engine is not None:
            return self._given.engine
        if self._engine is None:
            self._engine = make_judge_engine(self.config, self._rank)
        return self._engine

    def judge_records(self, records: Sequence[Record]) -> list[Judged]:
        out: list[Judged] = [Judged(None) for _ in records]
        asks: list[tuple[int, ChatRequest]] = []
        for i, record in enumerate(records):
            if not self.applies(record):
                continue
            made = self.request(record)
            if isinstance(made, Judged):
                out[i] = made
            else:
                asks.append((i, made))
        if not asks:
            return out
        try:
            results = self.engine().generate([request for _, request in asks])
        except Exception as exc:  # noqa: BLE001 - the engine failed as a whole: these rows fail, the rank goes on
            error = Completion(error=f"{FILTER_ERROR}: {type(exc).__name__}: {exc}"[:400])
            results = [[error] for _ in asks]
        for (i, _), completions in zip(asks, results, strict=True):
            completion = completions[0] if completions else Completion(error="no completion returned")
            out[i] = Judged(verdict_from_completion(completion, self.config.verdict_pattern), completion.text)
        return out

    def judge_batch(self, records: list[Record]) -> list[Verdict | None]:
        return [judged.verdict for judged in self.judge_records(records)]

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._rank = rank
        try:
            for batch in batched(data, self.batch_size):
                live = [d for d in batch if not is_rejected(d)]
                with self.track_time("batch"):
                    judged = self.judge_records([document_to_record(d) for d in live])
                for doc, outcome in zip(live, judged, strict=True):
                    if outcome.reply is not None:
                        extra = {"judge": {"model": self.config.model, "reply": outcome.reply[-2000:]}}
                        doc.metadata["metadata"] = {**(doc.metadata.get("metadata") or {}), **extra}
                    self.apply(doc, outcome.verdict)
                yield from batch
        finally:
            if self._engine is not None:
                self._engine.close()
                self._engine = None


def make_judge_engine(config: JudgeConfig, rank: int = 0):
    """The judge's engine, built by the engine factory that builds the generate stage's teachers."""
    from thinktoggle.generators.engines.factory import make_engine

    config.check_runnable()
    assert config.engine is not None  # checked just above
    return make_engine(config.engine, config.model, seed=config.seed, rank=rank, data_parallel=config.dp)


__all__ = [
    "DEFAULT_VERDICT_PATTERN",
    "MATH_ANSWER_PROMPT",
    "JudgeConfig",
    "JudgeFilter",
    "make_judge_engine",
    "parse_judgement",
    "render_prompt",
]
