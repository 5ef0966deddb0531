"""The toggle format, as a truth table (NVIDIA's clean-up cases first)."""

from __future__ import annotations

import pytest
from _filter_rows import off, on, record

from thinktoggle.filters.format import FormatConfig, format_problem, format_verdict, output_problem
from thinktoggle.schemas.record import Verdict

BOX_PROMPT = "What is 2 + 2? Put the final answer in \\boxed{}."
CODE = "```python\nprint(1)\n```"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        # well formed
        (on("2 + 2 = 4", "\\boxed{4}"), None),
        (off("\\boxed{4}"), None),
        (record("   <think>\nr\n</think>\n\nanswer", "on"), None),  # leading whitespace is fine
        # NVIDIA's clean-up cases
        (record("<think>\n\n</think>\n\nanswer", "on"), "empty_think"),
        (record("<think>\nreasoning that never ends", "on"), "unclosed_think"),
        (record("<think>\nr\n</think>\n\nanswer", "off"), "think_in_off_mode"),
        (record("answer </think>", "off"), "think_in_off_mode"),
        (record("just an answer", "on"), "no_think"),
        # more malformed on rows
        (record("<think>\nr\n</think>\n\n", "on"), "empty_answer"),
        (record("<think>\na\n</think>\n<think>\nb\n</think>\n\nanswer", "on"), "multiple_think"),
        (record("preamble <think>\nr\n</think>\n\nanswer", "on"), "think_not_at_start"),
        (record("reasoning\n</think>\n\nanswer", "on"), "missing_open_think"),
        (record("", "off"), "empty_answer"),
        # the system prompt must agree with the mode
        (on("r", "a", system_prompt="detailed thinking off"), "system_prompt_mismatch"),
        (off("a", system_prompt="detailed thinking on"), "system_prompt_mismatch"),
        (off("a", system_prompt="You are helpful."), "system_prompt_mismatch"),
        # math asking for \boxed{} must box its final answer (the reasoning does not count)
        (on("so \\boxed{4}", "The answer is 4.", prompt=BOX_PROMPT), "no_boxed_answer"),
        (off("4", prompt=BOX_PROMPT), "no_boxed_answer"),
        (off("4", prompt="What is 2 + 2?"), None),  # not asked for a box
        (on("r", "\\boxed{4}", prompt=BOX_PROMPT), None),
        # code rows carry their code in the final answer
        (on(f"draft:\n{CODE}", "Use print.", category="code"), "no_code_in_answer"),
        (on("plan", f"Here:\n{CODE}", category="code"), None),
        (off(CODE, category="code"), None),
        # a verdict the generator attached is honoured
        (on("r", "a", verdicts=[Verdict("toggle", "fail", "think_in_off_mode")]), "toggle_think_in_off_mode"),
        (on("r", "a", verdicts=[Verdict("toggle", "pass")]), None),
    ],
)
def test_format_truth_table(row, problem):
    assert format_problem(row) == problem
    verdict = format_verdict(row)
    assert verdict.filter == "format"
    assert (verdict.verdict, verdict.reason) == (("pass", "") if problem is None else ("fail", problem))


def test_format_checks_can_be_switched_off():
    unboxed = off("4", prompt=BOX_PROMPT)
    assert format_problem(unboxed, FormatConfig(require_boxed=False)) is None
    no_code = on("r", "Use print.", category="code")
    assert format_problem(no_code, FormatConfig(require_code_block=False)) is None


@pytest.mark.parametrize(
    ("output", "mode", "problem"),
    [
        ("<think>\nr\n</think>\n\nanswer", "on", None),
        ("answer", "off", None),
        ("answer", "on", "no_think"),
        ("<think>\nr\n</think>\n\nanswer", "off", "think_in_off_mode"),
        ("r\n</think>\n\nanswer", "on", "missing_open_think"),
        ("<think>\nnever closed", "on", "unclosed_think"),
    ],
)
def test_output_problem_for_generated_text(output, mode, problem):
    assert output_problem(output, mode) == problem
