"""The procedural teacher: answers built-in procedural prompts exactly, with its real intermediate steps.

"on": `<think>` with the steps, then the answer; "off": the answer alone. Deterministic, so n samples are
identical; the generator still writes n records so that counts match the other engines.

A thinking budget cuts the steps after `budget` tokens and still gives the right answer: a training row that
answers from a partial trace (generate's `budgeted_on`). Without a tokenizer, a token is a non-space character
(with the spaces before it): the procedural traces are digits, operators and letters, one token each in the
demo's tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence

from thinktoggle.generators.engines.base import ChatRequest, Completion, ProgressCallback, failed
from thinktoggle.generators.procedural import get_task
from thinktoggle.schemas.think import compose_output


def cut_trace(steps: str, budget: int) -> tuple[str, bool]:
    """The first `budget` tokens (non-space characters) of `steps`, and whether anything was cut."""
    seen = 0
    for i, char in enumerate(steps):
        if not char.isspace():
            if seen == budget:
                return steps[:i].rstrip(), True
            seen += 1
    return steps, False


def _tokens(text: str) -> int:
    return sum(not char.isspace() for char in text)


class ProceduralEngine:
    name = "procedural"

    def __init__(self) -> None:
        from thinktoggle import __version__ as thinktoggle_version

        self.version = f"thinktoggle {thinktoggle_version}"

    def _answer(self, request: ChatRequest) -> list[Completion]:
        info = request.metadata.get("procedural")
        if not isinstance(info, dict) or "task" not in info or "problem" not in info:
            return failed(
                request.n,
                "not_procedural: the procedural teacher answers only its built-in tasks (`--procedural arithmetic`); "
                "for other prompts serve a model: --engine-kind vllm|transformers|openai --teacher-on MODEL",
            )
        try:
            steps, answer = get_task(info["task"]).solve(info["problem"])
        except (ValueError, KeyError, TypeError) as exc:
            return failed(request.n, f"procedural_error: {exc}")
        budget = request.sampling.thinking_budget if request.reasoning == "on" else None
        thinking, cut = (steps, False) if budget is None else cut_trace(steps, budget)
        text = compose_output(thinking, answer) if request.reasoning == "on" else answer
        words = len(text.split())  # no tokenizer: whitespace words stand in for tokens
        return [
            Completion(
                text=text,
                finish_reason="stop",
                completion_tokens=words,
                thinking_tokens=None if budget is None else _tokens(thinking),
                think_cut=cut,
            )
            for _ in range(request.n)
        ]

    def generate(
        self, requests: Sequence[ChatRequest], progress: ProgressCallback | None = None
    ) -> list[list[Completion]]:
        results = []
        for request in requests:
            completions = self._answer(request)
            results.append(completions)
            if progress:
                progress(len(completions), sum(c.completion_tokens for c in completions))
        return results

    def close(self) -> None:
        pass
