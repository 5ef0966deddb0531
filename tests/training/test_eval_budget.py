"""Budget curves in the evaluation: levels, the curve's points from scored answers, the report's shape."""

from __future__ import annotations

import pytest

from thinktoggle.training.eval_budget import (
    BudgetLevel,
    budget_curves,
    check_levels,
    curve_point,
    format_curves,
    median_thinking,
    resolve_levels,
)
from thinktoggle.training.validate import ValidateConfig


@pytest.mark.parametrize(
    ("levels", "median", "expected"),
    [
        (["0", "25%", "50%", "75%", "100%"], 20, [0, 5, 10, 15, 20]),
        (["100%", "0"], 20, [0, 20]),  # sorted by budget
        (["50%"], 7, [4]),  # rounded to a token (3.5 -> 4, Python's round-half-even)
        (["64", "10%"], 1000, [64, 100]),  # tokens and shares mix
        (["50%"], 0, [0]),  # a model that never thought: every share is 0
        (["150%"], 10, [15]),
    ],
)
def test_levels_resolve_against_the_median_trace(levels, median, expected):
    assert [level.budget for level in resolve_levels(levels, median)] == expected


@pytest.mark.parametrize("bad", ["-1", "x", "50 %%", "-5%", "", "1.5"])
def test_a_bad_level_is_named(bad):
    with pytest.raises(ValueError, match="budgets: .* is not a token count"):
        check_levels([bad])


def test_config_checks_its_budgets():
    assert ValidateConfig(budgets=("0", "50%")).budgets == ("0", "50%")
    with pytest.raises(ValueError, match="budgets: 'half'"):
        ValidateConfig(budgets=("half",))
    with pytest.raises(ValueError, match="needs the on mode"):
        ValidateConfig(budgets=("50%",), modes=("off",))
    config = ValidateConfig(budgets=("50%",), budget_samples=2)
    assert config.budgeted(7).thinking_budget == 7 and config.budgeted(7).n == 2
    assert ValidateConfig(budgets=("50%",)).budgeted(3).n == ValidateConfig().sampling_on.n


def answer(benchmark, pair, mode, correct, thinking, budget=None, tokens_budget=None, cut=False, compliant=True):
    return {
        "benchmark": benchmark, "pair_id": pair, "mode": mode, "correct": correct, "compliant": compliant,
        "thinking_tokens": thinking, "budget": budget, "thinking_budget": tokens_budget, "think_cut": cut,
    }  # fmt: skip


def test_median_reads_only_unlimited_on_answers():
    answers = [
        answer("a", "p1", "on", True, 10),
        answer("a", "p2", "on", True, 30),
        answer("a", "p3", "on", True, 20),
        answer("a", "p1", "on", False, 2, budget="10%", tokens_budget=2),  # budgeted: not the trace's length
        answer("a", "p1", "off", False, None),
        answer("b", "p9", "on", True, 4),
    ]
    assert median_thinking(answers) == {"a": 20.0, "b": 4.0}


def test_a_point_averages_per_prompt_and_counts_adherence_with_the_grace():
    answers = [  # budget 10, grace 0.1: at most 11 thinking tokens
        answer("a", "p1", "on", True, 11, "10", 10, cut=True),
        answer("a", "p1", "on", False, 12, "10", 10, cut=True),  # over: 12 > 11
        answer("a", "p2", "on", True, 4, "10", 10),
        answer("a", "p2", "on", True, 6, "10", 10, compliant=False),
    ]
    point = curve_point("10", 10, answers, grace=0.1)
    assert point["pass@1"] == pytest.approx((0.5 + 1.0) / 2)
    assert point["within_budget"] == pytest.approx(0.75)
    assert point["cut"] == pytest.approx(0.5) and point["compliance"] == pytest.approx(0.75)
    assert point["thinking_tokens"] == pytest.approx(33 / 4)
    assert curve_point("0", 0, [answer("a", "p", "on", False, 1, "0", 0)], grace=0.1)["within_budget"] == 0.0


def test_curves_run_from_off_through_the_budgets_to_unlimited():
    answers = [
        answer("a", "p1", "off", False, None),
        answer("a", "p1", "on", True, 20),
        answer("a", "p1", "on", True, 18, "100%", 20),
        answer("a", "p1", "on", False, 0, "0", 0, cut=True),
        answer("a", "p1", "on", False, 10, "50%", 10, cut=True),
        answer("b", "p2", "on", True, 5),  # no budgeted answers: no curve
    ]
    curves = budget_curves(answers, grace=0.1)
    assert list(curves) == ["a"]
    points = curves["a"]
    assert [p["label"] for p in points] == ["off", "0", "50%", "100%", "unlimited"]
    assert [p["budget"] for p in points] == [None, 0, 10, 20, None]
    assert [p["pass@1"] for p in points] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert points[0]["within_budget"] is None and points[1]["within_budget"] == 1.0
    table = format_curves(curves)
    assert "a: thinking budget curve" in table and "unlimited" in table


def test_budget_level_is_a_value():
    assert resolve_levels(["1"], 0) == [BudgetLevel("1", 1)]


def test_evaluation_draws_the_curve_on_the_real_engine(thinking_vllm_engine, thinking_model_dir, tmp_path):
    """validate with budgets on vLLM and its logits processor: the levels resolve against the median unlimited
    trace, every budgeted trace keeps to its budget, and report + plot carry the curve. The model is untrained
    (it opens the block in its template and rarely closes it), so accuracy is not what is checked here; the
    demo measures the curve of a trained model (docs/BENCHMARKS.md)."""
    from thinktoggle.generators.engines.base import SamplingConfig
    from thinktoggle.generators.procedural import procedural_records
    from thinktoggle.training.eval_plots import write_plots
    from thinktoggle.training.validate import Item, evaluate

    items = [Item("chain", "math", r) for r in procedural_records("mod_chain", 6, seed=2, split="heldout")]
    config = ValidateConfig(
        sampling_on=SamplingConfig(n=2, temperature=1.0, top_p=1.0, max_tokens=24),
        sampling_off=SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=8),
        budgets=("0", "50%", "100%"),
        budget_samples=3,
    )
    result, answers = evaluate(items, config, str(thinking_model_dir), engine=thinking_vllm_engine)
    unlimited = [a["thinking_tokens"] for a in answers if a["mode"] == "on" and a["budget"] is None]
    median = sorted(unlimited)[len(unlimited) // 2 - 1 : len(unlimited) // 2 + 1]
    curve = result["benchmarks"]["chain"]["budget_curve"]
    assert [p["label"] for p in curve] == ["off", "0", "50%", "100%", "unlimited"]
    assert curve[1]["budget"] == 0 and curve[2]["budget"] == round(sum(median) / 2 / 2)
    for point in curve[1:4]:
        assert point["within_budget"] == 1.0 and point["n_answers"] == 6 * 3  # every trace kept to its budget
    assert curve[1]["thinking_tokens"] == 0 and curve[1]["cut"] == 1.0
    assert curve[2]["thinking_tokens"] <= curve[2]["budget"] * 1.1 < curve[4]["thinking_tokens"]
    # budgeted answers are the curve's alone: the on/off metrics count the unbudgeted samples only
    assert result["benchmarks"]["chain"]["on"]["n_samples"] == 2
    paths = write_plots(result["benchmarks"], tmp_path)
    assert (tmp_path / "budget_curve.png") in paths and (tmp_path / "budget_curve.png").stat().st_size > 0


def test_an_empty_think_block_is_in_format_only_under_a_budget():
    from thinktoggle.training.validate import score_answers

    output = "<think></think>\n\n\\boxed{3}"  # what a budget of 0 leaves: the block closed before it held anything
    answers = [
        {"scorer": "math", "mode": "on", "output": output, "expected_answer": "3", "think_cut": True},
        {"scorer": "math", "mode": "on", "output": output, "expected_answer": "3", "think_cut": False},
    ]
    score_answers(answers)
    assert (answers[0]["compliant"], answers[0]["correct"]) == (True, True)
    assert (answers[1]["compliant"], answers[1]["correct"], answers[1]["reason"]) == (False, False, "empty_think")
