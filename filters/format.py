"""The toggle format: what NVIDIA's own clean-up of Llama-Nemotron's data dropped, and a little more.

- on rows: exactly one `<think>…</think>`, at the start, non-empty reasoning, non-empty final answer;
- off rows: no think tags at all, non-empty answer;
- `system_prompt` agrees with `reasoning` (names its own mode, not the other; `/think` and `/no_think`, the
  switches of NVIDIA's conversational data, count as naming it);
- a math prompt that asks for `\\boxed{}` has a boxed final answer;
- a code row's code (a fenced block) is in the final answer, not only in the reasoning;
- a verdict the generator attached (`Verdict(filter="toggle", verdict="fail", reason=…)`) is honoured.

`format_problem(record)` returns the first problem as a stable identifier, or None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from thinktoggle.filters.math import BOX_COMMANDS, last_boxed
from thinktoggle.schemas.conversation import mode_of_system_turn
from thinktoggle.schemas.record import Record, Verdict
from thinktoggle.schemas.think import SYSTEM_PROMPT_OFF, SYSTEM_PROMPT_ON, THINK_OPEN, split_output

FILTER_NAME = "format"
GENERATOR_FILTER = "toggle"  # the name generators use for the verdicts they attach
_FENCED_CODE = re.compile(r"```[^\n`]*\n.*?```", re.DOTALL)


@dataclass(frozen=True)
class FormatConfig:
    require_boxed: bool = True  # math prompts that ask for \boxed{} must get a boxed final answer
    require_code_block: bool = True  # code rows must carry a fenced code block in the final answer
    check_system_prompt: bool = True


def _system_prompt_problem(record: Record) -> str | None:
    if mode_of_system_turn(record.system_prompt) in ("on", "off") and "detailed thinking" not in record.system_prompt:
        # the switch NVIDIA's conversational data uses (/think, /no_think): it must name this record's mode
        return None if mode_of_system_turn(record.system_prompt) == record.reasoning else "system_prompt_mismatch"
    prompt = record.system_prompt.lower()
    own, other = (
        (SYSTEM_PROMPT_ON, SYSTEM_PROMPT_OFF) if record.reasoning == "on" else (SYSTEM_PROMPT_OFF, SYSTEM_PROMPT_ON)
    )
    if other in prompt or own not in prompt:
        return "system_prompt_mismatch"
    return None


def output_problem(output: str, reasoning: str, think_cut: bool = False) -> str | None:
    """Why a bare model output breaks the toggle format of its mode ("on"/"off"), or None.

    The trainer's toggle validation calls this on generated outputs (no record needed). `think_cut`: a thinking
    budget closed the block, so an empty one (a budget of 0) is by design, not a broken format.
    """
    problem = split_output(output).problem(reasoning, think_cut)
    if problem is None and reasoning == "on" and not output.lstrip().startswith(THINK_OPEN):
        return "missing_open_think"  # a `</think>` without its `<think>`: the template's prefill was lost
    return problem


def format_problem(record: Record, config: FormatConfig = FormatConfig()) -> str | None:
    """Why this record breaks the toggle format, or None when it is well formed."""
    for verdict in record.verdicts:
        if verdict.filter == GENERATOR_FILTER and verdict.verdict in ("fail", "error"):
            return f"toggle_{verdict.reason or verdict.verdict}"
    if record.reasoning not in ("on", "off"):
        return "bad_reasoning_value"
    if problem := output_problem(record.output, record.reasoning, bool((record.sampling or {}).get("think_cut"))):
        return problem
    split = split_output(record.output)
    if config.check_system_prompt and (problem := _system_prompt_problem(record)):
        return problem
    answer = split.answer
    asks_for_box = record.category == "math" and any(cmd in record.prompt for cmd in BOX_COMMANDS)
    if config.require_boxed and asks_for_box and last_boxed(answer) is None:
        return "no_boxed_answer"
    if config.require_code_block and record.category == "code" and not _FENCED_CODE.search(answer):
        return "no_code_in_answer"
    return None


def format_verdict(record: Record, config: FormatConfig = FormatConfig()) -> Verdict:
    problem = format_problem(record, config)
    return Verdict(FILTER_NAME, "pass") if problem is None else Verdict(FILTER_NAME, "fail", problem)
