"""The engine interface: a batch of chat requests in, per request `n` completions out.

An engine never raises for one bad request: a sample that could not be produced comes back as a
`Completion` with `error` set (the reason), so that the generator records it as failed and a rerun retries it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling for one mode. Paper defaults: on T=0.6 top-p 0.95; off greedy (T=0)."""

    n: int = 1
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 1024
    thinking_budget: int | None = None  # most tokens inside the think block (none: unlimited; 0: closed at once)
    thinking_grace: float = 0.1  # fraction of the budget the model may overrun to finish its line

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.temperature == 0 and self.n > 1:  # vLLM refuses it too: greedy samples are all the same
            raise ValueError(f"n must be 1 with greedy sampling (temperature 0), got n={self.n}")
        if self.thinking_budget is not None and self.thinking_budget < 0:
            raise ValueError(
                f"thinking_budget must be >= 0 (0: close the think block at once), got {self.thinking_budget}"
            )
        if not 0.0 <= self.thinking_grace <= 1.0:
            raise ValueError(f"thinking_grace must be in [0, 1], got {self.thinking_grace}")


@dataclass(frozen=True)
class ChatRequest:
    """One prompt in one mode, asking for `n` samples. `seed` (optional) makes the samples reproducible."""

    messages: list[dict[str, str]]
    sampling: SamplingConfig
    n: int = 1
    model: str = ""
    reasoning: str = "on"  # the mode asked for; the procedural engine answers by it
    chat_template_kwargs: dict[str, Any] | None = None
    seed: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # the prompt record's metadata


@dataclass(frozen=True)
class Completion:
    """One sample. `error` set means no sample: the reason it failed.

    `thinking_tokens`: tokens generated inside the think block, tags excluded (None: the engine cannot count,
    or there was no think block); `think_cut`: the engine forced the closing tag (a thinking budget ran out).
    """

    text: str = ""
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_content: str | None = None
    error: str | None = None
    thinking_tokens: int | None = None
    think_cut: bool = False


# Called as results arrive: (records done, completion tokens produced); drives the progress bar.
ProgressCallback = Callable[[int, int], None]


class Engine(Protocol):
    name: str  # "vllm", "openai", "procedural"
    version: str  # engine/library version, for provenance

    def generate(
        self, requests: Sequence[ChatRequest], progress: ProgressCallback | None = None
    ) -> list[list[Completion]]:
        """For each request, exactly `request.n` completions (failed ones with `error`)."""
        ...

    def close(self) -> None: ...


def failed(n: int, reason: str) -> list[Completion]:
    return [Completion(error=reason) for _ in range(n)]
