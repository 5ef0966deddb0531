"""Budgeted training rows (`generate.budgeted_on`): one more on sample a prompt, its think block cut at a
budget drawn by the prompt's hash, the answer still right (the procedural teacher knows it)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from thinktoggle.generators.engines.base import ChatRequest, SamplingConfig
from thinktoggle.generators.engines.config import EngineConfig
from thinktoggle.generators.engines.procedural_engine import ProceduralEngine, cut_trace
from thinktoggle.generators.generate import GenerateConfig, run_generate
from thinktoggle.generators.procedural import procedural_answer, procedural_records
from thinktoggle.generators.sources import write_prompts
from thinktoggle.schemas.io import iter_records
from thinktoggle.schemas.think import split_output


@pytest.mark.parametrize(
    ("budget", "kept", "cut"),
    [(0, "", True), (1, "6", True), (5, "6*3=8", True), (9, "6*3=8; A58", True), (10, "6*3=8; A58n", True),
     (11, "6*3=8; A58n B", True), (13, "6*3=8; A58n B88", True), (14, "6*3=8; A58n B88y", False),
     (99, "6*3=8; A58n B88y", False)],
)  # fmt: skip
def test_cut_trace_counts_non_space_characters(budget, kept, cut):
    assert cut_trace("6*3=8; A58n B88y", budget) == (kept, cut)


def test_the_procedural_teacher_cuts_its_trace_and_still_answers_right():
    (record,) = procedural_records("mod_chain", 1, seed=4)
    steps, answer = procedural_answer(record, "on")
    sampling = SamplingConfig(n=1, temperature=0.0, top_p=1.0, thinking_budget=6)
    request = ChatRequest(messages=record.input, sampling=sampling, metadata=record.metadata)
    (c,) = ProceduralEngine().generate([request])[0]
    parts = split_output(c.text)
    assert steps.startswith(parts.reasoning) and len(parts.reasoning) == 6 and parts.answer == answer
    assert (c.thinking_tokens, c.think_cut) == (6, True)


def test_generate_adds_one_budgeted_on_sample_a_prompt(tmp_path):
    prompts = write_prompts(procedural_records("mod_chain", 12, seed=3), tmp_path / "prompts.parquet")
    config = GenerateConfig(engine=EngineConfig(kind="procedural"), budgeted_on=(4, 9), progress=False)
    stats = run_generate(config, [prompts], tmp_path / "g")
    assert (stats.n_in, stats.kept, sum(stats.failed.values())) == (12 * 3, 12 * 3, 0)
    records = [r for _, r in iter_records([tmp_path / "g" / "kept"])]
    budgeted = [r for r in records if "thinking_budget" in r.sampling]
    assert len(budgeted) == 12 and {r.reasoning for r in budgeted} == {"on"} and {r.sample for r in budgeted} == {1}
    assert {r.sampling["thinking_budget"] for r in budgeted} == {4, 9}  # drawn per prompt, both used here
    full = {r.pair_id: r for r in records if r.reasoning == "on" and "thinking_budget" not in r.sampling}
    for r in budgeted:
        cut, whole = split_output(r.output), split_output(full[r.pair_id].output)
        assert whole.reasoning.startswith(cut.reasoning) and cut.answer == whole.answer  # still the right answer
        assert r.sampling["thinking_tokens"] == r.sampling["thinking_budget"] and r.sampling["think_cut"]
    # the same budgets on a rerun into the same folder: nothing regenerated, nothing changed
    again = run_generate(config, [prompts], tmp_path / "g")
    assert again.kept == stats.kept
    assert json.loads((tmp_path / "g" / "plan.json").read_text())["prompts"] == 12


def test_budgeted_rows_need_the_on_mode():
    with pytest.raises(ValueError, match="modes must include on"):
        GenerateConfig(engine=EngineConfig(kind="procedural"), budgeted_on=(4,), modes=("off",))
    with pytest.raises(ValueError, match="budgets must be >= 0"):
        GenerateConfig(engine=EngineConfig(kind="procedural"), budgeted_on=(-1,))


def test_a_budget_of_0_is_an_empty_think_block_the_format_filter_accepts(tmp_path):
    from thinktoggle.filters.format import format_problem

    prompts = write_prompts(procedural_records("mod_chain", 3, seed=5), tmp_path / "prompts.parquet")
    config = GenerateConfig(engine=EngineConfig(kind="procedural"), budgeted_on=(0,), progress=False)
    assert run_generate(config, [prompts], tmp_path / "g").kept == 9
    records = [r for _, r in iter_records([tmp_path / "g" / "kept"])]
    cut = [r for r in records if r.sampling.get("think_cut")]
    assert len(cut) == 3 and all(split_output(r.output).reasoning == "" for r in cut)
    assert all(format_problem(r) is None for r in records)  # the empty block is by design when a budget cut it
    whole = next(r for r in records if r.reasoning == "on" and not r.sampling.get("think_cut"))
    assert format_problem(replace(whole, output=cut[0].output)) == "empty_think"  # not for an unbudgeted answer
