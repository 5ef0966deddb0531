"""Toggle conventions (how a teacher is asked for a mode) and normalisation of what it answers.

Conventions, selectable per teacher:
- `nemotron`: the system prompt "detailed thinking on" / "detailed thinking off" (Llama-Nemotron);
- `qwen3`: no system prompt; `chat_template_kwargs={"enable_thinking": True|False}` (Qwen3's template);
- `slash`: "/think" or "/no_think" as the system prompt (Qwen3 / SmolLM3 soft switches).

Whatever the convention, the stored record carries Nemotron's system prompt: it is what the published data
and the trained model use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from thinktoggle.schemas.think import compose_output, split_output, system_prompt_for

ToggleName = Literal["nemotron", "qwen3", "slash"]
TOGGLES = ("nemotron", "qwen3", "slash")
TOGGLE_FILTER = "toggle"  # the Verdict.filter of mode-breaking answers


def request_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The prompt turns as OpenAI/vLLM chat messages: {role, content}, plus an assistant turn's `tool_calls`,
    so the teacher sees the conversation's tool calls. A `tool` turn gets the `tool_call_id` it answers (the
    API requires one; records do not store it): the calls of the assistant turn before it, in order."""
    turns: list[dict[str, Any]] = []
    pending: list[str] = []  # ids of the last assistant turn's calls not yet answered
    for m in messages:
        if m["role"] == "system":
            continue
        turn: dict[str, Any] = {"role": m["role"], "content": m["content"]}
        if m["role"] == "assistant":
            pending = []
            if m.get("tool_calls"):
                turn["tool_calls"] = m["tool_calls"]
                pending = [c["id"] for c in m["tool_calls"] if c.get("id")]
        elif m["role"] == "tool":
            call_id = m.get("tool_call_id") or (pending[0] if pending else None)
            if call_id:
                turn["tool_call_id"] = call_id
                pending = [i for i in pending if i != call_id]
        turns.append(turn)
    return turns


def toggle_request(
    convention: str, reasoning: str, messages: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(messages to send, chat_template_kwargs) asking a teacher for `reasoning` ("on"/"off") on `messages`."""
    if reasoning not in ("on", "off"):
        raise ValueError(f"reasoning must be 'on' or 'off', got {reasoning!r}")
    turns = request_turns(messages)
    if convention == "nemotron":
        return [{"role": "system", "content": system_prompt_for(reasoning)}, *turns], None
    if convention == "qwen3":
        return turns, {"enable_thinking": reasoning == "on"}
    if convention == "slash":
        return [{"role": "system", "content": "/think" if reasoning == "on" else "/no_think"}, *turns], None
    raise ValueError(f"toggle must be one of {TOGGLES}, got {convention!r}")


@dataclass(frozen=True, slots=True)
class Normalised:
    """A teacher answer in the stored form, and why it breaks its mode (None when it does not)."""

    output: str
    problem: str | None


def normalise_answer(
    text: str,
    reasoning: str,
    reasoning_content: str | None = None,
    finish_reason: str = "stop",
    think_cut: bool = False,
) -> Normalised:
    """The stored output for a teacher answer in mode `reasoning`.

    - Reasoning from the server's parser (`reasoning_content`) is put back in front of the content first.
    - Well-formed "on": `<think>\\n{reasoning}\\n</think>\\n\\n{answer}`; a missing opening tag (the template
      prefilled it) is repaired by `split_output`.
    - Well-formed "off": the answer alone; an empty `<think></think>` (Qwen3 off mode) is removed.
    - Mode-breaking answers (no think when on, think when off, unclosed think, cut off at max_tokens) are
      kept as they came, with the reason: the filters must see them as they were.
    - `think_cut`: a thinking budget closed the block; an empty one (a budget of 0) is then well formed.
    """
    raw = text or ""
    if reasoning_content:
        raw = f"<think>\n{reasoning_content.strip()}\n</think>\n\n{raw.strip()}"
    parts = split_output(raw)
    if parts.opens == 0 and parts.closes == 1 and parts.reasoning:
        # `reasoning</think>answer`: the chat template prefilled `<think>`; put it back
        parts = split_output(compose_output(parts.reasoning, parts.answer))
    if reasoning == "off" and parts.opens <= 1 and parts.closes == 1 and parts.reasoning == "":
        parts = split_output(parts.answer)  # an empty think block is how Qwen3 says "not thinking"
    problem = parts.problem(reasoning, think_cut)
    if finish_reason == "length":
        problem = "length"
    if problem is not None:
        return Normalised(raw, problem)
    if reasoning == "on":
        return Normalised(compose_output(parts.reasoning, parts.answer), None)
    return Normalised(parts.answer, None)
