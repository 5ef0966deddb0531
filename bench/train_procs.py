"""The trainer's tokens/s in 1 process against 2 data-parallel processes (torchrun, gloo) on the same job.

    .venv/bin/python bench/train_procs.py [--prompts 2000] [--steps 100] [--rounds 2] [--json OUT]

The job is bench/train.py's (the demo's tiny Llama, d=64, 4 layers; mod-10 chains on and off; packed rows of
256 tokens) with the same global batch: 6 rows per micro-step in one process, 3 per rank in two; 1 torch
thread per process, fp32. Anchor: the 1-process run. Timed: the training loop (train_summary.json: rank 0's
loop, the tokens of every rank). The runs alternate over `--rounds`; the final losses show both learned the same.
On a 0.3M-parameter model the all-reduce of the gradients and the rank's Python work per step weigh as much as
the maths, so this measures the data-parallel machinery's overhead, not a speed-up one would see on GPUs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from train import make_records, save_initial_model, write_published  # noqa: E402  (bench/train.py's job)


def run(config, data: Path, out: Path) -> dict:
    from thinktoggle.training.trainer import run_train

    run_train(config, [data], out)
    summary = json.loads((out / "train_summary.json").read_text())
    return {
        "tokens_per_s": summary["tokens_per_s"],
        "seconds": summary["seconds"],
        "tokens": summary["tokens_trained"],
        "final_loss": summary["final_loss"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    from thinktoggle.training.trainer import TrainConfig

    console = Console()
    records = make_records(args.prompts)
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_published(records, root / "data")
        save_initial_model(records, root / "init")
        one = TrainConfig(
            model=str(root / "init"),
            seq_len=256,
            batch_size=6,
            max_steps=args.steps,
            warmup_steps=min(100, args.steps // 10),
            save_every=0,
            log_every=10,
            threads=1,
            progress=False,
        )
        two = replace(one, batch_size=3, nproc_per_node=2)
        for r in range(args.rounds):
            result = {}
            for name, config in (("1 process", one), ("2 processes", two)):
                console.print(f"round {r + 1}/{args.rounds}: {name}", highlight=False)
                result[name] = run(config, data, root / f"{name.replace(' ', '-')}-{r}")
                console.print(f"  {result[name]}", highlight=False)
            result["ratio"] = result["2 processes"]["tokens_per_s"] / result["1 process"]["tokens_per_s"]
            rounds.append(result)

    table = Table(title=f"Trainer on CPU, {args.steps} steps x 6 rows x 256 tokens: 1 vs 2 processes (gloo)")
    for column in ("round", "1 proc tok/s", "2 procs tok/s", "ratio", "1 proc loss", "2 procs loss"):
        table.add_column(column, justify="right")
    for i, r in enumerate(rounds, 1):
        one_r, two_r = r["1 process"], r["2 processes"]
        table.add_row(
            str(i),
            f"{one_r['tokens_per_s']:,.0f}",
            f"{two_r['tokens_per_s']:,.0f}",
            f"{r['ratio']:.2f}x",
            f"{one_r['final_loss']:.5f}",
            f"{two_r['final_loss']:.5f}",
        )
    console.print(table)
    console.print(
        f"median ratio (2 processes / 1 process tokens per second): {statistics.median(r['ratio'] for r in rounds):.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
