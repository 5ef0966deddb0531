"""Funnel accounting: in == kept + dropped + failed in every stage, and each stage's `in` is the previous `kept`,
checked on a real chain of the curation commands (dedup -> decontaminate -> mix -> export -> check)."""

from __future__ import annotations

import json

import pytest
from _curation_fixtures import pair, read_records, write_records
from click.testing import CliRunner

from thinktoggle.cli.main import app
from thinktoggle.core.funnel import (
    FunnelError,
    build_funnel,
    check_funnel,
    funnel_from_run,
    read_funnel,
    write_funnel,
)
from thinktoggle.core.stats import StageStats

BENCH_ITEM = (
    "Find all real numbers x such that the cube of x minus six times the square of x plus eleven times x "
    "equals six, and list them in increasing order."
)


def test_consistent_chain():
    funnel = build_funnel(
        [
            StageStats("generate", n_in=10, kept=10),
            StageStats("filter", n_in=10, kept=7, dropped={"wrong": 2}, failed={"unreadable_row": 1}),
            StageStats("dedup", n_in=7, kept=6, dropped={"exact_prompt_duplicate": 1}),
        ]
    )
    check_funnel(funnel)
    assert (funnel["in"], funnel["out"], funnel["dropped"], funnel["failed"]) == (10, 6, 3, 1)
    assert {"stage": "filter", "kind": "failed", "reason": "unreadable_row", "rows": 1} in funnel["reasons"]


def test_generate_fans_out_without_a_break():
    funnel = build_funnel([StageStats("sources", n_in=5, kept=5), StageStats("generate", n_in=10, kept=10)])
    assert funnel["consistent"], funnel["breaks"]


def test_breaks_are_named():
    funnel = build_funnel(
        [StageStats("filter", n_in=10, kept=7, dropped={"x": 3}), StageStats("dedup", n_in=8, kept=8)]
    )
    assert funnel["breaks"] == ["filter.kept=7 != dedup.in=8"]
    with pytest.raises(FunnelError, match="filter.kept=7 != dedup.in=8"):
        check_funnel(funnel)
    lost = build_funnel([StageStats("mix", n_in=10, kept=7)])  # 3 records vanished inside the stage
    assert lost["breaks"] == ["mix: in=10 != kept=7 + dropped=0 + failed=0"]


def test_read_funnel_from_run_or_stage_stats(tmp_path):
    funnel = build_funnel([StageStats("dedup", n_in=4, kept=4), StageStats("mix", n_in=4, kept=2, dropped={"c": 2})])
    write_funnel(funnel, tmp_path / "stats.json")
    assert read_funnel(tmp_path / "stats.json") == funnel
    StageStats("mix", n_in=4, kept=4).write(tmp_path / "mix.json")
    assert read_funnel(tmp_path / "mix.json")["out"] == 4


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The curation commands run one after another on planted data, as a user would."""
    run = tmp_path_factory.mktemp("run")
    records = []
    for i in range(10):
        records += pair(f"Describe, step by step, how to compute the greatest common divisor of {i + 10} and {i + 4}.")
    records += pair("describe, step by step, how to compute the greatest common divisor of 10 and 4.")  # exact dup
    records += pair("Before you start: " + BENCH_ITEM, category="math")  # contaminated
    records += pair("A chat prompt whose off answer was lost.", category="chat")[:1]  # incomplete pair
    write_records(records, run / "filter")
    StageStats("filter", n_in=len(records) + 2, kept=len(records), dropped={"math:wrong_answer": 2}).write(
        run / "filter" / "stats.json"
    )
    bench = run / "bench.jsonl"
    bench.write_text(json.dumps({"problem": BENCH_ITEM}) + "\n")
    cli = CliRunner()
    steps = [
        ["dedup", str(run / "filter"), "--out", str(run / "dedup")],
        ["decontaminate", str(run / "dedup"), "--out", str(run / "decontaminate"), "--benchmark", f"aime={bench}"],
        ["mix", str(run / "decontaminate"), "--out", str(run / "mix"), "--set", "caps.math=16", "--version", "v9"],
        ["export", str(run / "mix"), "--out", str(run / "export"), "--no-plots"],
    ]
    outputs = []
    for args in steps:
        result = cli.invoke(app, args)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    return run, records, outputs


def test_chain_accounts_for_every_record(chain):
    run, records, outputs = chain
    funnel = funnel_from_run(run)
    check_funnel(funnel)
    by_stage = {s["stage"]: s for s in funnel["stages"]}
    assert list(by_stage) == ["filter", "dedup", "decontaminate", "mix", "export"]
    assert by_stage["dedup"]["dropped_reasons"] == {"exact_prompt_duplicate": 2}
    assert by_stage["decontaminate"]["dropped_reasons"] == {"contaminated:aime": 2}
    assert by_stage["mix"]["dropped_reasons"] == {"incomplete_pair": 1, "category_cap": 4}
    assert by_stage["export"]["kept"] == 16 == funnel["out"]
    # What each stage dropped is on disk, record for record, and nothing is both kept and dropped.
    for stage in ("dedup", "decontaminate", "mix"):
        kept = {r.id for r in read_records(run / stage)}
        dropped = {r.id for r in read_records(run / stage / "dropped")}
        assert len(kept) == by_stage[stage]["kept"] and len(dropped) == by_stage[stage]["dropped"]
        assert not kept & dropped
    assert "dedup: in 25, kept 23, dropped 2, failed 0" in outputs[0]


def test_exported_chain_passes_check_with_tags(chain):
    run, _, _ = chain
    result = CliRunner().invoke(app, ["check", str(run / "export")])
    assert result.exit_code == 0, result.output
    assert "16 rows, 16 valid, 0 invalid" in result.output
    assert {r.version for r in read_records(run / "export")} == {"v9"}


def test_cli_reports_bad_options(tmp_path):
    result = CliRunner().invoke(app, ["mix", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "caps.math"])
    assert result.exit_code == 2 and "--set caps.math: expected KEY.PATH=VALUE" in result.output
    result = CliRunner().invoke(app, ["mix", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "caps.math=lots"])
    assert result.exit_code == 2 and "mix.caps.math: expected an integer, got 'lots'" in result.output
