"""Toggle validation scoring: a hand-made set of model outputs, scored by the filters' own checks (the format
filter's `output_problem`, the math filter's verifier pool) and the validate config's engine settings."""

from __future__ import annotations

import pytest

from thinktoggle.filters.format import output_problem
from thinktoggle.generators.engines.config import EngineConfig
from thinktoggle.training.validate import ValidateConfig, format_table, score_answers

# (mode, output, expected answer, compliant, correct)
TRUTH_TABLE = [
    ("on", "<think>\n2+3=5\n</think>\n\n\\boxed{5}", "5", True, True),
    ("on", "<think>\n2+3=6\n</think>\n\n\\boxed{6}", "5", True, False),  # well formed, wrong
    ("on", "<think>\n2+3=5\n</think>\n\n5", "5", True, True),  # a bare final answer counts
    ("on", "\\boxed{5}", "5", False, False),  # no think in on mode
    ("on", "<think>\n2+3=5 \\boxed{5}", "5", False, False),  # unclosed think: no final answer
    ("on", "<think>\n\n</think>\n\n\\boxed{5}", "5", False, False),  # empty think
    ("on", "<think>\n2+3=5\n</think>\n\n", "5", False, False),  # think, then no answer
    ("on", "<think>\n\\boxed{5}\n</think>\n\nI am not sure.", "5", True, False),  # answer only inside the think
    ("off", "\\boxed{5}", "5", True, True),
    ("off", "\\boxed{4}", "5", True, False),
    ("off", "<think>\n2+3=5\n</think>\n\n\\boxed{5}", "5", False, False),  # thinking when told not to
    ("off", "", "5", False, False),  # empty
    ("off", "The answer is \\boxed{\\frac{1}{2}}", "0.5", True, True),  # math-verify equivalence
]


@pytest.mark.parametrize(("mode", "output", "expected", "compliant", "correct"), TRUTH_TABLE)
def test_compliance_rule_is_the_format_filters(mode, output, expected, compliant, correct):
    assert (output_problem(output, mode) is None) is compliant


def test_scores_a_hand_made_output_set():
    answers = [
        {"mode": mode, "output": output, "expected_answer": expected, "tokens": 10 if mode == "on" else 2}
        for mode, output, expected, _, _ in TRUTH_TABLE
    ]
    summary = score_answers(answers)
    for answer, (_, _, _, compliant, correct) in zip(answers, TRUTH_TABLE, strict=True):
        assert (answer["compliant"], answer["correct"]) == (compliant, correct), answer["output"]
    on = [row for row in TRUTH_TABLE if row[0] == "on"]
    off = [row for row in TRUTH_TABLE if row[0] == "off"]
    assert summary["on"]["n"] == len(on) and summary["off"]["n"] == len(off)
    assert summary["on"]["compliance"] == pytest.approx(sum(r[3] for r in on) / len(on))
    assert summary["on"]["accuracy"] == pytest.approx(sum(r[4] for r in on) / len(on))
    assert summary["off"]["compliance"] == pytest.approx(sum(r[3] for r in off) / len(off))
    assert summary["off"]["accuracy"] == pytest.approx(sum(r[4] for r in off) / len(off))
    assert summary["on"]["mean_response_tokens"] == 10 and summary["off"]["mean_response_tokens"] == 2
    assert summary["on"]["reasons"]["no_think"] == 1 and summary["off"]["reasons"]["think_in_off_mode"] == 1
    table = format_table(summary)
    assert "accuracy on - off" in table and "compliance" in table


def test_engine_settings_nest_and_only_local_engines_validate():
    assert ValidateConfig().engine == EngineConfig(kind="auto")
    assert ValidateConfig(engine=EngineConfig(kind="transformers", device="cpu")).engine.device == "cpu"
    with pytest.raises(ValueError, match="validate.engine: kind auto, vllm or transformers"):
        ValidateConfig(engine=EngineConfig(kind="procedural"))
