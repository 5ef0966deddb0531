"""Dedup: planted exact and near duplicates go (with the duplicate they matched), nothing else does; pairs stay whole."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from _curation_fixtures import pair, read_records, write_records

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.stats import StageStats
from thinktoggle.curation.dedup import (
    EXACT_PROMPT,
    EXACT_RESPONSE,
    NEAR_PROMPT,
    DedupConfig,
    MinHashConfig,
    normalise_text,
    run_dedup,
)

LONG = (
    "A farmer has {n} fields arranged in a row. Each field is planted with wheat, barley or oats, and no two "
    "neighbouring fields may hold the same crop. In how many ways can the farmer plant all of the fields, "
    "given that the first field must be wheat and the last field must not be oats?"
)


def distinct_prompts(count: int) -> list[str]:
    """Prompts that differ in wording, not only in a number (those must NOT be near duplicates either)."""
    subjects = ["triangle", "circle", "square", "hexagon", "ellipse", "rhombus", "pentagon", "trapezoid"]
    verbs = ["area", "perimeter", "diagonal", "inradius", "circumradius", "height"]
    return [
        f"Compute the {verbs[i % len(verbs)]} of a {subjects[i % len(subjects)]} whose side is {i + 3} cm, "
        f"and explain each step of case {i} carefully."
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict[str, list]]:
    tmp = tmp_path_factory.mktemp("dedup")
    originals = [pair(p) for p in distinct_prompts(12)]
    numbers_only = [pair(LONG.format(n=n)) for n in (5, 6, 7)]  # differ in one number: distinct problems
    exact = pair("  compute the AREA of a triangle whose side is 3 cm, and explain each step of case 0 carefully. ")
    near = pair(LONG.format(n=5).replace("In how many ways", "In exactly how many different ways"))
    same_answer = [originals[1][1].with_output(originals[1][1].output, sample=1)]  # a second, identical off sample
    records = [r for p in originals + numbers_only for r in p] + exact + near + same_answer
    write_records(records[:20], tmp / "in" / "a")
    write_records(records[20:], tmp / "in" / "b")
    planted = {"exact": exact, "near": near, "same_answer": same_answer, "all": records, "originals": originals}
    return tmp, planted


@pytest.mark.parametrize("tasks", [1, 2])
def test_planted_duplicates_are_removed_and_nothing_else(planted, tasks, tmp_path):
    tmp, p = planted
    stats = run_dedup(DedupConfig(), [tmp / "in"], tmp_path / "out", ExecutorConfig(tasks=tasks, workers=1))
    kept = read_records(tmp_path / "out")
    dropped = read_records(tmp_path / "out" / "dropped")

    assert stats.n_in == len(p["all"]) == len(kept) + len(dropped)
    assert dict(stats.dropped) == {EXACT_PROMPT: 2, NEAR_PROMPT: 2, EXACT_RESPONSE: 1}
    by_id = {r.id: r for r in dropped}
    for record in p["exact"]:
        meta = by_id[record.id].metadata["dedup"]
        assert meta == {"reason": EXACT_PROMPT, "duplicate_of": p["originals"][0][0].pair_id, "similarity": 1.0}
    first_long = pair(LONG.format(n=5))[0].pair_id
    for record in p["near"]:
        meta = by_id[record.id].metadata["dedup"]
        assert meta["reason"] == NEAR_PROMPT and meta["duplicate_of"] == first_long and meta["similarity"] >= 0.7
        assert by_id[record.id].verdicts[-1].filter == "dedup"
    assert by_id[p["same_answer"][0].id].metadata["dedup"]["duplicate_of"] == p["originals"][1][1].id
    # Everything else survives, in input order.
    planted_ids = {r.id for r in p["exact"] + p["near"] + p["same_answer"]}
    assert [r.id for r in kept] == [r.id for r in p["all"] if r.id not in planted_ids]
    assert StageStats.read(tmp_path / "out" / "stats.json").to_dict() == stats.to_dict()


def test_pair_consistency_no_half_pair_survives(planted, tmp_path):
    tmp, _ = planted
    run_dedup(DedupConfig(exact_response=False), [tmp / "in"], tmp_path / "out")
    kept = read_records(tmp_path / "out")
    dropped = read_records(tmp_path / "out" / "dropped")
    kept_pairs = {r.pair_id for r in kept}
    assert not kept_pairs & {r.pair_id for r in dropped}
    for pair_id in kept_pairs:
        assert {r.reasoning for r in kept if r.pair_id == pair_id} == {"on", "off"}


def test_threshold_and_switches(planted, tmp_path):
    tmp, p = planted
    only_exact = run_dedup(
        DedupConfig(exact_response=False, minhash=MinHashConfig(enabled=False)), [tmp / "in"], tmp_path / "a"
    )
    assert dict(only_exact.dropped) == {EXACT_PROMPT: 2}
    strict = run_dedup(DedupConfig(minhash=MinHashConfig(threshold=0.99)), [tmp / "in"], tmp_path / "b")
    assert NEAR_PROMPT not in strict.dropped  # LSH found the pair, the Jaccard check keeps it
    textual = run_dedup(DedupConfig(minhash=MinHashConfig(same_numbers=False)), [tmp / "in"], tmp_path / "c")
    assert textual.dropped[NEAR_PROMPT] == 6  # the one-number variants of the long problem go too
    # A rerun into a finished folder returns its stats without redoing anything.
    for shard in (tmp_path / "b").glob("part-*.parquet"):
        shard.unlink()
    assert run_dedup(DedupConfig(), [tmp / "in"], tmp_path / "b").to_dict() == strict.to_dict()


def test_unreadable_rows_are_failed_with_file_and_line(planted, tmp_path):
    tmp, p = planted
    bad = tmp_path / "in" / "bad.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"not": "a row"}\n{broken\n')
    stats = run_dedup(DedupConfig(), [tmp / "in", bad], tmp_path / "out")
    assert stats.n_failed == 2 and stats.n_in == len(p["all"]) + 2
    failed = pl.read_parquet(tmp_path / "out" / "failed")
    assert sorted(failed["source"].to_list()) == [f"{bad}:1", f"{bad}:2"]
    assert set(failed["stage"].to_list()) == {"dedup"} and set(failed["reason"].to_list()) == {"unreadable_row"}


def test_normalise_keeps_what_tells_math_apart():
    assert normalise_text("  What is 3+5?\n") == normalise_text("what   is 3+5?")
    assert normalise_text("What is 3+5?") != normalise_text("What is 3-5?")


def test_slurm_executor_is_refused_with_the_way_out(planted, tmp_path):
    tmp, _ = planted
    with pytest.raises(ValueError, match="inside a Slurm allocation"):
        run_dedup(DedupConfig(), [tmp / "in"], tmp_path / "out", ExecutorConfig(type="slurm", partition="cpu"))
