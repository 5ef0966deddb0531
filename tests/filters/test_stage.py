"""The filter stage end to end: real datatrove executors, real worker pools and sandbox, real parquet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from _filter_rows import off, on, record
from datatrove.data import Document

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.verdicts import KeepPolicy
from thinktoggle.filters.length import LengthConfig
from thinktoggle.filters.stage import FilterConfig, MathConfig, run_filter
from thinktoggle.filters.steps import OUTCOME, PARTITION, RecordFilter
from thinktoggle.schemas.arrow import RECORD_SCHEMA, REJECTED_SCHEMA
from thinktoggle.schemas.convert import record_to_arrow_row, record_to_row
from thinktoggle.schemas.io import ShardWriter
from thinktoggle.schemas.record import Verdict

BOX = "Put the final answer in \\boxed{}."
LOOP = "Wait, let me recompute the sum of the first terms again carefully. " * 60
ADD_TESTS = {"entry_point": "add", "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}


def stage_rows():
    """(record, where it must end up: kept | (filter, reason))."""
    rows = [
        (on("2+2=4", "\\boxed{4}", prompt=f"2+2? {BOX}", gold="4"), "kept"),
        (off("\\boxed{5}", prompt=f"2+2? {BOX}", gold="4"), ("math", "wrong_answer")),
        (on("it is \\boxed{6}", "I have finished.", prompt="3+3?", gold="6"), ("math", "no_answer")),
        (on("big", "\\boxed{9^{387420489}}", prompt="trap?", gold="9^{9^9}"), ("math", "timeout")),
        (off("\\boxed{7}", prompt="lonely, no gold"), ("math", "no_gold")),
        (record("no think here", "on", category="chat", prompt="hi"), ("format", "no_think")),
        (record("<think>\nx\n</think>\n\nhello", "off", category="chat", prompt="hi"), ("format", "think_in_off_mode")),
        (off("word " * 100, category="chat", prompt="long"), ("length", "too_long")),
        (on(LOOP, "done", category="chat", prompt="loop"), ("repetition", "repetition")),
        (off("Hello there!", category="chat", prompt="hello"), "kept"),
        (
            off("```python\ndef add(a, b):\n    return a + b\n```", category="code", prompt="add", tests=ADD_TESTS),
            "kept",
        ),
        (
            off("```python\ndef add(a, b):\n    return a - b\n```", category="code", prompt="add", tests=ADD_TESTS),
            ("code", "wrong_answer"),
        ),
    ]
    # three samples of one prompt without gold: two agree (kept), one does not (minority)
    for sample, answer in enumerate(["\\frac{1}{2}", "0.5", "3"]):
        want = "kept" if sample < 2 else ("math", "minority")
        rows.append((on("vote", f"\\boxed{{{answer}}}", prompt=f"half? {BOX}", sample=sample), want))
    return rows


def write_inputs(folder: Path) -> list[Path]:
    """Half the rows as published jsonl (plus two bad rows), half as internal-record parquet."""
    rows = stage_rows()
    jsonl = folder / "rows.jsonl"
    with jsonl.open("w") as handle:
        for rec, _ in rows[::2]:
            handle.write(json.dumps(record_to_row(rec)) + "\n")
        handle.write("{not json\n")  # unreadable
        bad = record_to_row(rows[0][0]) | {"reasoning": "maybe"}
        handle.write(json.dumps(bad) + "\n")  # schema-invalid: field reasoning
    with ShardWriter(folder / "records", RECORD_SCHEMA) as writer:
        for rec, _ in rows[1::2]:
            writer.write(record_to_arrow_row(rec))
    return [jsonl, folder / "records"]


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("filter-stage")
    inputs = write_inputs(folder)
    config = FilterConfig(
        length=LengthConfig(max_tokens_off=300, bytes_per_token=1.0),
        math=MathConfig(row_timeout_s=4.0),
    )
    out = folder / "out"
    stats = run_filter(config, inputs, out, ExecutorConfig(tasks=2, workers=2))
    return config, inputs, out, stats


def test_every_record_is_accounted_for(stage_run):
    _, _, out, stats = stage_run
    written = json.loads((out / "stats.json").read_text())
    n = len(stage_rows()) + 2
    assert written["in"] == stats.n_in == n
    assert written["in"] == written["kept"] + written["dropped"] + written["failed"]
    assert {"in", "kept", "dropped", "failed", "by_filter"} <= set(written)
    rows_out = {
        name: pl.read_parquet(out / name).height if (out / name).exists() else 0
        for name in ("kept", "dropped", "failed")
    }
    assert rows_out == {"kept": written["kept"], "dropped": written["dropped"], "failed": written["failed"]}
    assert (out / "logs" / "completions" / "00000").exists() and (out / "logs" / "completions" / "00001").exists()
    for name in ("dropped", "failed"):  # one schema for every stage's rejected rows
        for shard in (out / name).glob("*.parquet"):
            assert pq.read_schema(shard).remove_metadata() == REJECTED_SCHEMA


def _step_stat(logs: Path, name: str) -> int:
    """A stat the steps of one phase counted, summed over its ranks (datatrove's per-rank stats)."""
    total = 0
    for path in (logs / "stats").glob("*.json"):
        for step in json.loads(path.read_text()):
            value = step["stats"].get(name, 0)
            total += value["total"] if isinstance(value, dict) else value
    return total


def test_each_input_row_is_read_once_then_each_rank_reads_its_share(stage_run):
    _, _, out, stats = stage_run
    assert _step_stat(out / "logs" / "partition", "rows_read") == stats.n_in  # every input row, once
    assert _step_stat(out / "logs", "rows_read") == 0  # the filter ranks read their buckets, not the input
    assert _step_stat(out / "logs", "records") == stats.n_in - stats.n_failed  # each readable row in one bucket
    assert not (out / PARTITION).exists()  # the buckets are removed once the stage is complete


def test_each_record_ends_where_it_should(stage_run):
    _, _, out, stats = stage_run
    expected_kept = sum(1 for _, want in stage_rows() if want == "kept")
    assert stats.kept == expected_kept
    dropped = pl.read_parquet(out / "dropped")
    by = [verdicts[-1]["filter"] for verdicts in dropped["verdicts"].to_list()]  # the verdict that dropped it
    got = sorted(zip(by, dropped["reason"].to_list(), strict=True))
    assert got == sorted(want for _, want in stage_rows() if want != "kept")
    assert set(dropped["stage"].to_list()) == {"filter"}
    assert all(":" in source for source in dropped["source"].to_list())  # file:line


def test_by_filter_counts(stage_run):
    _, _, _, stats = stage_run
    by = stats.by_filter
    assert by["format"]["dropped"] == {"no_think": 1, "think_in_off_mode": 1}
    assert by["format"]["kept"] == len(stage_rows()) - 2  # every readable row reached format
    assert by["math"]["dropped"] == {"wrong_answer": 1, "no_answer": 1, "timeout": 1, "no_gold": 1, "minority": 1}
    assert by["code"]["dropped"] == {"wrong_answer": 1}
    assert by["code"]["kept"] == stats.kept  # the last filter lets through exactly what is kept


def test_unreadable_rows_fail_with_file_line_and_field(stage_run):
    _, inputs, out, stats = stage_run
    assert stats.failed == {"unreadable_row": 2}
    line = len(stage_rows()[::2]) + 1  # the first bad line, after the good rows
    failed = dict(pl.read_parquet(out / "failed").select("source", "detail").iter_rows())
    assert set(failed) == {f"{inputs[0]}:{line}", f"{inputs[0]}:{line + 1}"}
    assert failed[f"{inputs[0]}:{line}"].startswith("(row): malformed JSON")
    assert failed[f"{inputs[0]}:{line + 1}"].startswith("reasoning")


def test_kept_rows_are_records_with_their_verdicts(stage_run):
    _, _, out, stats = stage_run
    for shard in (out / "kept").glob("*.parquet"):
        assert pq.read_schema(shard).remove_metadata() == RECORD_SCHEMA
    kept = pl.read_parquet(out / "kept")
    assert kept.height == stats.kept
    for verdicts in kept["verdicts"].to_list():
        assert [v["filter"] for v in verdicts][:3] == ["format", "length", "repetition"]
        assert all(v["verdict"] == "pass" for v in verdicts)
    majority = [v for vs in kept["verdicts"].to_list() for v in vs if v["reason"].startswith("majority")]
    assert len(majority) == 2 and "agree on" in majority[0]["reason"]


def test_kept_loads_with_datasets(stage_run):
    from datasets import load_dataset

    _, _, out, stats = stage_run
    dataset = load_dataset("parquet", data_files=str(out / "kept" / "*.parquet"), split="train")
    assert len(dataset) == stats.kept
    assert {"input", "output", "reasoning", "system_prompt", "verdicts", "sampling"} <= set(dataset.column_names)


def test_rerun_skips_completed_ranks(stage_run):
    config, inputs, out, stats = stage_run
    shards = {p: p.stat().st_mtime_ns for p in (out / "kept").glob("*.parquet")}
    again = run_filter(config, inputs, out, ExecutorConfig(tasks=2, workers=2))
    assert again.to_dict() == stats.to_dict()
    assert {p: p.stat().st_mtime_ns for p in (out / "kept").glob("*.parquet")} == shards  # nothing rewritten
    with pytest.raises(ValueError, match="another config"):
        run_filter(FilterConfig(only=("format",)), inputs, out, ExecutorConfig(tasks=2, workers=2))


def test_a_rank_that_did_not_finish_is_redone(stage_run):
    config, inputs, out, stats = stage_run
    # As if rank 1 had died before completing: no completion marker, no rank stats, no stage stats.json. (A stage
    # that died still has its buckets; this one finished and removed them, so the partition phase runs again.)
    (out / "logs" / "completions" / "00001").unlink()
    (out / "ranks" / "rank00001.json").unlink()
    (out / "stats.json").unlink()
    shutil.rmtree(out / "logs" / "partition")
    again = run_filter(config, inputs, out, ExecutorConfig(tasks=2, workers=2))
    assert again.to_dict() == stats.to_dict()
    assert pl.read_parquet(out / "kept").height == stats.kept  # rank 1's shards rewritten, not doubled


def test_the_pipeline_pickles_for_slurm_and_ray(stage_run, tmp_path):
    import dill

    from thinktoggle.filters.stage import build_pipeline

    config, inputs, _, _ = stage_run
    pipeline = dill.loads(dill.dumps(build_pipeline(config, inputs, tmp_path, partitioned=True)))
    assert [step.name for step in pipeline][1:-1] == [f"thinktoggle {n}" for n in config.filters]


def test_all_samples_of_a_prompt_land_in_one_rank(stage_run):
    _, _, out, _ = stage_run
    rank_of_pair: dict[str, str] = {}
    for name in ("kept", "dropped", "failed"):
        for path in (out / name).glob("rank*.parquet"):  # shards are named after the rank that wrote them
            for pair_id in pq.read_table(path, columns=["pair_id"])["pair_id"].to_pylist():
                assert rank_of_pair.setdefault(pair_id, path.name[:9]) == path.name[:9]
    assert len(rank_of_pair) == len({r.pair_id for r, _ in stage_rows()})
    assert len(set(rank_of_pair.values())) == 2  # both ranks had work


class _Exploding(RecordFilter):
    filter_name = "exploding"

    def judge(self, record):
        raise KeyError("boom")


def test_a_filter_that_cannot_judge_a_row_fails_it_and_goes_on():
    from thinktoggle.schemas.convert import record_to_document

    docs = [record_to_document(off("a")), record_to_document(off("b"))]
    for doc in docs:
        doc.metadata[OUTCOME] = None
    out = list(_Exploding().run(iter(docs)))
    assert len(out) == 2
    assert all(d.metadata[OUTCOME]["status"] == "failed" for d in out)
    assert out[0].metadata[OUTCOME]["reason"] == "filter_error"
    assert "KeyError" in out[0].metadata[OUTCOME]["detail"]
    assert isinstance(out[0], Document)


@pytest.mark.parametrize(
    ("entries", "verdict", "kept"),
    [
        (("pass",), Verdict("math", "pass"), True),
        (("pass",), Verdict("math", "unverifiable", "no_gold"), False),
        (("pass", "unverifiable:no_gold"), Verdict("math", "unverifiable", "no_gold"), True),
        (("pass", "unverifiable:no_gold"), Verdict("math", "unverifiable", "timeout"), False),
        (("pass", "math:unverifiable"), Verdict("math", "unverifiable", "timeout"), True),
        (("pass", "math:unverifiable"), Verdict("code", "unverifiable", "no_tests"), False),
        (("pass", "fail"), Verdict("math", "error", "worker_died"), False),  # errors are never kept
    ],
)
def test_keep_policy(entries, verdict, kept):
    assert KeepPolicy(entries).keeps(verdict) is kept


@pytest.mark.parametrize("bad", [(), ("maybe",), ("math:maybe",), ("pass:a:b",)])
def test_keep_policy_is_validated(bad):
    with pytest.raises(ValueError, match="keep"):
        KeepPolicy(bad)


def test_config_is_validated():
    with pytest.raises(ValueError, match="unknown filter"):
        FilterConfig(only=("math", "spelling"))
