"""The generate stage end to end with the procedural teacher: pairs, provenance, failures, resume, kill -9."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import polars as pl
import pytest

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.layout import kept_dir
from thinktoggle.generators.engines.base import SamplingConfig
from thinktoggle.generators.engines.config import EngineConfig
from thinktoggle.generators.generate import GenerateConfig, run_generate
from thinktoggle.generators.procedural import procedural_answer, procedural_records
from thinktoggle.generators.sources import write_prompts
from thinktoggle.schemas.io import iter_records
from thinktoggle.schemas.think import compose_output

PROCEDURAL = GenerateConfig(
    engine=EngineConfig(kind="procedural"),
    sampling_on=SamplingConfig(n=3),
    sampling_off=SamplingConfig(n=1, temperature=0),
    shard_size=4,
)


def read_kept(out_dir):
    records = [r for _, r in iter_records([kept_dir(out_dir)])]
    assert all(r is not None for r in records)
    return records


def test_pairs_provenance_and_exact_outputs(tmp_path):
    prompts = procedural_records("arithmetic", 7, seed=1) + procedural_records("code", 3, seed=1)
    src = write_prompts(prompts, tmp_path / "prompts.parquet")
    stats = run_generate(PROCEDURAL, [src], tmp_path / "out")
    assert (stats.n_in, stats.kept, stats.n_failed) == (40, 40, 0)
    records = read_kept(tmp_path / "out")
    by_mode = Counter((r.pair_id, r.reasoning) for r in records)
    assert set(by_mode) == {(p.pair_id, m) for p in prompts for m in ("on", "off")}
    assert all(by_mode[(p.pair_id, "on")] == 3 and by_mode[(p.pair_id, "off")] == 1 for p in prompts)
    prompt_of = {p.pair_id: p for p in prompts}
    for r in records:
        prompt = prompt_of[r.pair_id]
        steps, answer = procedural_answer(prompt, "on")
        assert r.system_prompt == f"detailed thinking {r.reasoning}"
        assert r.output == (compose_output(steps, answer) if r.reasoning == "on" else answer)
        assert r.generator == f"procedural/{prompt.metadata['procedural']['task']}"
        assert r.input == prompt.input and r.expected_answer == prompt.expected_answer and r.tests == prompt.tests
        s = r.sampling
        assert s["engine"] == "procedural" and s["engine_version"] and s["finish_reason"] == "stop"
        assert s["n"] == (3 if r.reasoning == "on" else 1) and s["completion_tokens"] > 0
        assert s["temperature"] == (0.6 if r.reasoning == "on" else 0.0) and "seed" in s
        assert not r.verdicts
    assert len({r.id for r in records}) == 40
    assert sorted(r.sample for r in records if r.pair_id == prompts[0].pair_id and r.reasoning == "on") == [0, 1, 2]
    # the stage's parquet is plain parquet: polars reads it
    assert pl.read_parquet(kept_dir(tmp_path / "out") / "*.parquet").height == 40
    saved = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert saved["in"] == saved["kept"] == 40


def test_failures_recorded_with_reasons_and_bad_rows_named(tmp_path):
    good = procedural_records("arithmetic", 3, seed=0)
    not_procedural = procedural_records("arithmetic", 1, seed=9)[0]
    not_procedural.metadata = {}
    src = write_prompts([*good, not_procedural], tmp_path / "p.parquet")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "not messages"}\n')
    out = tmp_path / "out"
    stats = run_generate(PROCEDURAL, [src, bad], out)
    assert stats.kept == 12 and stats.failed == Counter({"not_procedural": 4, "unreadable_row": 1})
    assert stats.n_in == 17
    failed = [r for _, r in iter_records(sorted((out / "failed").glob("shard-*.parquet")))]
    assert len(failed) == 4 and all(r.output == "" and r.pair_id == not_procedural.pair_id for r in failed)
    assert all(v.filter == "generate" and v.reason.startswith("not_procedural") for r in failed for v in r.verdicts)
    rejected = pl.read_parquet(out / "failed" / "inputs.parquet")
    assert rejected["source"].to_list() == [f"{bad}:1"] and rejected["reason"][0] == "unreadable_row"
    assert rejected["detail"][0].startswith("output: missing")  # the field, then the error
    # a rerun retries the failed samples (they fail again: same counts, nothing duplicated)
    again = run_generate(PROCEDURAL, [src, bad], out)
    assert again.to_dict() == stats.to_dict() and len(read_kept(out)) == 12


def test_rerun_skips_completed_parts_and_refuses_other_settings(tmp_path):
    src = write_prompts(procedural_records("arithmetic", 10, seed=0), tmp_path / "p.parquet")
    out = tmp_path / "out"
    run_generate(PROCEDURAL, [src], out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in kept_dir(out).iterdir()}
    assert len(mtimes) == 6  # 3 shards × 2 modes
    stats = run_generate(PROCEDURAL, [src], out)
    assert stats.kept == 40 and {p.name: p.stat().st_mtime_ns for p in kept_dir(out).iterdir()} == mtimes
    with pytest.raises(ValueError, match="other prompts or other settings"):
        run_generate(GenerateConfig(engine=EngineConfig(kind="procedural"), shard_size=4), [src], out)


def test_data_parallel_ranks_share_the_shards(tmp_path):
    src = write_prompts(procedural_records("arithmetic", 10, seed=0), tmp_path / "p.parquet")
    config = GenerateConfig(engine=EngineConfig(kind="procedural"), shard_size=2, dp=2, progress=False)
    stats = run_generate(config, [src], tmp_path / "out", ExecutorConfig(tasks=1))
    assert stats.kept == 20 and len(list(kept_dir(tmp_path / "out").iterdir())) == 10
    assert {p.name for p in (tmp_path / "out" / "logs" / "completions").iterdir()} == {"00000", "00001"}


def test_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="n must be 1 with greedy"):
        SamplingConfig(n=2, temperature=0)
    with pytest.raises(ValueError, match="generate.teacher_on"):
        GenerateConfig(engine=EngineConfig(kind="vllm"))
    with pytest.raises(ValueError, match="base_url: required for the openai engine"):
        GenerateConfig(engine=EngineConfig(kind="openai"), teacher_on="m")
    with pytest.raises(ValueError, match="kind: expected one of"):
        EngineConfig(kind="vlm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="generate.toggle_off"):
        GenerateConfig(engine=EngineConfig(kind="procedural"), toggle_off="nope")


def _cli(out, count):
    return [
        sys.executable,
        "-m",
        "thinktoggle.cli.main",
        "generate",
        "--out",
        str(out),
        "--procedural",
        "arithmetic",
        "--count",
        str(count),
        "--engine-kind",
        "procedural",
        "--sampling-on-n",
        "2",
        "--shard-size",
        "10",
        "--no-progress",
    ]


def test_kill_9_then_rerun_loses_and_duplicates_nothing(tmp_path):
    out, count = tmp_path / "out", 2000
    for wait_for_parts in (15, 120):  # kill early, then again later in the rerun
        proc = subprocess.Popen(
            _cli(out, count), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            done = len(list(kept_dir(out).glob("shard-*.parquet"))) if kept_dir(out).exists() else 0
            if done >= wait_for_parts:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "finished before it could be killed: raise count"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    parts_before = {p.name: p.stat().st_mtime_ns for p in kept_dir(out).glob("shard-*.parquet")}
    assert 120 <= len(parts_before) < 400
    run = subprocess.run(_cli(out, count), capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    records = read_kept(out)
    keys = [(r.pair_id, r.reasoning, r.sample) for r in records]
    assert len(records) == 3 * count and len(set(keys)) == len(keys) and len({r.id for r in records}) == len(records)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["in"] == stats["kept"] == 3 * count and stats["failed"] == 0
    # complete parts were not redone (a killed part may have been half-written only as a hidden temp file)
    full = {"on": 20, "off": 10}  # 10 prompts a shard; 2 samples on, greedy off takes 1
    complete_before = [
        name
        for name in parts_before
        if pl.read_parquet(kept_dir(out) / name).height == full[name.rsplit("-", 1)[1].removesuffix(".parquet")]
    ]
    after = {p.name: p.stat().st_mtime_ns for p in kept_dir(out).glob("shard-*.parquet")}
    assert complete_before and all(after[name] == parts_before[name] for name in complete_before)
    assert not [p for p in kept_dir(out).iterdir() if p.name.startswith(".")]  # a killed write's temp file is swept


def test_published_rows_as_prompts_reuse_their_input(tmp_path):
    """Published rows (both modes of one prompt) give one prompt; a non-procedural prompt fails with its reason."""
    row = {
        "input": [{"role": "user", "content": "Name a prime."}],
        "output": "<think>\nsmall\n</think>\n\n2",
        "category": "math",
        "license": "cc-by-4.0",
        "reasoning": "on",
        "generator": "DeepSeek-R1",
        "used_in_training": "yes",
        "version": "v1.1",
        "system_prompt": "detailed thinking on",
    }
    off = {**row, "reasoning": "off", "output": "2", "system_prompt": "detailed thinking off"}
    path = tmp_path / "published.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(off) + "\n")
    stats = run_generate(
        GenerateConfig(engine=EngineConfig(kind="procedural"), progress=False), [path], tmp_path / "out"
    )
    assert stats.n_in == 2 and stats.failed == Counter({"not_procedural": 2})
    failed = [r for _, r in iter_records([tmp_path / "out" / "failed"])]
    assert sorted(r.reasoning for r in failed) == ["off", "on"] and all(r.input == row["input"] for r in failed)


def test_the_output_folder_read_as_input_holds_only_the_generated_records(tmp_path):
    """The next stage may be pointed at generate's folder itself: the working copy of the prompts (and the
    CLI's procedural prompts) must not be read as records there."""
    from click.testing import CliRunner

    from thinktoggle.cli.main import app

    out = tmp_path / "out"
    args = ["generate", "--procedural", "arithmetic", "--count", "3", "--engine-kind", "procedural", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [r for _, r in iter_records([out])]
    assert len(records) == 6 and all(r is not None and r.output for r in records)
    assert {r.id for r in records} == {r.id for r in read_kept(out)}
