"""Majority vote over the samples of one prompt, for math rows without gold."""

from __future__ import annotations

import pytest

from thinktoggle.filters.majority import MajorityConfig, majority_vote
from thinktoggle.filters.math_pool import MathVerifierPool


def verdicts(answers, clusters, **config):
    decision = majority_vote(answers, clusters, MajorityConfig(**config))
    return [(v.verdict, v.reason.split(":")[0]) for v in decision.verdicts], decision.answer


@pytest.mark.parametrize(
    ("answers", "clusters", "config", "expected", "chosen"),
    [
        # 3 of 4 agree: they pass, the odd one fails
        (["1", "1", "1", "2"], [[0, 1, 2], [3]], {}, [("pass", "majority")] * 3 + [("fail", "minority")], "1"),
        # exactly the minimum agreement passes (>=)
        (["1", "1", "2", "3"], [[0, 1], [2], [3]], {"min_agreement": 0.5}, None, "1"),
        # below the minimum agreement: nobody passes
        (
            ["1", "1", "2", "3"],
            [[0, 1], [2], [3]],
            {"min_agreement": 0.75},
            [("unverifiable", "no_majority")] * 4,
            None,
        ),
        # a tie is no majority
        (["1", "1", "2", "2"], [[0, 1], [2, 3]], {}, [("unverifiable", "no_majority")] * 4, None),
        # one sample cannot vote: it is unverifiable for lack of gold
        (["1"], [[0]], {}, [("unverifiable", "no_gold")], None),
        # unanswered samples count against agreement, and are unverifiable themselves
        (["1", "1", None, None, None], [[0, 1]], {}, [("unverifiable", "no_majority")] * 5, None),
        (["1", "1", "1", None], [[0, 1, 2]], {}, [("pass", "majority")] * 3 + [("unverifiable", "no_answer")], "1"),
        # an answer that did not parse is in no cluster
        (["1", "1", "@@"], [[0, 1]], {}, [("pass", "majority")] * 2 + [("unverifiable", "answer_unparsable")], "1"),
        # nothing parsed at all
        ([None, None], [], {}, [("unverifiable", "no_majority")] * 2, None),
    ],
)
def test_majority_truth_table(answers, clusters, config, expected, chosen):
    got, answer = verdicts(answers, clusters, **config)
    if expected is None:
        assert [v for v, _ in got[:2]] == ["pass", "pass"] and answer == chosen
    else:
        assert got == expected
    assert answer == chosen


def test_majority_records_the_chosen_answer_in_the_reason():
    decision = majority_vote(["\\frac12", "0.5", "3"], [[0, 1], [2]], MajorityConfig())
    assert decision.answer == "\\frac12"
    assert decision.verdicts[0].reason == "majority: 2/3 agree on \\frac12"
    assert decision.agreement == pytest.approx(2 / 3)


def test_a_timed_out_group_says_so():
    decision = majority_vote(["1", "2"], [[0], [1]], MajorityConfig(), timed_out=True)
    assert {v.reason for v in decision.verdicts} == {"timeout"}


@pytest.mark.parametrize("bad", [{"min_agreement": 0.0}, {"min_agreement": 1.5}, {"min_samples": 1}])
def test_majority_config_is_validated(bad):
    with pytest.raises(ValueError):
        MajorityConfig(**bad)


def test_equivalent_answers_cluster_together_in_the_workers():
    outputs = [
        "<think>\nhalf\n</think>\n\n\\boxed{\\frac{1}{2}}",
        "<think>\nhalf\n</think>\n\nThe final answer is 0.5",
        "\\boxed{\\frac{2}{4}}",
        "\\boxed{3}",
        "<think>\n\\boxed{1/2}\n</think>\n\nI could not decide, sorry.",  # only in the reasoning: no vote
    ]
    with MathVerifierPool(processes=1, row_timeout_s=8) as pool:
        (result,) = pool.cluster_many([outputs])
    assert result.answers[:4] == ["\\frac{1}{2}", "0.5", "\\frac{2}{4}", "3"] and result.answers[4] is None
    assert sorted(map(sorted, result.clusters)) == [[0, 1, 2], [3]]
    decision = majority_vote(result.answers, result.clusters, MajorityConfig())
    assert [v.verdict for v in decision.verdicts] == ["pass", "pass", "pass", "fail", "unverifiable"]
