"""Truth table of the think-block conventions: split_output, compose_output, ThinkSplit.problem."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinktoggle.schemas.think import (
    SYSTEM_PROMPT_OFF,
    SYSTEM_PROMPT_ON,
    compose_output,
    final_answer,
    split_output,
    system_prompt_for,
)

# output -> (reasoning, answer, problem in "on" mode, problem in "off" mode)
TABLE = [
    # well formed
    ("<think>\nr\n</think>\n\n42", "r", "42", None, "think_in_off_mode"),
    ("  <think>r</think> 42 ", "r", "42", None, "think_in_off_mode"),  # surrounding whitespace is not content
    (
        "<think>\nline 1\nline 2\n</think>\n\nanswer\n\nmore",
        "line 1\nline 2",
        "answer\n\nmore",
        None,
        "think_in_off_mode",
    ),
    ("42", None, "42", "no_think", None),
    ("  a plain answer\n", None, "a plain answer", "no_think", None),
    # empty pieces
    ("", None, "", "no_think", "empty_answer"),
    ("   \n", None, "", "no_think", "empty_answer"),
    ("<think></think>42", "", "42", "empty_think", "think_in_off_mode"),
    ("<think>\n \n</think>\n\n42", "", "42", "empty_think", "think_in_off_mode"),
    ("<think>r</think>", "r", "", "empty_answer", "think_in_off_mode"),
    ("<think>r</think>\n\n  ", "r", "", "empty_answer", "think_in_off_mode"),
    # unclosed: everything is reasoning, there is no answer
    ("<think>r", None, "", "unclosed_think", "think_in_off_mode"),
    ("<think>r and more reasoning that ran out of tokens", None, "", "unclosed_think", "think_in_off_mode"),
    ("<think><think>r</think>a", "<think>r", "a", "unclosed_think", "think_in_off_mode"),
    # multiple blocks: only the first counts, and the output is flagged
    ("<think>a</think>b<think>c</think>d", "a", "b<think>c</think>d", "multiple_think", "think_in_off_mode"),
    ("<think>r</think>a</think>", "r", "a</think>", "multiple_think", "think_in_off_mode"),
    # missing opening tag (a prefilled `<think>` not put back): split for repair, flagged as malformed
    ("r</think>42", "r", "42", "missing_open_think", "think_in_off_mode"),
    ("</think>42", "", "42", "missing_open_think", "think_in_off_mode"),
    ("x</think>y</think>z", "x", "y</think>z", "missing_open_think", "think_in_off_mode"),
    # a think block that does not open the output
    ("pre<think>r</think>42", None, "42", "think_not_at_start", "think_in_off_mode"),
    ("pre<think>r</think>4<think>2", None, "42", "unclosed_think", "think_in_off_mode"),
    ("</think><think>", None, "", "think_not_at_start", "think_in_off_mode"),
]


@pytest.mark.parametrize(("output", "reasoning", "answer", "on", "off"), TABLE, ids=[repr(t[0])[:40] for t in TABLE])
def test_split_output(output, reasoning, answer, on, off):
    split = split_output(output)
    assert (split.reasoning, split.answer) == (reasoning, answer)
    assert split.opens == output.count("<think>") and split.closes == output.count("</think>")
    assert split.problem("on") == on
    assert split.problem("off") == off
    assert final_answer(output) == answer


@pytest.mark.parametrize(
    ("reasoning", "answer", "output"),
    [
        ("r", "42", "<think>\nr\n</think>\n\n42"),
        ("  r \n", "\n 42 ", "<think>\nr\n</think>\n\n42"),  # pieces are stripped, the frame is fixed
        ("", "42", "<think>\n\n</think>\n\n42"),  # composable, but flagged as empty_think by split
        (None, "42", "42"),
        (None, " 42 ", " 42 "),  # off: the answer as it is
    ],
)
def test_compose_output(reasoning, answer, output):
    assert compose_output(reasoning, answer) == output


def test_a_missing_opening_tag_is_repaired_by_composing():
    split = split_output("step 1\nstep 2\n</think>\n\n42")
    repaired = compose_output(split.reasoning, split.answer)
    assert repaired == "<think>\nstep 1\nstep 2\n</think>\n\n42"
    assert split_output(repaired).problem("on") is None


_PIECE = st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=30).filter(lambda s: s.strip())


@settings(deadline=None)
@given(_PIECE, _PIECE)
def test_compose_then_split_gives_back_the_stripped_pieces(reasoning, answer):
    split = split_output(compose_output(reasoning, answer))
    assert (split.reasoning, split.answer) == (reasoning.strip(), answer.strip())
    assert split.problem("on") is None and split.problem("off") == "think_in_off_mode"


def test_system_prompts():
    assert system_prompt_for("on") == SYSTEM_PROMPT_ON == "detailed thinking on"
    assert system_prompt_for("off") == SYSTEM_PROMPT_OFF == "detailed thinking off"
    with pytest.raises(ValueError, match="'maybe'"):
        system_prompt_for("maybe")


def test_a_budget_cut_excuses_only_the_empty_think_block():
    empty = split_output("<think></think>\n\n\\boxed{3}")
    assert empty.problem("on") == "empty_think" and empty.problem("on", think_cut=True) is None
    assert split_output("<think></think>").problem("on", think_cut=True) == "empty_answer"
    assert split_output("<think>a").problem("on", think_cut=True) == "unclosed_think"
    assert split_output("\\boxed{3}").problem("on", think_cut=True) == "no_think"
