"""Multiple-choice answers: the letter a model chose, read from its final answer only, and whether it is right.

The final answer is the text after `</think>` (an unclosed think has none), as for math. The letter is, by
precedence (the first rule that finds one wins, and within a rule the LAST occurrence, as a model that corrects
itself states its final choice last):
  1. `\\boxed{B}` (also `\\boxed{\\text{B}}`, `\\boxed{(B)}`, `\\boxed{B) 42}`);
  2. a stated answer: `Answer: B`, `The answer is (B)`, `**Answer:** B`, `correct option is B`;
  3. `(B)` or `**B**`;
  4. the last letter standing alone (`B`, `B.`, `B)`), never a letter inside a word ("Because") or the
     article "A" in a sentence unless it ends the answer.
Only letters among the choices count (A-D unless the prompt offered more). A missing or unreadable letter is
"no_answer"; a wrong one is "wrong_answer": neither is ever correct.
"""

from __future__ import annotations

import re

from thinktoggle.filters.math import last_boxed
from thinktoggle.schemas.record import Verdict
from thinktoggle.schemas.think import final_answer

FILTER_NAME = "choice"
DEFAULT_LETTERS = "ABCD"
NO_ANSWER = "no_answer"
WRONG_ANSWER = "wrong_answer"
BAD_GOLD = "gold_not_a_letter"

_BOX_INNER = re.compile(r"^\s*(?:\\text\{|\\mathrm\{|\\textbf\{)?\s*\(?\s*([A-Za-z])\s*[)}.:]?(?:\s|\}|$)")
_STATED = re.compile(
    r"(?i)\b(?:final\s+answer|answer|correct\s+(?:option|choice|answer)|option|choice)\b"
    r"[ \t*]*(?:is|:|=)?[ \t*:]*\(?\s*\**([A-Za-z])\**\s*\)?(?![A-Za-z])"
)
_MARKED = re.compile(r"\(([A-Za-z])\)|\*\*([A-Za-z])\*\*")
_ALONE = re.compile(r"(?<![A-Za-z0-9_\\])([A-Za-z])(?=[ \t]*[.):]?[ \t]*(?:$|\n))", re.MULTILINE)
_BARE = re.compile(r"(?<![A-Za-z0-9_\\])([A-Za-z])(?![A-Za-z0-9_])")


def choice_letters(count: int) -> str:
    """The letters of `count` choices: A, B, C, ..."""
    if not 2 <= count <= 26:
        raise ValueError(f"a multiple-choice question needs 2 to 26 choices, got {count}")
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:count]


def extract_choice(text: str, letters: str = DEFAULT_LETTERS) -> str | None:
    """The chosen letter (upper case) of a final-answer text, or None when it states none of `letters`."""
    valid = set(letters.upper())

    def ok(letter: str | None) -> str | None:
        return letter.upper() if letter and letter.upper() in valid else None

    boxed = last_boxed(text)
    if boxed is not None:
        match = _BOX_INNER.match(boxed)
        return ok(match.group(1)) if match else None  # a box is the answer: an unreadable box is no answer
    for rule in (_STATED, _MARKED):
        found = [next(g for g in m.groups() if g) for m in rule.finditer(text)]
        found = [f for f in found if ok(f)]
        if found:
            return ok(found[-1])
    stripped = text.strip()
    if len(stripped) <= 3 and (match := _BARE.search(stripped)):  # "B", "B.", "(B" : the whole answer
        return ok(match.group(1))
    alone = [m.group(1) for m in _ALONE.finditer(text) if m.group(1).isupper() and ok(m.group(1))]
    return alone[-1].upper() if alone else None


def choice_of_output(output: str, letters: str = DEFAULT_LETTERS) -> str | None:
    """The letter a model output chose in its final answer (never from inside the reasoning)."""
    return extract_choice(final_answer(output), letters)


def judge_choice(output: str, gold: str | None, letters: str = DEFAULT_LETTERS) -> tuple[Verdict, str | None]:
    """(verdict, chosen letter): pass when the final answer's letter is the gold letter."""
    gold_letter = (gold or "").strip().strip("()").upper()
    if len(gold_letter) != 1 or gold_letter not in letters.upper():
        return Verdict(FILTER_NAME, "unverifiable", BAD_GOLD), None
    chosen = choice_of_output(output, letters)
    if chosen is None:
        return Verdict(FILTER_NAME, "unverifiable", NO_ANSWER), None
    if chosen != gold_letter:
        return Verdict(FILTER_NAME, "fail", WRONG_ANSWER), chosen
    return Verdict(FILTER_NAME, "pass"), chosen
