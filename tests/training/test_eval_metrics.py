"""Evaluation metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from thinktoggle.training.eval_metrics import Sample, majority_correct, pass_at_k, spread, summarize

# (n, c, k, 1 - C(n-c, k) / C(n, k) worked out by hand)
HAND = [
    (5, 2, 1, 2 / 5),
    (5, 2, 2, 1 - 3 / 10),  # C(3,2)=3, C(5,2)=10
    (5, 2, 4, 1.0),  # n - c < k: some correct sample is always drawn
    (10, 3, 5, 1 - 21 / 252),  # C(7,5)=21, C(10,5)=252
    (6, 1, 3, 1 - 10 / 20),  # C(5,3)=10, C(6,3)=20
    (4, 0, 2, 0.0),
    (3, 3, 1, 1.0),
    (1, 1, 1, 1.0),
]


@pytest.mark.parametrize(("n", "c", "k", "expected"), HAND)
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_refuses_impossible_counts():
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)


def s(correct, answer, compliant=True, r=0, a=0):
    return Sample(correct, answer, compliant, r, a)


def test_majority_vote_ties_go_to_the_first_answer_seen_and_missing_answers_do_not_vote():
    assert majority_correct([s(False, "3"), s(True, "4"), s(True, "4")])
    assert not majority_correct([s(False, "3"), s(True, "4")])  # tie: "3" came first
    assert majority_correct([s(False, None), s(False, None), s(True, "4")])
    assert not majority_correct([s(False, None)])


def test_summary_of_two_prompts_three_samples():
    by_prompt = [
        [s(True, "4", r=10, a=2), s(False, "5", r=20, a=2), s(True, "4", r=30, a=2)],  # c=2
        [s(False, None, False, 0, 0), s(False, "7", r=40, a=4), s(False, "7", r=50, a=4)],  # c=0
    ]
    m = summarize(by_prompt)
    assert (m["n_prompts"], m["n_samples"]) == (2, 3)
    assert m["pass@1"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["pass@k"]["1"] == pytest.approx(m["pass@1"])
    assert m["pass@k"]["2"] == pytest.approx((1 - 0 / 3) / 2)  # C(1,2)=0: prompt 1 always passes with 2 draws
    assert m["pass@k"]["3"] == pytest.approx(0.5)
    assert m["maj@k"] == {"1": pytest.approx(0.5), "2": pytest.approx(0.5), "3": pytest.approx(0.5)}
    assert m["no_answer"] == pytest.approx(1 / 6) and m["compliance"] == pytest.approx(5 / 6)
    # runs: sample 0 of each prompt 1/2, sample 1: 0, sample 2: 1/2 -> stdev 0.2887, / sqrt(3)
    assert m["stderr"] == pytest.approx(math.sqrt(1 / 12) / math.sqrt(3))
    assert m["reasoning_tokens"] == {"mean": 25.0, "median": 25.0, "p95": 50.0}
    assert summarize(by_prompt, vote=False)["maj@k"] is None
    assert summarize([[s(True, "1")], [s(False, "2")]])["stderr"] is None  # one sample: no spread across runs


def test_spread_and_uneven_samples():
    assert spread(list(range(1, 101))) == {"mean": 50.5, "median": 50.5, "p95": 95.0}
    assert spread([]) == {"mean": 0.0, "median": 0.0, "p95": 0.0}
    with pytest.raises(ValueError, match="same number of samples"):
        summarize([[s(True, "1")], [s(True, "1"), s(True, "1")]])
