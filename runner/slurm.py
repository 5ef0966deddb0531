"""A recipe on Slurm: one sbatch job per stage, chained with `afterok` dependencies.

Why a job per stage (and not the stage's own datatrove executors on Slurm): several stages finish with work
that needs all ranks' results (merging stats, MinHash clustering, mixing, the card), which a login node
cannot do while the arrays are still queued. So each stage's job runs the stage *on its allocation* with a
local executor (the recipe's `tasks`/`workers`), writes its stats and completion marker there, and the next
stage's job starts when it succeeded. The allocation is sized for the stage's concurrent tasks:
`cpus_per_task` and `gpus_per_task` times min(tasks, workers), on `nodes_per_task` nodes.

The jobs are datatrove `SlurmPipelineExecutor`s (sbatch script, pickled job, requeue on preemption,
completion markers), so a resubmitted chain skips stages whose jobs already completed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thinktoggle.core.executors import ExecutorConfig, make_executor
from thinktoggle.schemas.io import atomic_write_text


class SlurmPlanError(ValueError):
    """A stage's executor settings that a one-job-per-stage chain cannot honour."""


def allocation(executor: ExecutorConfig, stage: str = "stage") -> ExecutorConfig:
    """The Slurm request for one stage job: the per-task resources times the tasks that run at once."""
    if executor.nodes_per_task != 1:
        # srun would start the stage once per node; a stage job runs its tasks on one node.
        raise SlurmPlanError(
            f"{stage}.executor.nodes_per_task: a stage runs as one job on one node under `thinktoggle run`; "
            f"got {executor.nodes_per_task} (multi-node stages: run the stage's own command with a slurm executor)"
        )
    at_once = executor.tasks if executor.workers == -1 else max(1, min(executor.workers, executor.tasks))
    return dataclasses.replace(
        executor,
        tasks=1,
        workers=-1,
        cpus_per_task=executor.cpus_per_task * at_once,
        gpus_per_task=executor.gpus_per_task * at_once,
    )


class RunStageJob:
    """The body of a stage's sbatch job: load the run's resolved recipe and run the stage here, locally."""

    name = "thinktoggle stage"
    type = "runner"

    def __init__(self, resolved_recipe: str, run_root: str, stage: str, stages: dict[str, Any]) -> None:
        self.resolved_recipe = resolved_recipe
        self.run_root = run_root
        self.stage = stage
        self.stages = stages

    def __call__(self, data=None, rank: int = 0, world_size: int = 1):
        from thinktoggle.runner.recipe import load_recipe
        from thinktoggle.runner.run import RunLayout, plan_steps, run_stage, write_run_stats

        recipe = load_recipe(self.resolved_recipe, [f"out_dir={self.run_root}"], stages=self.stages)
        layout = RunLayout(Path(self.run_root))
        steps = plan_steps(recipe, self.stages)
        step = next(s for s in steps if s.name == self.stage)
        if not layout.is_complete(recipe, step.name):
            local = dataclasses.replace(step.section.executor, type="local")
            run_stage(step, recipe, layout, executor=local)
        write_run_stats(recipe, steps, layout)
        yield from ()


def stage_executor(recipe: Any, step: Any, layout: Any, stages: dict[str, Any], depends: Any = None, **extra: Any):
    """The SlurmPipelineExecutor that runs `step` as one sbatch job."""
    root = layout.root.resolve()
    job = RunStageJob(str(root / "recipe.resolved.yaml"), str(root), step.name, stages)
    return make_executor(
        allocation(step.section.executor, step.name),
        [job],
        root / ".slurm" / step.name,
        job_name=f"{recipe.name}-{step.name}",
        depends=depends,
        **extra,
    )


def _submitted_path(layout: Any) -> Path:
    return layout.root / ".run" / "slurm_jobs.json"


def queued_jobs(job_ids: list[str]) -> set[str]:
    """Which of `job_ids` Slurm still lists (pending or running). Without `squeue`, all of them (cannot tell)."""
    if not job_ids:
        return set()
    try:
        listed = subprocess.run(
            ["squeue", "-h", "-o", "%F", "-j", ",".join(job_ids)], capture_output=True, text=True, timeout=60
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return set(job_ids)
    if listed.returncode != 0:  # squeue exits 1 for ids it no longer knows: none of them is queued
        return set()
    return {line.strip() for line in listed.stdout.splitlines()} & set(job_ids)


def submit_chain(
    recipe: Any,
    steps: list,
    layout: Any,
    stages: dict[str, Any],
    report: Callable[[str], None] = print,
    force: bool = False,
) -> list[str]:
    """Submit every incomplete stage as a job that waits for the previous one. Returns `stage=job id` lines.

    Refuses (unless `force`) while jobs of an earlier submission for those stages are still queued or running,
    so that running the command twice does not start every stage twice.
    """
    for step in steps:
        if step.section.executor.type != "slurm":
            raise SlurmPlanError(
                f"{step.name}.executor.type: a Slurm run submits every stage; got {step.section.executor.type}"
            )
    record_path = _submitted_path(layout)
    earlier = json.loads(record_path.read_text()) if record_path.exists() else {}
    todo = [s for s in steps if not layout.is_complete(recipe, s.name)]
    waiting = queued_jobs(sorted({str(earlier[s.name]) for s in todo if s.name in earlier}))
    if waiting and not force:
        names = [s.name for s in todo if str(earlier.get(s.name)) in waiting]
        raise SlurmPlanError(
            f"stage(s) {', '.join(names)} already submitted (job(s) {', '.join(sorted(waiting))}) and still queued "
            "or running (or squeue is missing); wait for them, scancel them, or use --force to submit again"
        )
    submitted: list[str] = []
    previous = None
    for step in steps:
        if step not in todo:
            report(f"{step.name}: complete, not submitted")
            continue
        executor = stage_executor(recipe, step, layout, stages, depends=previous)
        executor.run()  # sbatch; launches `previous` first if it has not been
        submitted.append(f"{step.name}={executor.job_id}")
        earlier[step.name] = str(executor.job_id)
        atomic_write_text(json.dumps(earlier, indent=2) + "\n", record_path)
        after = f" (after job {previous.job_id})" if previous is not None and previous.job_id not in (None, -1) else ""
        script = executor.logging_dir.resolve_paths("launch_script.slurm")
        report(f"{step.name}: submitted as job {executor.job_id}{after}; script {script}")
        previous = executor
    return submitted


def sbatch_plan(recipe: Any, steps: list, layout: Any, stages: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(stage, sbatch command line, launch script) for each stage, generated exactly as `submit_chain` would
    submit them, without submitting or writing anything into the run folder."""
    plan = []
    scratch = Path(tempfile.mkdtemp(prefix="thinktoggle-plan-"))
    try:
        previous_name = None
        for step in steps:
            logs = scratch / step.name
            executor = stage_executor(recipe, step, layout, stages, slurm_logs_folder=str(logs))
            script = executor.get_launch_file_contents(
                executor.get_sbatch_args(1),
                f"srun -l -n {executor.nodes_per_task} launch_pickled_pipeline "
                f"{layout.root.resolve() / '.slurm' / step.name / 'executor.pik'}",
            )
            script = script.replace(str(logs), str(layout.root.resolve() / ".slurm" / step.name / "slurm_logs"))
            command = "sbatch" + (f" --dependency=afterok:<{previous_name} job id>" if previous_name else "")
            plan.append((step.name, command, script))
            previous_name = step.name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return plan
