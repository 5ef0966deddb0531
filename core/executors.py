"""The recipe's `executor:` section, mapped onto datatrove's Local, Slurm and Ray executors.

Stages build a datatrove pipeline (a list of PipelineSteps) and hand it to `make_executor`; the executor
decides where ranks run. Completion markers in `logging_dir` make reruns skip finished ranks.
"""

from __future__ import annotations

import math
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
    # Slurm and Ray
    partition: str = ""
    time: str = "24:00:00"
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
        if min(self.cpus_per_task, self.nodes_per_task) < 1 or self.gpus_per_task < 0:
            raise ValueError("cpus_per_task and nodes_per_task must be >= 1, gpus_per_task >= 0")


def make_executor(
    config: ExecutorConfig,
    pipeline: list,
    logging_dir: str | Path,
    job_name: str = "thinktoggle",
    depends: Any = None,
    skip_completed: bool = True,
    **slurm_options: Any,
):
    """A datatrove executor for `pipeline`. Local runs now; Slurm submits sbatch arrays; Ray uses the cluster.

    `slurm_options` go to SlurmPipelineExecutor as they are (e.g. `slurm_logs_folder`, `max_array_size`).
    """
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
        from datatrove.executor import SlurmPipelineExecutor

        if not config.partition:
            raise ValueError("executor.partition: required for slurm")
        return SlurmPipelineExecutor(
            **common,
            time=config.time,
            partition=config.partition,
            cpus_per_task=config.cpus_per_task,
            mem_per_cpu_gb=math.ceil(config.mem_per_cpu_gb),  # sbatch takes whole gigabytes
            gpus_per_task=config.gpus_per_task,
            nodes_per_task=config.nodes_per_task,
            qos=config.qos,
            job_name=job_name,
            venv_path=config.venv_path or None,
            env_command=config.env_command or None,
            sbatch_args=dict(config.sbatch_args) or None,
            **slurm_options,
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
