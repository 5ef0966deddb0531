"""Decontamination: planted benchmark items are removed (both modes) with the benchmark and n-gram named."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _curation_fixtures import pair, read_records, write_records

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.curation.decontaminate import (
    REPORT,
    BenchmarkConfig,
    DecontaminateConfig,
    NgramIndex,
    run_decontaminate,
    word_ngrams,
)

MATH_ITEMS = [
    "Let $x$ and $y$ be real numbers such that $x + y = 10$ and $xy = 21$. Find the value of $x^2 + y^2$ "
    "and express your answer as an integer.",
    "How many positive divisors does the number 3600 have? Give a complete justification of your count.",
]
CODE_ITEMS = [
    "Write a function that takes a list of integers and returns the length of the longest strictly increasing "
    "contiguous subsequence in the list."
]
CLEAN = [
    "A train leaves the station at noon travelling at sixty kilometres per hour towards a town two hundred "
    "kilometres away. When does it arrive?",
    "Explain the difference between a list and a tuple in Python, with an example of when each is preferable.",
    "Short prompt.",
]


@pytest.fixture()
def benchmarks(tmp_path):
    math_file = tmp_path / "math500.jsonl"
    math_file.write_text("".join(json.dumps({"problem": p, "answer": "58"}) + "\n" for p in MATH_ITEMS))
    code_file = tmp_path / "mbpp.parquet"
    pq.write_table(pa.table({"text": CODE_ITEMS, "task_id": [1]}), code_file)
    return (
        BenchmarkConfig(name="math500", path=str(math_file)),
        BenchmarkConfig(name="mbpp", path=str(code_file), columns=("text",)),
    )


def planted_records():
    # Contamination hides inside a longer prompt, with other casing, spacing and LaTeX punctuation.
    math_hit = pair(
        "Solve this:  LET x and y be real numbers such that x+y = 10 and xy = 21. Find the value of x^2 + y^2 "
        "and express your answer as an integer, please."
    )
    code_hit = pair(
        "Task: write a function that takes a list of integers and returns the length of the longest strictly "
        "increasing contiguous subsequence in the list.",
        category="code",
    )
    clean = [pair(text) for text in CLEAN]
    return math_hit, code_hit, clean


@pytest.mark.parametrize("tasks", [1, 2])
def test_planted_items_removed_with_benchmark_named(benchmarks, tmp_path, tasks):
    math_hit, code_hit, clean = planted_records()
    write_records([*math_hit, *clean[0]], tmp_path / "in" / "a")
    write_records([*code_hit, *clean[1], *clean[2]], tmp_path / "in" / "b")
    out = tmp_path / "out"
    stats = run_decontaminate(
        DecontaminateConfig(benchmarks=benchmarks), [tmp_path / "in"], out, ExecutorConfig(tasks=tasks, workers=1)
    )
    assert stats.n_in == 10 and stats.kept == 6
    assert dict(stats.dropped) == {"contaminated:math500": 2, "contaminated:mbpp": 2}
    assert sorted(r.id for r in read_records(out)) == sorted(r.id for p in clean for r in p)
    dropped = {r.id: r for r in read_records(out / "dropped")}
    for record, benchmark in [(r, "math500") for r in math_hit] + [(r, "mbpp") for r in code_hit]:
        meta = dropped[record.id].metadata["decontaminate"]
        assert meta["benchmark"] == benchmark and meta["item"] == 0
        assert len(meta["ngram"].split()) == 13 and meta["ngram"] in " ".join(word_ngrams(record.prompt, 1))
        assert benchmark in dropped[record.id].verdicts[-1].reason

    report = json.loads((out / REPORT).read_text())
    assert report["ngram"] == 13
    math = report["benchmarks"]["math500"]
    assert (math["items"], math["rows_removed"], math["prompts_removed"]) == (2, 2, 1)
    assert math["examples"][0]["pair_id"] == math_hit[0].pair_id
    assert report["benchmarks"]["mbpp"]["rows_removed"] == 2


def test_ngram_size_is_configurable(benchmarks, tmp_path):
    # Shares 10 consecutive words with a MATH item: caught with n=8 (open-r1), not with n=13.
    near_miss = pair("How many positive divisors does the number 3600 have? Give a complete answer.")
    write_records(near_miss, tmp_path / "in")
    default = run_decontaminate(DecontaminateConfig(benchmarks=benchmarks), [tmp_path / "in"], tmp_path / "n13")
    open_r1 = run_decontaminate(DecontaminateConfig(ngram=8, benchmarks=benchmarks), [tmp_path / "in"], tmp_path / "n8")
    assert default.kept == 2 and open_r1.dropped == {"contaminated:math500": 2}


def hub_answers(monkeypatch, gated=False, granted=True):
    """The Hub's answers to the access check, faked at the network boundary only (HfApi's two calls), with
    huggingface_hub's own GatedRepoError where the Hub refuses a gated dataset."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError
    from huggingface_hub.hf_api import DatasetInfo
    from huggingface_hub.utils import httpx

    def auth_check(self, repo_id, **kwargs):
        if not granted:
            request = httpx.Request("GET", f"https://huggingface.co/api/datasets/{repo_id}/auth-check")
            raise GatedRepoError("401 Client Error.", response=httpx.Response(401, request=request))

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # whatever the caller's environment says
    monkeypatch.setattr(HfApi, "dataset_info", lambda self, repo_id, **_: DatasetInfo(id=repo_id, gated=gated))
    monkeypatch.setattr(HfApi, "auth_check", auth_check)


def test_hub_benchmark_goes_through_datasets_load_dataset(monkeypatch, tmp_path):
    # The Hub cannot be reached here: only the network boundary is replaced, the access check by the Hub's
    # answers and datasets.load_dataset by a function that checks the arguments and serves a real in-memory
    # `datasets.Dataset`.
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None, streaming=False):
        calls.append((path, name, split, streaming))
        return datasets.Dataset.from_list([{"Question": MATH_ITEMS[1]}])

    hub_answers(monkeypatch, gated="manual")
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    bench = BenchmarkConfig(
        name="gpqa", hub_id="Idavidrein/gpqa", hub_config="gpqa_diamond", split="train", columns=("Question",)
    )
    index = NgramIndex.build(DecontaminateConfig(ngram=8, benchmarks=(bench,)))
    assert calls == [("Idavidrein/gpqa", "gpqa_diamond", "train", False)]
    assert index.summary["gpqa"]["items"] == 1
    assert index.match("so: how many positive divisors does the number 3600 have? give a complete")[0] == "gpqa"


def test_a_gated_hub_benchmark_is_one_error_naming_it(monkeypatch):
    from thinktoggle.schemas.hub import HubError

    hub_answers(monkeypatch, gated="manual", granted=False)
    bench = BenchmarkConfig(name="gpqa", hub_id="Idavidrein/gpqa", hub_config="gpqa_diamond", split="train")
    with pytest.raises(HubError, match=r"^Hub dataset Idavidrein/gpqa: gated: log in \(HF_TOKEN or `hf auth login`\)"):
        NgramIndex.build(DecontaminateConfig(benchmarks=(bench,)))


def test_bad_benchmark_input_names_the_problem(tmp_path):
    bad = tmp_path / "bench.jsonl"
    bad.write_text('{"question": "x"}\n')
    with pytest.raises(ValueError, match=r"bench.jsonl:1: no column 'problem'"):
        NgramIndex.build(DecontaminateConfig(benchmarks=(BenchmarkConfig(name="b", path=str(bad)),)))
    with pytest.raises(ValueError, match="decontaminate.benchmarks: none given"):
        run_decontaminate(DecontaminateConfig(), [bad], tmp_path / "out")
    with pytest.raises(ValueError, match="give `path`"):
        NgramIndex.build(DecontaminateConfig(benchmarks=(BenchmarkConfig(name="b"),)))


def test_interrupted_run_resumes_from_completed_ranks(benchmarks, tmp_path):
    math_hit, code_hit, clean = planted_records()
    write_records([*math_hit, *clean[0]], tmp_path / "in" / "a")
    write_records([*code_hit, *clean[1]], tmp_path / "in" / "b")
    out = tmp_path / "out"
    config = DecontaminateConfig(benchmarks=benchmarks)
    first = run_decontaminate(config, [tmp_path / "in"], out, ExecutorConfig(tasks=2, workers=1))
    # Killed after both ranks finished but before the merge: the rerun merges without redoing the ranks.
    (out / "stats.json").unlink()
    (out / REPORT).unlink()
    shards = {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    again = run_decontaminate(config, [tmp_path / "in"], out, ExecutorConfig(tasks=2, workers=1))
    assert again.to_dict() == first.to_dict()
    assert {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")} == shards
    assert json.loads((out / REPORT).read_text())["benchmarks"]["mbpp"]["rows_removed"] == 2
