"""Crash and resume: kill -9 at seeded random moments, rerun the same command, compare with an uninterrupted run.

Covered here (the generators and runner suites already kill `generate` and `thinktoggle run` once each; these are
other moments and the stages they do not cover):
- `thinktoggle filter` (2 ranks, math workers, code sandboxes): killed twice, at two seeded moments;
- `thinktoggle export` (2 ranks, card and plots): killed twice;
- `thinktoggle run` (the demo recipe, generate → export): killed twice, in one chain of reruns;
- the trainer: killed after its first checkpoint, resumed, and compared weight by weight with an uninterrupted run.

After every kill, every parquet a reader can see opens in full (no half-written shard visible); after the rerun,
the same record ids as the uninterrupted run, none lost, none duplicated, and the stats identity holds.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from reliability_helpers import ROOT, assert_every_visible_parquet_opens, kill_group_when, run_cli, visible_parquet

sys.path.insert(0, str(ROOT / "bench"))
from make_synthetic_rows import write_synthetic_rows  # noqa: E402

DEMO = ROOT / "recipes" / "demo-curation.yaml"


def seeded_delays(seed: int, n: int, longest: float) -> list[float]:
    """n kill moments in (0.3 s, half an uninterrupted run), the same on every run of the test. Each kill hits a
    rerun of the previous one, which skips what was completed: later moments must come early enough too."""
    rng = random.Random(seed)
    return [rng.uniform(0.3, max(0.6, 0.5 * longest)) for _ in range(n)]


def column_multiset(folder: Path, column: str) -> Counter:
    values: Counter = Counter()
    for path in visible_parquet(folder):
        values.update(pq.read_table(path, columns=[column])[column].to_pylist())
    return values


def row_multiset(folder: Path) -> Counter:
    """Whole published rows (they carry no id): equal multisets mean none lost and none duplicated."""
    rows: Counter = Counter()
    for path in visible_parquet(folder):
        rows.update(json.dumps(r, sort_keys=True) for r in pq.read_table(path).to_pylist())
    return rows


def timed(command: list[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return time.monotonic() - started


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> Path:
    """1,200 published rows (math with gold, chat, science, a few code rows for the sandbox), in 2 files."""
    folder = tmp_path_factory.mktemp("rows")
    write_synthetic_rows(folder, 1200, rows_per_file=600, seed=1, code_share=0.03)
    return folder


@pytest.fixture(scope="module")
def filtered(rows, tmp_path_factory) -> tuple[Path, float]:
    """The uninterrupted filter run, and how long it took."""
    out = tmp_path_factory.mktemp("filter") / "ref"
    seconds = timed(filter_command(rows, out))
    return out, seconds


def filter_command(rows: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "thinktoggle.cli.main", "filter", str(rows), "--out", str(out)] + [
        "--tasks",
        "2",
        "--workers",
        "2",
        "--math-row-timeout-s",
        "5",
    ]


def test_filter_killed_twice_then_rerun_matches_the_uninterrupted_run(rows, filtered, tmp_path):
    reference, seconds = filtered
    out = tmp_path / "killed"
    for delay in seeded_delays(7, 2, seconds):
        killed = kill_group_when(filter_command(rows, out), lambda: False, timeout=delay)
        assert killed, "the filter finished before its kill moment"
        if out.exists():
            assert_every_visible_parquet_opens(out)
    done = subprocess.run(filter_command(rows, out), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_every_visible_parquet_opens(out)
    assert not list(out.rglob(".*.tmp-*")), "temp files of the killed writes were left behind"
    for part in ("kept", "dropped", "failed"):
        mine, theirs = column_multiset(out / part, "id"), column_multiset(reference / part, "id")
        assert mine == theirs, part
        assert all(n == 1 for n in mine.values()), f"{part}: duplicated ids"
    stats, ref_stats = (json.loads((d / "stats.json").read_text()) for d in (out, reference))
    assert stats["in"] == 1200 == stats["kept"] + stats["dropped"] + stats["failed"]
    assert {k: stats[k] for k in ("kept", "dropped", "failed")} == {
        k: ref_stats[k] for k in ("kept", "dropped", "failed")
    }


def export_command(inputs: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "thinktoggle.cli.main", "export", str(inputs), "--out", str(out)] + [
        "--tasks",
        "2",
        "--workers",
        "2",
        "--upstream-stats",
        "",
        "--recipe",
        "",
    ]


def test_export_killed_twice_then_rerun_matches_the_uninterrupted_run(filtered, tmp_path):
    kept = filtered[0] / "kept"
    reference = tmp_path / "ref"
    seconds = timed(export_command(kept, reference))
    expected = row_multiset(reference / "SFT")
    assert sum(expected.values()) == json.loads((filtered[0] / "stats.json").read_text())["kept"]
    out = tmp_path / "killed"
    for delay in seeded_delays(8, 2, seconds):
        assert kill_group_when(export_command(kept, out), lambda: False, timeout=delay), "export finished first"
        if out.exists():
            assert_every_visible_parquet_opens(out)
    done = subprocess.run(export_command(kept, out), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert row_multiset(out / "SFT") == expected
    assert not list(out.rglob(".*.tmp-*")), "temp files of the killed writes were left behind"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["in"] == stats["kept"] == sum(expected.values()) and stats["failed"] == 0
    assert (out / "README.md").exists()
    check = run_cli("check", str(out / "SFT"), timeout=120)
    assert check.returncode == 0, check.stdout[-2000:]


def run_command(out: Path) -> list[str]:
    small = ["--set", "sources.0.limit=12", "--set", "sources.1.limit=4"]
    return [sys.executable, "-m", "thinktoggle.cli.main", "run", str(DEMO), "--set", f"out_dir={out}", *small]


def test_run_killed_at_two_moments_then_rerun_matches_the_uninterrupted_run(tmp_path):
    reference = tmp_path / "ref"
    seconds = timed(run_command(reference))
    out = tmp_path / "killed"
    for delay in seeded_delays(9, 2, seconds):
        assert kill_group_when(run_command(out), lambda: False, timeout=delay), "the run finished first"
        if out.exists():
            assert_every_visible_parquet_opens(out)
    done = subprocess.run(run_command(out), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_every_visible_parquet_opens(out)
    for stage in ("generate/kept", "filter/kept", "dedup", "decontaminate", "mix"):
        mine, theirs = column_multiset(out / stage, "id"), column_multiset(reference / stage, "id")
        assert mine == theirs and all(n == 1 for n in mine.values()), stage
    assert row_multiset(out / "export" / "SFT") == row_multiset(reference / "export" / "SFT")
    funnel, ref_funnel = (json.loads((d / "stats.json").read_text()) for d in (out, reference))
    assert funnel["consistent"]
    assert [(s["stage"], s["in"], s["kept"]) for s in funnel["stages"]] == [
        (s["stage"], s["in"], s["kept"]) for s in ref_funnel["stages"]
    ]


TRAIN_SCRIPT = """
import sys
from pathlib import Path
from thinktoggle.training.trainer import TrainConfig, TinyModelConfig, run_train
config = TrainConfig(tiny=TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                     vocab_size=300), seq_len=256, batch_size=4, max_steps=40, warmup_steps=2, save_every=4,
                     log_every=1, threads=1, progress=False, device="cpu")
run_train(config, [Path(sys.argv[1])], Path(sys.argv[2]))
"""


def test_trainer_killed_resumes_from_its_last_checkpoint(tmp_path):
    pytest.importorskip("thinktoggle.training.trainer")
    import torch
    from safetensors.torch import load_file

    data = tmp_path / "rows"
    write_synthetic_rows(data, 120, seed=2)
    command = [sys.executable, "-c", TRAIN_SCRIPT, str(data)]
    ref = tmp_path / "ref"
    subprocess.run([*command, str(ref)], check=True, capture_output=True, timeout=300)
    out = tmp_path / "killed"

    def checkpointed() -> bool:
        return any((p / "trainer_state.json").exists() for p in (out / "checkpoints").glob("step-*"))

    assert kill_group_when([*command, str(out)], checkpointed, timeout=240), "training finished first"
    # what a reader can see after the kill is whole: a checkpoint folder under its final name is complete
    steps = sorted(p.name for p in (out / "checkpoints").glob("step-*"))
    assert steps and all((out / "checkpoints" / s / "model.safetensors").exists() for s in steps)
    assert not (out / "train_summary.json").exists() and steps[-1] < "step-000040"  # killed before the end
    done = subprocess.run([*command, str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming from {out / 'checkpoints' / steps[-1]}" in done.stdout
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 40
    mine, theirs = load_file(out / "model" / "model.safetensors"), load_file(ref / "model" / "model.safetensors")
    assert mine.keys() == theirs.keys()
    for name in mine:  # same data order, optimizer state and schedule: the same weights as never stopping
        assert torch.allclose(mine[name], theirs[name], atol=1e-5), name


def generate_command(out: Path) -> list[str]:
    return [sys.executable, "-m", "thinktoggle.cli.main", "generate", "--out", str(out), "--procedural"] + [
        "arithmetic",
        "--count",
        "1200",
        "--engine-kind",
        "procedural",
        "--sampling-on-n",
        "2",
        "--shard-size",
        "10",
        "--dp",
        "2",
        "--no-progress",
    ]


def test_generate_on_two_ranks_killed_then_rerun_matches_the_uninterrupted_run(tmp_path):
    """The generators suite kills a one-rank run; here two data-parallel ranks write parts at the same time."""
    reference = tmp_path / "ref"
    timed(generate_command(reference))
    expected = column_multiset(reference / "kept", "id")
    out = tmp_path / "killed"
    parts = random.Random(10).randint(20, 200)  # of 240 parts (120 shards x 2 modes)

    def enough_parts() -> bool:
        return (out / "kept").exists() and len(list((out / "kept").glob("shard-*.parquet"))) >= parts

    assert kill_group_when(generate_command(out), enough_parts, timeout=120), "generate finished first"
    assert_every_visible_parquet_opens(out)
    done = subprocess.run(generate_command(out), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert column_multiset(out / "kept", "id") == expected and all(n == 1 for n in expected.values())
    stats = json.loads((out / "stats.json").read_text())
    ref_stats = json.loads((reference / "stats.json").read_text())
    assert stats["in"] == stats["kept"] == ref_stats["kept"] == sum(expected.values()) and stats["failed"] == 0


def test_a_rerun_rank_clears_what_its_killed_try_left(tmp_path):
    """The deterministic case behind the kill tests: a rank killed while writing its stats (or a shard) leaves
    hidden temp files that no later write replaces; the rank's rerun starts by removing them, and only its own."""
    from thinktoggle.core.outputs import clear_partial

    left = [
        tmp_path / "ranks" / ".rank00000.json.tmp-562ad7df",  # found by a kill in a fresh-clone CI run
        tmp_path / "ranks" / "rank00000.json",
        tmp_path / "kept" / "rank00000-00000.parquet",
        tmp_path / "kept" / ".rank00000-00001.parquet.tmp-0badf00d",
    ]
    kept = [tmp_path / "ranks" / "rank00001.json", tmp_path / "kept" / "rank00001-00000.parquet"]
    for path in [*left, *kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    clear_partial(tmp_path, "rank00000")
    assert not any(path.exists() for path in left) and all(path.exists() for path in kept)
