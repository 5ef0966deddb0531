"""Two data-parallel ranks (torchrun, gloo on this CPU) train as one process with the same global batch, and a
kill -9 of one rank followed by a rerun resumes both from the last checkpoint.

One 2-rank run serves both tests (each launch costs two interpreters importing torch and transformers): it is
killed once it has a checkpoint, rerun to the end, and its loss curve is then compared with one process's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from test_trainer import TINY, write_dataset

from thinktoggle.training.trainer import run_train

CONFIG = replace(TINY, max_steps=60, save_every=5, log_every=5)  # 4 rows of 128 tokens per micro-step in all
OPTIONS = ["--seq-len", "128", "--max-steps", "60", "--warmup-steps", "5", "--save-every", "5", "--log-every", "5"]
OPTIONS += ["--lr", "0.003", "--threads", "1", "--no-progress", "--tiny-hidden-size", "64", "--tiny-num-layers", "2"]
OPTIONS += ["--tiny-num-heads", "2", "--tiny-intermediate-size", "128", "--tiny-vocab-size", "300"]


def two_ranks(data: Path, out: Path) -> list[str]:
    """`thinktoggle train` in 2 processes of 2 rows each: the 1-process run's 4 rows per micro-step."""
    return [sys.executable, "-m", "thinktoggle.cli.main", "train", str(data), "--out", str(out)] + [
        "--nproc-per-node",
        "2",
        "--batch-size",
        "2",
        *OPTIONS,
    ]


def rank_pid(launcher: int, rank: int) -> int | None:
    import psutil

    for child in psutil.Process(launcher).children(recursive=True):
        try:
            if "thinktoggle.training.distributed" in child.cmdline() and child.environ().get("RANK") == str(rank):
                return child.pid
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ddp")
    data = write_dataset(root / "data")
    assert CONFIG.batch_size == 4
    run_train(CONFIG, [data], root / "one")

    out = root / "two"
    launcher = subprocess.Popen(
        two_ranks(data, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:  # kill -9 rank 1 once a checkpoint is complete (rank 0 saves it, so both ranks are past step 5)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and launcher.poll() is None:
            if (out / "checkpoints" / "step-000005" / "trainer_state.json").exists():
                break
            time.sleep(0.01)
        victim = rank_pid(launcher.pid, 1)
        assert victim is not None and launcher.poll() is None, "training finished before the kill"
        os.kill(victim, signal.SIGKILL)
        killed_output, _ = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    last = sorted(p.name for p in (out / "checkpoints").glob("step-*"))[-1]
    rerun = subprocess.run(two_ranks(data, out), capture_output=True, text=True, timeout=300)
    return {"root": root, "killed": (launcher.returncode, killed_output), "last": last, "rerun": rerun}


def curve(run: Path) -> list[tuple[int, float]]:
    return [(e["step"], e["loss"]) for e in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_two_ranks_give_the_loss_curve_of_one_process(runs):
    assert runs["rerun"].returncode == 0, runs["rerun"].stdout[-3000:] + runs["rerun"].stderr[-3000:]
    one, two = curve(runs["root"] / "one"), curve(runs["root"] / "two")
    assert [s for s, _ in two] == [s for s, _ in one] == list(range(5, 61, 5))  # every step logged once
    for (step, a), (_, b) in zip(one, two, strict=True):
        assert abs(a - b) < 1e-4, (step, a, b)
    assert one[-1][1] < 0.7 * one[0][1]  # it learned: the curves agree on something that moves
    summary = json.loads((runs["root"] / "two" / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 60


def test_a_killed_rank_stops_the_run_and_the_rerun_resumes_both_ranks(runs):
    import torch
    from safetensors.torch import load_file

    code, output = runs["killed"]
    assert code != 0 and "rerun the same command to resume" in output, output[-3000:]
    rerun = runs["rerun"]
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    checkpoint = runs["root"] / "two" / "checkpoints" / runs["last"]
    for rank in (0, 1):
        assert f"rank {rank}: resuming from {checkpoint}" in rerun.stdout, rerun.stdout[-3000:]
    assert runs["last"] < "step-000060" and not (runs["root"] / "two" / "checkpoints" / "init").exists()
    mine = load_file(runs["root"] / "two" / "model" / "model.safetensors")
    theirs = load_file(runs["root"] / "one" / "model" / "model.safetensors")
    for name in mine:  # the same data order, optimizer state and schedule as one uninterrupted process
        assert torch.allclose(mine[name], theirs[name], atol=1e-5), name
