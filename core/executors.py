"""The recipe's `executor:` section, and the datatrove executor a stage runs its ranks with.

Stages build a datatrove pipeline (a list of PipelineSteps) and hand it to `make_executor`, which runs the ranks
here (Local) or on a Ray cluster (Ray). Completion markers in `logging_dir` make reruns skip finished ranks.

`type: slurm` never reaches a stage's own executor: under Slurm a whole stage runs as one sbatch job with a
local executor inside (the one Slurm policy, in core/slurm.py), so `make_executor` refuses it.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ExecutorType = Literal["local", "slurm", "ray"]


@dataclass(frozen=True)
class ExecutorConfig:
    """Where a stage's ranks run. `tasks` splits the input; `workers` bounds how many run at once."""

    type: ExecutorType = "local"
    tasks: int = 1
    workers: int = -1  # -1: as many as tasks
    # Slurm (the stage's one job asks for the per-task resources times the tasks that run at once) and Ray
    partition: str = ""
    time: str = "24:00:00"  # the Slurm job's time limit; a wait for the job gives up a grace period after it
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 2.0
    gpus_per_task: int = 0
    nodes_per_task: int = 1
    qos: str = "normal"
    venv_path: str = ""
    env_command: str = ""
    sbatch_args: dict[str, Any] = field(default_factory=dict)
    # Ray
    ray_address: str = ""  # "" : RAY_ADDRESS or a new local cluster; "auto": the running one

    def __post_init__(self) -> None:
        if self.type not in ("local", "slurm", "ray"):
            raise ValueError(f"type: expected local, slurm or ray, got {self.type!r}")
        if self.tasks < 1:
            raise ValueError(f"tasks: must be >= 1, got {self.tasks}")
        if self.workers == 0 or self.workers < -1:
            raise ValueError(f"workers: must be >= 1, or -1 for as many as tasks, got {self.workers}")
        if self.type == "slurm" and not self.partition:
            raise ValueError("partition: required when type is slurm")
        if self.type == "slurm":
            slurm_time_seconds(self.time)  # raises naming the field
        if min(self.cpus_per_task, self.nodes_per_task) < 1 or self.gpus_per_task < 0:
            raise ValueError("cpus_per_task and nodes_per_task must be >= 1, gpus_per_task >= 0")


_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def slurm_time_seconds(text: str) -> int:
    """Seconds in a Slurm time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (as sbatch --time)."""
    match = _SLURM_TIME.match(str(text).strip())
    if not match:
        raise ValueError(f"time: expected a Slurm time limit (HH:MM:SS, D-HH:MM:SS, MM, ...), got {text!r}")
    days, first, second, third = match.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
        return int(days) * 86400 + hours * 3600 + minutes * 60 + seconds
    if third is not None:  # HH:MM:SS
        return int(first) * 3600 + int(second) * 60 + int(third)
    return int(first) * 60 + int(second or 0)  # MM or MM:SS


def make_executor(
    config: ExecutorConfig,
    pipeline: list,
    logging_dir: str | Path,
    job_name: str = "thinktoggle",
    depends: Any = None,
    skip_completed: bool = True,
):
    """A datatrove executor for `pipeline`: Local runs the ranks here, Ray on the cluster. Slurm is refused."""
    # What every datatrove executor takes alike.
    common = {
        "pipeline": pipeline,
        "tasks": config.tasks,
        "workers": config.workers,
        "logging_dir": str(logging_dir),
        "depends": depends,
        "skip_completed": skip_completed,
    }
    if config.type == "local":
        from datatrove.executor import LocalPipelineExecutor

        return LocalPipelineExecutor(**common)
    if config.type == "slurm":
        # A Slurm array per pipeline would return at submission and leave the stage's merge (and any wait for the
        # ranks) to this process: exactly what the one policy avoids.
        raise ValueError(
            f"{job_name}: executor.type slurm reached the stage's own executor. Under Slurm a stage runs as one "
            "sbatch job that runs it inside a Slurm allocation with a local executor: submit it with "
            "`thinktoggle run` or thinktoggle.core.slurm.call_stage (see core/slurm.py)"
        )
    if config.type == "ray":
        import ray
        from datatrove.executor import RayPipelineExecutor

        if not ray.is_initialized():  # join RAY_ADDRESS's cluster if set, else start a local one
            ray.init(address=config.ray_address or None, ignore_reinit_error=True, log_to_driver=False)
        have = ray.cluster_resources()
        if config.gpus_per_task > have.get("GPU", 0) or config.cpus_per_task > have.get("CPU", 0):
            # Ray waits (silently, forever) for resources no node has, unless an autoscaler adds them.
            warnings.warn(
                f"executor: each Ray task asks for {config.cpus_per_task} CPU(s) and {config.gpus_per_task} GPU(s); "
                f"the cluster has {have.get('CPU', 0):g} CPU(s) and {have.get('GPU', 0):g} GPU(s) now: tasks will "
                "wait until an autoscaler adds nodes that fit",
                stacklevel=2,
            )

        return RayPipelineExecutor(
            **common,
            cpus_per_task=config.cpus_per_task,
            mem_per_cpu_gb=config.mem_per_cpu_gb,
            gpus_per_task=config.gpus_per_task,
            nodes_per_task=config.nodes_per_task,
        )
    raise ValueError(f"executor.type: expected local, slurm or ray, got {config.type!r}")
