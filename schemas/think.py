"""The toggle's text conventions: system prompts, and splitting / composing `<think>` outputs."""

from __future__ import annotations

import re
from dataclasses import dataclass

SYSTEM_PROMPT_ON = "detailed thinking on"
SYSTEM_PROMPT_OFF = "detailed thinking off"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_THINK_TAG = re.compile(r"</?think>")


def system_prompt_for(reasoning: str) -> str:
    """Nemotron's system prompt for a mode ("on" or "off")."""
    if reasoning not in ("on", "off"):
        raise ValueError(f"reasoning must be 'on' or 'off', got {reasoning!r}")
    return SYSTEM_PROMPT_ON if reasoning == "on" else SYSTEM_PROMPT_OFF


def compose_output(reasoning: str | None, answer: str) -> str:
    """The published output: `<think>\\n{reasoning}\\n</think>\\n\\n{answer}` for on, the answer for off."""
    if reasoning is None:
        return answer
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{answer.strip()}"


@dataclass(frozen=True, slots=True)
class ThinkSplit:
    """An output split at its think block. `problem` is None when the output is well formed for a mode."""

    reasoning: str | None  # the text inside <think>…</think>, None when there is no closed think block
    answer: str  # the final answer: the text after </think>, or the whole output when there is no think
    opens: int  # how many <think> tags
    closes: int  # how many </think> tags

    @property
    def has_think(self) -> bool:
        return self.opens > 0 or self.closes > 0

    def problem(self, reasoning_mode: str, think_cut: bool = False) -> str | None:
        """Why this output breaks the given mode's format, or None. Reasons are stable identifiers.
        `think_cut`: a thinking budget closed the block, so an empty one (a budget of 0) is by design."""
        if reasoning_mode == "off":
            return "think_in_off_mode" if self.has_think else ("empty_answer" if not self.answer else None)
        if not self.has_think:
            return "no_think"
        if self.opens == 0:
            return "missing_open_think"  # reasoning then </think>: a prefilled `<think>` was not put back
        if self.opens != 1 or self.closes != 1:
            return "unclosed_think" if self.closes < self.opens else "multiple_think"
        if self.reasoning is None:
            return "think_not_at_start"
        if not self.reasoning.strip() and not think_cut:
            return "empty_think"
        if not self.answer.strip():
            return "empty_answer"
        return None


def split_output(output: str) -> ThinkSplit:
    """Split a model output at its think block.

    Only the first closed block counts, and only when it opens the output (leading whitespace allowed);
    text before a think block is not an answer, so such outputs report no reasoning.
    """
    opens = output.count(THINK_OPEN)
    closes = output.count(THINK_CLOSE)
    stripped = output.lstrip()
    if stripped.startswith(THINK_OPEN) and closes:
        end = stripped.find(THINK_CLOSE)
        if end > 0:
            reasoning = stripped[len(THINK_OPEN) : end].strip()
            answer = stripped[end + len(THINK_CLOSE) :].strip()
            return ThinkSplit(reasoning, answer, opens, closes)
    if closes and not opens:
        # Some servers strip the opening tag (the chat template prefilled it): the reasoning is before it.
        # `opens` stays 0 so that `problem` still flags the output; a generator repairs it with compose_output.
        end = output.find(THINK_CLOSE)
        return ThinkSplit(output[:end].strip(), output[end + len(THINK_CLOSE) :].strip(), 0, closes)
    if opens and not closes:
        return ThinkSplit(None, "", opens, closes)
    if not opens:
        return ThinkSplit(None, output.strip(), opens, closes)
    # A think block that does not open the output: no reasoning; the answer is what follows the last </think>.
    tail = output[output.rfind(THINK_CLOSE) + len(THINK_CLOSE) :]
    return ThinkSplit(None, _THINK_TAG.sub("", tail).strip(), opens, closes)


def final_answer(output: str) -> str:
    """The part of an output that counts as the answer: after `</think>` if any, else the whole output.

    An unclosed think has no final answer (everything is reasoning).
    """
    return split_output(output).answer
