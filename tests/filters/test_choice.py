"""The multiple-choice scorer's truth table: which letter a final answer chose, and whether it is correct."""

from __future__ import annotations

import pytest

from thinktoggle.filters.choice import choice_letters, choice_of_output, extract_choice, judge_choice

# (final answer text, letters offered, letter extracted)
EXTRACTION = [
    ("\\boxed{B}", "ABCD", "B"),
    ("\\boxed{\\text{C}}", "ABCD", "C"),
    ("\\boxed{(D)}", "ABCD", "D"),
    ("\\boxed{b}", "ABCD", "B"),
    ("\\boxed{B) 42}", "ABCD", "B"),
    ("Answer: B", "ABCD", "B"),
    ("**Answer:** C", "ABCD", "C"),
    ("The answer is (A).", "ABCD", "A"),
    ("The correct option is D", "ABCD", "D"),
    ("Final answer: c", "ABCD", "C"),
    ("I choose (C) over (A)... no, (B)", "ABCD", "B"),  # the last marked letter
    ("**D**", "ABCD", "D"),
    ("B", "ABCD", "B"),
    ("B.", "ABCD", "B"),
    ("So it must be C.", "ABCD", "C"),  # the last letter standing alone
    ("A first guess was wrong.\nD", "ABCD", "D"),  # the article A is not a choice
    ("Answer: B\nThe answer is \\boxed{C}", "ABCD", "C"),  # a box wins over a stated answer
    ("Because of this, I am sure.", "ABCD", None),  # letters inside words never count
    ("I am not sure.", "ABCD", None),
    ("", "ABCD", None),
    ("\\boxed{42}", "ABCD", None),  # a boxed number is no letter
    ("Answer: E", "ABCD", None),  # not a choice offered
    ("Answer: E", "ABCDE", "E"),
    ("\\boxed{}", "ABCD", None),
]


@pytest.mark.parametrize(("text", "letters", "letter"), EXTRACTION)
def test_extraction_truth_table(text, letters, letter):
    assert extract_choice(text, letters) == letter


# (mode output, gold, verdict, reason)
JUDGED = [
    ("<think>\n2+2=4, option B\n</think>\n\n\\boxed{B}", "B", "pass", ""),
    ("<think>\n2+2=4, option B\n</think>\n\n\\boxed{C}", "B", "fail", "wrong_answer"),
    (
        "<think>\nthe answer is \\boxed{B}\n</think>\n\nI do not know.",
        "B",
        "unverifiable",
        "no_answer",
    ),  # only in reasoning
    ("<think>\n\\boxed{B}", "B", "unverifiable", "no_answer"),  # unclosed think: no final answer
    ("\\boxed{B}", "(B)", "pass", ""),
    ("\\boxed{B}", "", "unverifiable", "gold_not_a_letter"),
    ("\\boxed{B}", "42", "unverifiable", "gold_not_a_letter"),
]


@pytest.mark.parametrize(("output", "gold", "verdict", "reason"), JUDGED)
def test_judged_only_on_the_final_answer(output, gold, verdict, reason):
    judged, _ = judge_choice(output, gold)
    assert (judged.filter, judged.verdict, judged.reason) == ("choice", verdict, reason)


def test_letters_and_output_reading():
    assert choice_letters(4) == "ABCD" and choice_letters(2) == "AB"
    with pytest.raises(ValueError, match="2 to 26 choices"):
        choice_letters(1)
    assert choice_of_output("<think>\nA\n</think>\n\nD") == "D"
