"""The procedural teacher: answers built-in procedural prompts exactly, with its real intermediate steps.

"on": `<think>` with the steps, then the answer; "off": the answer alone. Deterministic, so n samples are
identical; the generator still writes n records so that counts match the other engines.
"""

from __future__ import annotations

from collections.abc import Sequence

from thinktoggle.generators.engines.base import ChatRequest, Completion, ProgressCallback, failed
from thinktoggle.generators.procedural import get_task
from thinktoggle.schemas.think import compose_output


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
        text = compose_output(steps, answer) if request.reasoning == "on" else answer
        words = len(text.split())  # no tokenizer: whitespace words stand in for tokens
        return [Completion(text=text, finish_reason="stop", completion_tokens=words) for _ in range(request.n)]

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
