"""A thinking budget as a pure state machine: which token an engine must force next, if any.

NVIDIA NIM's behaviour: count the tokens inside `<think>`; once the count reaches the budget, let the model
finish its line (a newline token) but overrun by at most `floor(grace * budget)` tokens, then force `</think>`
token by token. After the block is closed nothing is forced; a model that closes it itself is never forced.
Budget 0 closes the block right after it opens.

The engines' logits processors (vLLM, transformers) drive one `BudgetTracker` per sample; they also replay
the finished samples through it, so `Completion.thinking_tokens` and `think_cut` are the processor's figures.
Tags may be several tokens each. The prompt is read once (`prompt`): chat templates such as DeepSeek-R1's and
Qwen3's open the block in the generation prompt, and then the first generated token is already inside it.
Tokens of the prompt are not counted: the budget is on generated thinking.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from thinktoggle.schemas.think import THINK_CLOSE, THINK_OPEN


@dataclass(frozen=True)
class ThinkTags:
    """The token ids of the think tags and of every token whose text holds a newline."""

    start: tuple[int, ...]
    end: tuple[int, ...]
    newlines: frozenset[int]

    def __post_init__(self) -> None:
        if not self.start or not self.end:
            raise ValueError(f"think tags must be at least one token each, got start={self.start} end={self.end}")

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, start: str = THINK_OPEN, end: str = THINK_CLOSE) -> ThinkTags:
        """From a transformers tokenizer: the tags as it encodes them alone, the newline tokens from its vocab."""
        ids = range(len(tokenizer))
        texts = tokenizer.batch_decode([[i] for i in ids])  # decoded, so that byte-level BPE ("Ċ") is seen as \n
        return cls(
            start=tuple(tokenizer.encode(start, add_special_tokens=False)),
            end=tuple(tokenizer.encode(end, add_special_tokens=False)),
            newlines=frozenset(i for i, text in zip(ids, texts, strict=True) if "\n" in text),
        )


class Phase(enum.Enum):
    OUTSIDE = "outside"  # no think block open yet
    THINKING = "thinking"  # inside the block, counting
    FORCING = "forcing"  # the budget is spent: forcing the end tag, token by token
    DONE = "done"  # the block is closed (by the model or by us): nothing more to force


def grace_tokens(budget: int, grace: float) -> int:
    """How many tokens past the budget the model may go to finish its line."""
    return int(grace * budget + 1e-9)  # floor; the epsilon keeps 0.29 * 100 at 29, not 28.999...


class BudgetTracker:
    """One sample's thinking budget. Feed it the prompt once (`prompt`), then every generated token (`feed`);
    `forced` is the token the next step must produce (None: the model is free)."""

    __slots__ = ("tags", "budget", "limit", "phase", "count", "cut", "entered", "_forced_at", "_recent", "_window")

    def __init__(self, tags: ThinkTags, budget: int, grace: float = 0.1) -> None:
        if budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        self.tags = tags
        self.budget = budget
        self.limit = budget + grace_tokens(budget, grace)
        self.phase = Phase.OUTSIDE
        self.count = 0  # tokens generated inside the block so far (tags excluded once the end tag is seen)
        self.cut = False  # we forced the end tag
        self._forced_at = 0  # how many end-tag tokens have been forced
        self._recent: list[int] = []  # the last few tokens, to match multi-token tags
        self._window = max(len(tags.start), len(tags.end))
        self.entered = False  # a think block was open during generation

    def prompt(self, ids: Iterable[int]) -> BudgetTracker:
        """Read the prompt: is the block already open when generation starts? Its tokens count for nothing;
        a block opened and closed in the prompt (an earlier turn) leaves generation outside."""
        for token in ids:
            self._push(token)
            if self.phase is Phase.OUTSIDE and self._ends_with(self.tags.start):
                self.phase = Phase.THINKING
            elif self.phase is Phase.THINKING and self._ends_with(self.tags.end):
                self.phase = Phase.OUTSIDE
        if self.phase is Phase.THINKING:
            self._enter()
        return self

    def feed(self, token: int) -> None:
        """One generated token."""
        phase = self.phase
        if phase is Phase.DONE:
            return
        self._push(token)
        if phase is Phase.OUTSIDE:
            if self._ends_with(self.tags.start):
                self._enter()
        elif phase is Phase.THINKING:
            self.count += 1
            if self._ends_with(self.tags.end):  # the model closed the block itself
                self.count -= len(self.tags.end)
                self.phase = Phase.DONE
            elif self.count >= self.budget and (token in self.tags.newlines or self.count >= self.limit):
                self._force()
        else:  # FORCING: this token is the forced one (a replay of an unforced run just moves on)
            self._forced_at += 1
            if self._forced_at == len(self.tags.end):
                self.phase = Phase.DONE

    def feed_all(self, ids: Iterable[int]) -> BudgetTracker:
        for token in ids:
            self.feed(token)
        return self

    @property
    def forced(self) -> int | None:
        """The token the next step must produce, or None."""
        return self.tags.end[self._forced_at] if self.phase is Phase.FORCING else None

    @property
    def done(self) -> bool:
        """The block is closed: nothing will be forced any more."""
        return self.phase is Phase.DONE

    @property
    def thinking_tokens(self) -> int | None:
        """Tokens generated inside the block, tags excluded; None when no block was open during generation."""
        return self.count if self.entered else None

    def _enter(self) -> None:
        self.phase = Phase.THINKING
        self.entered = True
        self.count = 0
        if self.limit == 0:  # budget 0: close at once
            self._force()

    def _force(self) -> None:
        self.phase = Phase.FORCING
        self.cut = True
        self._forced_at = 0

    def _push(self, token: int) -> None:
        recent = self._recent
        recent.append(token)
        if len(recent) > self._window:
            del recent[0]

    def _ends_with(self, tag: tuple[int, ...]) -> bool:
        n = len(tag)
        return len(self._recent) >= n and tuple(self._recent[-n:]) == tag


def replay(
    tags: ThinkTags, budget: int, grace: float, prompt_ids: Sequence[int], output_ids: Sequence[int]
) -> BudgetTracker:
    """The tracker after a finished sample: its `thinking_tokens` and `cut` are what the processor saw."""
    return BudgetTracker(tags, budget, grace).prompt(prompt_ids).feed_all(output_ids)


def count_thinking(tags: ThinkTags, prompt_ids: Sequence[int], output_ids: Sequence[int]) -> int | None:
    """Tokens generated inside the think block of an unbudgeted sample (None: no block)."""
    # an unreachable budget: the tracker only counts
    return replay(tags, 2**62, 0.0, prompt_ids, output_ids).thinking_tokens
