"""Math answers: find the final answer of an output, and compare it with the gold answer by math-verify.

Only the *final answer* counts (the text after `</think>` on on rows; an unclosed think has none): its last
balanced `\\boxed{…}`, else a clearly stated final answer ("The final answer is X", "Answer: X"), else the
whole final answer when it is one short expression. An answer that appears only inside the reasoning does
not count.

Comparison follows math-verify's contract: `parse(gold)` first, then `parse(prediction)`, then
`verify(gold, prediction)` — the function is not symmetric (open-r1 #557). A gold that does not parse to a
math object never passes (open-r1 #293): math-verify's string fallback would otherwise let two identical
unparsable strings "match".

`judge_math` runs in the calling process and relies on math-verify's SIGALRM timeouts, which only work in
the main thread and cannot interrupt long C-level arithmetic (`9^{9^9}`). The stage therefore runs it in
`thinktoggle.filters.math_pool` worker processes that the parent kills on overrun; `verify_math` is the
one-call API for scripts and the trainer's validation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import product

from thinktoggle.schemas.record import Verdict
from thinktoggle.schemas.think import final_answer

FILTER_NAME = "math"
BOX_COMMANDS = ("\\boxed", "\\fbox")

# Verdict reasons (stable identifiers; see docs of the filter stage).
NO_GOLD = "no_gold"
GOLD_UNPARSABLE = "gold_unparsable"
NO_ANSWER = "no_answer"
ANSWER_UNPARSABLE = "answer_unparsable"
TIMEOUT = "timeout"
WRONG_ANSWER = "wrong_answer"

# "The final answer is X", "Final Answer: X", "**Answer:** X", "answer = X"; X runs to the end of its line.
_STATED = re.compile(
    r"(?i)\b(?:final\s+answer|answer)\b[ \t*]*(?:is|:|=)[ \t*:]*\n?[ \t]*(?P<x>[^\n]+)",
)
_PLAIN_INTEGER = re.compile(r"[+-]?\d{1,4300}")
_PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")  # two words in a row: a sentence, not an expression
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")


def last_boxed(text: str) -> str | None:
    """The content of the last complete `\\boxed{…}` (or `\\fbox{…}`) in `text`, braces balanced.

    One pass over the text (outputs are untrusted: a run of unclosed boxes must not cost quadratic time).
    """
    opens = [m.end() for cmd in BOX_COMMANDS for m in re.finditer(re.escape(cmd) + r"\s*\{", text)]
    if not opens:
        return None
    closing = _matching_braces(text)
    for content_start in sorted(opens, reverse=True):
        close = closing.get(content_start - 1)
        if close is not None:
            return text[content_start:close]
    return None


def _matching_braces(text: str) -> dict[int, int]:
    """Position of each `{` -> position of the `}` that closes it; escaped braces (`\\{`, `\\}`) are literal."""
    matches: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            matches[stack.pop()] = i
        i += 1
    return matches


def _clean(answer: str) -> str:
    answer = answer.strip().strip("*").strip().rstrip(".").strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(left) and answer.endswith(right) and len(answer) >= len(left) + len(right):
            answer = answer[len(left) : len(answer) - len(right)].strip()
    return answer.rstrip(".").strip()


def extract_answer(final: str) -> str | None:
    """The answer stated in a final-answer text, or None when it states none."""
    boxed = last_boxed(final)
    if boxed is not None:
        return boxed.strip() or None
    stated = None
    for match in _STATED.finditer(final):
        stated = match.group("x")
    if stated is not None:
        return _clean(stated) or None
    lines = [line for line in final.strip().splitlines() if line.strip()]
    if len(lines) == 1 and len(lines[0]) <= 64:
        candidate = _clean(lines[0])
        if candidate and not _PROSE.search(_LATEX_COMMAND.sub(" ", candidate)):
            return candidate
    return None


def answer_of_output(output: str) -> str | None:
    """The final answer of a model output (published form): never taken from inside the reasoning."""
    return extract_answer(final_answer(output))


def as_latex_box(answer: str) -> str:
    """The text handed to math-verify's parser: the answer boxed, so the boxed extractor takes all of it."""
    return answer if any(cmd in answer for cmd in BOX_COMMANDS) else f"\\boxed{{{answer}}}"


@dataclass(frozen=True, slots=True)
class MathOutcome:
    """The result of comparing one answer with one gold: a verdict and the extracted answer."""

    verdict: str  # pass | fail | unverifiable | error
    reason: str = ""
    answer: str | None = None

    def to_verdict(self) -> Verdict:
        return Verdict(FILTER_NAME, self.verdict, self.reason)


def parse_math(text: str, timeout_s: int):
    """math-verify's parse of a (boxed) answer: (parsed math objects, timed out). Strings never count."""
    from math_verify import parse
    from math_verify.errors import TimeoutException

    try:
        parsed = parse(as_latex_box(text), fallback_mode="no_fallback", parsing_timeout=timeout_s, raise_on_error=True)
    except TimeoutException:
        return [], True
    except Exception:  # noqa: BLE001 - math-verify raises anything sympy raises; it means "does not parse"
        return [], False
    return [p for p in parsed if not isinstance(p, str)], False


def equivalent(gold: list, pred: list, timeout_s: int) -> tuple[bool, bool]:
    """(any gold/pred pair verifies, some comparison timed out). Gold is always math-verify's first argument."""
    from math_verify import verify
    from math_verify.errors import TimeoutException

    timed_out = False
    for g, p in product(gold, pred):
        try:
            if verify(g, p, timeout_seconds=timeout_s, raise_on_error=True):
                return True, timed_out
        except TimeoutException:
            timed_out = True
        except Exception:  # noqa: BLE001 - an error in one comparison means "not shown equal"
            continue
    return False, timed_out


def plain_integer(text: str) -> int | None:
    """The value of a bare integer answer ("42", "$-7$"), else None. Longer than Python's int-string limit
    (4300 digits) is not an integer here: it goes to math-verify, which cannot parse it either."""
    stripped = text.strip().strip("$").strip()
    return int(stripped) if _PLAIN_INTEGER.fullmatch(stripped) else None


def judge_answer(gold: str | None, answer: str | None, timeout_s: int = 3) -> MathOutcome:
    """Compare an extracted answer with the gold answer (in this process, main thread only)."""
    if gold is None or not gold.strip():
        return MathOutcome("unverifiable", NO_GOLD, answer)
    if answer is not None and (gold_int := plain_integer(gold)) is not None:
        # Fast path for the commonest gold (an integer): exact, and ~100x cheaper than a LaTeX parse.
        answer_int = plain_integer(answer)
        if answer_int is not None:
            return (
                MathOutcome("pass", "", answer) if answer_int == gold_int else MathOutcome("fail", WRONG_ANSWER, answer)
            )
    gold_parsed, gold_timeout = parse_math(gold, timeout_s)
    if not gold_parsed:
        return MathOutcome("unverifiable", TIMEOUT if gold_timeout else GOLD_UNPARSABLE, answer)
    if answer is None:
        return MathOutcome("unverifiable", NO_ANSWER, answer)
    pred_parsed, pred_timeout = parse_math(answer, timeout_s)
    if not pred_parsed:
        return MathOutcome("unverifiable", TIMEOUT if pred_timeout else ANSWER_UNPARSABLE, answer)
    same, timed_out = equivalent(gold_parsed, pred_parsed, timeout_s)
    if same:
        return MathOutcome("pass", "", answer)
    return MathOutcome("unverifiable", TIMEOUT, answer) if timed_out else MathOutcome("fail", WRONG_ANSWER, answer)


def judge_math(output: str, gold: str | None, timeout_s: int = 3) -> MathOutcome:
    """Extract the final answer of `output` and compare it with `gold` (in this process, main thread only)."""
    return judge_answer(gold, answer_of_output(output), timeout_s)


def verify_math(output: str, expected: str | None, timeout_s: float = 10.0) -> Verdict:
    """Score one model output against its expected answer, bounded: the trainer's validation calls this.

    Runs in a short-lived worker process that is killed after `timeout_s`, so it is safe from any thread
    and never hangs. For many outputs, use `MathVerifierPool.verify_many` (one pool, warm workers).
    """
    from thinktoggle.filters.math_pool import MathVerifierPool

    with MathVerifierPool(processes=1, row_timeout_s=timeout_s) as pool:
        return pool.verify_many([(output, expected)])[0].to_verdict()


def verify_math_many(pairs: list[tuple[str, str | None]], timeout_s: float = 10.0, processes: int = 1) -> list[Verdict]:
    """`verify_math` for many (output, expected) pairs on one pool of warm workers (start-up paid once)."""
    from thinktoggle.filters.math_pool import MathVerifierPool

    with MathVerifierPool(processes=processes, row_timeout_s=timeout_s) as pool:
        return [outcome.to_verdict() for outcome in pool.verify_many(pairs)]
