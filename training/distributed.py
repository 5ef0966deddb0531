"""Data-parallel training: which rank this process is, the process group, and the launcher.

`torchrun --nproc-per-node N -m thinktoggle.cli.main train ...` starts N copies of the trainer; so does
`thinktoggle train --nproc-per-node N` (train.nproc_per_node in a recipe), which runs torchrun itself: it
writes the config beside the run (`launch.json`) and starts `python -m torch.distributed.run` on this module.
gloo on CPU, NCCL on GPUs. When one rank dies (kill -9, OOM), torchrun stops the others and exits non-zero;
a rerun resumes every rank from the last checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any


def rank_and_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) in a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init_process_group(device: str) -> None:
    """Join the process group torchrun set up (a no-op in a single process)."""
    import torch
    import torch.distributed as dist

    _, world, local_rank = rank_and_world()
    if world == 1 or dist.is_initialized():
        return
    if device == "cuda":
        torch.cuda.set_device(local_rank)
    # long timeout: rank 0 reads and counts the whole dataset while the others wait at the first barrier
    dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=timedelta(hours=2))


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum of each value over the ranks (float64 on CPU: gloo everywhere, exact for counts)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return tensor.tolist()


def destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def launch(config: Any, inputs: list[Path], out_dir: Path) -> None:
    """Run the trainer in `config.nproc_per_node` processes under torchrun on this node; raise if a rank failed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = out_dir / "launch.json"
    spec.write_text(json.dumps({"config": asdict(config), "inputs": [str(p) for p in inputs]}, indent=2) + "\n")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free rendezvous port on this node
        f"--nproc-per-node={config.nproc_per_node}",
        "--max-restarts=0",  # a dead rank ends the run; the rerun resumes from the last checkpoint
        "-m",
        "thinktoggle.training.distributed",
        str(spec),
        str(out_dir),
    ]
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"train: a rank of the {config.nproc_per_node}-process run exited with {done.returncode} (see above); "
            f"rerun the same command to resume from the last checkpoint in {out_dir / 'checkpoints'}"
        )


def main(spec_path: str, out_dir: str) -> None:
    """One rank, as torchrun starts it from `launch`."""
    from thinktoggle.training.trainer import TinyModelConfig, TrainConfig, run_train

    spec = json.loads(Path(spec_path).read_text())
    fields = spec["config"]
    config = TrainConfig(**{**fields, "tiny": TinyModelConfig(**fields["tiny"])})
    run_train(config, [Path(p) for p in spec["inputs"]], Path(out_dir))


if __name__ == "__main__":
    main(*sys.argv[1:])
