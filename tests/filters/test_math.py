"""Math verdicts, Math-Verify style: truth tables over (model output, gold) in a real worker pool."""

from __future__ import annotations

import time

import pytest

from thinktoggle.filters.math import (
    answer_of_output,
    extract_answer,
    judge_answer,
    last_boxed,
    verify_math,
    verify_math_many,
)
from thinktoggle.filters.math_pool import MathVerifierPool

FRAC_300 = "1"
for _ in range(300):
    FRAC_300 = "\\frac{1}{1+" + FRAC_300 + "}"
DIGITS_5000 = "7" * 5000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{42}.", "42"),
        ("\\boxed{1} then \\boxed{2}", "2"),  # the last box counts
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces are literal
        ("\\fbox{7}", "7"),
        ("\\boxed{3} and a truncated \\boxed{4", "3"),  # an unbalanced box is not an answer
        ("The final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
        ("**Final Answer:** 12", "12"),
        ("Answer: x = 2", "x = 2"),
        ("Therefore, the answer is 9.", "9"),
        ("Final answer:\n$5$", "5"),
        ("42", "42"),  # a final answer that is one short expression
        ("$\\sqrt{2}$", "\\sqrt{2}"),
        ("I think it is probably forty two", None),  # prose, no stated answer
        ("", None),
        ("\\boxed{}", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_last_boxed_is_linear_on_a_long_output():
    text = "\\boxed{" * 20_000 + "x"
    started = time.monotonic()
    assert last_boxed(text) is None
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("<think>\nso \\boxed{3}\n</think>\n\nDone, see above for the work.", None),  # reasoning only
        ("<think>\nthe answer is 3\n</think>\n\n\\boxed{4}", "4"),  # the final answer wins
        ("<think>\n\\boxed{3}", None),  # unclosed think: everything is reasoning
        ("<think>\n\\boxed{3}\n</think>\n\n", None),  # empty final answer
        ("\\boxed{5}", "5"),  # off row
    ],
)
def test_answer_comes_from_the_final_answer_only(output, expected):
    assert answer_of_output(output) == expected


# (output, gold, verdict, reason)
TRUTH_TABLE = [
    # equivalent forms pass
    ("\\boxed{\\frac{1}{2}}", "0.5", "pass", ""),
    ("\\boxed{0.5}", "\\frac12", "pass", ""),
    ("The final answer is $2\\sqrt{3}$.", "\\sqrt{12}", "pass", ""),
    ("\\boxed{x^2+2x+1}", "(x+1)^2", "pass", ""),
    ("\\boxed{\\{1,2\\}}", "\\{2,1\\}", "pass", ""),
    ("Answer: 10\\%", "0.1", "pass", ""),
    ("**Final Answer:** $\\dfrac{3}{4}$", "0.75", "pass", ""),
    ("\\boxed{x = 2}", "2", "pass", ""),
    ("\\boxed{[0, 1)}", "[0,1)", "pass", ""),
    ("\\boxed{3}", "$3$", "pass", ""),
    ("\\boxed{3}", "\\boxed{3}", "pass", ""),
    ("<think>\nlet me work: 6/2\n</think>\n\n\\boxed{3}", "3", "pass", ""),
    ("Answer: 007", "7", "pass", ""),  # plain integers: the exact fast path
    ("\\boxed{-12}", "$-12$", "pass", ""),
    ("\\boxed{12.0}", "12", "pass", ""),  # not a plain integer: math-verify decides
    # wrong answers fail
    ("\\boxed{12345678901234567890}", "12345678901234567891", "fail", "wrong_answer"),  # exact, not 15 digits
    ("\\boxed{3}", "4", "fail", "wrong_answer"),
    ("\\boxed{x+1}", "x+2", "fail", "wrong_answer"),
    ("\\boxed{0.33}", "\\frac{1}{3}", "fail", "wrong_answer"),
    ("\\boxed{(1,2)}", "(1,3)", "fail", "wrong_answer"),
    ("<think>\n\\boxed{3}\n</think>\n\n\\boxed{4}", "3", "fail", "wrong_answer"),  # right only in reasoning
    # unverifiable, with the reason
    ("\\boxed{1}", None, "unverifiable", "no_gold"),
    ("\\boxed{1}", "   ", "unverifiable", "no_gold"),
    ("\\boxed{5}", "\\frac{", "unverifiable", "gold_unparsable"),
    ("<think>\n\\boxed{3}\n</think>\n\nDone, see above for the work.", "3", "unverifiable", "no_answer"),
    ("<think>\n\\boxed{3}", "3", "unverifiable", "no_answer"),
    ("I think it is probably three", "3", "unverifiable", "no_answer"),
    ("\\boxed{@@}", "3", "unverifiable", "answer_unparsable"),
    # the traps: none may pass by accident or hang
    (f"\\boxed{{{DIGITS_5000}}}", DIGITS_5000, "unverifiable", "gold_unparsable"),  # int-string limit
    (f"\\boxed{{{DIGITS_5000}}}", "7", "unverifiable", "answer_unparsable"),
    ("\\boxed{9^{387420489}}", "9^{9^9}", "unverifiable", "timeout"),
    (f"\\boxed{{{FRAC_300}}}", FRAC_300, "unverifiable", None),  # gold_unparsable or timeout: never pass
]


@pytest.fixture(scope="module")
def pool():
    with MathVerifierPool(processes=2, row_timeout_s=8.0) as pool:
        yield pool


@pytest.fixture(scope="module")
def truth_table_outcomes(pool):
    started = time.monotonic()
    outcomes = pool.verify_many([(out, gold) for out, gold, _, _ in TRUTH_TABLE])
    return outcomes, time.monotonic() - started


@pytest.mark.parametrize(("index", "row"), list(enumerate(TRUTH_TABLE)), ids=[str(i) for i in range(len(TRUTH_TABLE))])
def test_math_truth_table(truth_table_outcomes, index, row):
    outcomes, _ = truth_table_outcomes
    output, gold, verdict, reason = row
    outcome = outcomes[index]
    assert outcome.verdict == verdict, (output[:60], gold and gold[:60], outcome)
    if reason is not None:
        assert outcome.reason == reason


def test_truth_table_is_bounded(truth_table_outcomes):
    _, seconds = truth_table_outcomes
    # ~32 rows on 2 workers, three of them traps bounded by 8 s each (2 s inner timeouts in practice).
    assert seconds < 40


def test_a_stuck_worker_is_killed_and_replaced():
    """A row past its wall-clock budget: the worker is SIGKILLed, the row times out, the pool goes on."""
    with MathVerifierPool(processes=1, row_timeout_s=0.5) as pool:
        pool.verify_many([("\\boxed{1}", "1")])  # warm: the budget covers the row, not the start-up
        started = time.monotonic()
        stuck, after = pool.verify_many([(f"\\boxed{{{FRAC_300}}}", FRAC_300), ("\\boxed{2}", "2")])
        assert time.monotonic() - started < 10
        assert (stuck.verdict, stuck.reason) == ("unverifiable", "timeout")
        assert pool.kills == 1
        assert after.verdict == "pass"  # the replacement worker judged the next row


def test_worker_that_cannot_start_is_a_clear_error():
    with MathVerifierPool(processes=1, memory_mb=20) as pool, pytest.raises(RuntimeError, match="die on startup"):
        pool.verify_many([("\\boxed{1}", "1")])


def test_gold_is_math_verifys_first_argument(monkeypatch):
    """open-r1 #557: verify(gold, prediction) is not symmetric; gold must come first."""
    import math_verify

    calls = []
    real_verify = math_verify.verify

    def spy(gold, target, **kwargs):
        calls.append((gold, target))
        return real_verify(gold, target, **kwargs)

    monkeypatch.setattr(math_verify, "verify", spy)
    outcome = judge_answer("\\frac{1}{4}", "0.25", timeout_s=2)  # gold "\frac14", prediction "0.25"
    assert outcome.verdict == "pass"
    gold, target = calls[0]
    assert str(gold) == "1/4" and float(target) == 0.25
    calls.clear()
    judge_answer("x", "y", timeout_s=2)
    assert [(str(g), str(t)) for g, t in calls] == [("x", "y")]


def test_verify_math_api():
    verdict = verify_math("<think>\n2+2\n</think>\n\n\\boxed{4}", "4", timeout_s=10)
    assert (verdict.filter, verdict.verdict) == ("math", "pass")
    many = verify_math_many([("\\boxed{5}", "4"), ("\\boxed{4}", "4"), ("\\boxed{4}", None)], processes=2)
    assert [(v.verdict, v.reason) for v in many] == [
        ("fail", "wrong_answer"),
        ("pass", ""),
        ("unverifiable", "no_gold"),
    ]
