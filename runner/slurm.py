"""A recipe on Slurm: one sbatch job per stage, chained with `afterok` dependencies (the policy: core/slurm.py).

Each stage's job runs the stage *on its allocation* with a local executor (the recipe's `tasks`/`workers`),
writes its stats and completion marker there, and the next stage's job starts when it succeeded. The allocation
is sized for the stage's concurrent tasks: `cpus_per_task` and `gpus_per_task` times min(tasks, workers), on one
node. `thinktoggle run` returns once the chain is queued, and records every job in `.run/slurm_jobs.json`.

A rerun looks at the recorded jobs of the stages that are not complete: one still queued or running is refused
(--force cancels it and submits again); one that left the queue without completing its stage, or that can never
start (its dependency failed), is reported once as an error naming the stage, the job, its state, its log and the
command that resumes the run; that command (or any rerun after the report) cancels what is left of the old chain
and submits the incomplete stages again, which resume from their own markers.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thinktoggle.core.slurm import (
    SlurmJob,
    SlurmPlanError,
    allocation,
    cancel,
    dead_error,
    job_executor,
    job_log,
    job_state,
    read_jobs,
    write_jobs,
)
from thinktoggle.runner.run import RESOLVED_NAME, RunError

__all__ = ["SlurmPlanError", "allocation", "sbatch_plan", "stage_executor", "submit_chain"]


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
    """The sbatch job (core/slurm.py) that runs `step` on its allocation."""
    root = layout.root.resolve()
    job = RunStageJob(str(root / RESOLVED_NAME), str(root), step.name, stages)
    return job_executor(
        step.section.executor,
        job,
        root / ".slurm" / step.name,
        job_name=f"{recipe.name}-{step.name}",
        stage=step.name,
        depends=depends,
        **extra,
    )


def _jobs_path(layout: Any) -> Path:
    return layout.root / ".run" / "slurm_jobs.json"


def resume_command(layout: Any) -> str:
    """The command that resumes the run in `layout`: the resolved recipe it recorded, into the same folder."""
    root = layout.root.resolve()
    return shlex.join(["thinktoggle", "run", str(root / RESOLVED_NAME), "--set", f"out_dir={root}"])


def _clear_earlier(
    todo: list, layout: Any, jobs: dict[str, SlurmJob], force: bool, report: Callable[[str], None]
) -> None:
    """Before submitting `todo`: refuse while their earlier jobs may still run (unless `force`), report a dead one
    not yet reported, and cancel whatever Slurm still lists of the earlier submission."""
    seen = [(step, jobs[step.name], job_state(jobs[step.name].job_id)) for step in todo if step.name in jobs]
    live = [(step, job) for step, job, state in seen if state.alive]
    dead = [(job, error) for _, job, state in seen if (error := dead_error(job, state)) is not None]
    if not force and any(not job.reported for job, _ in dead):  # the news first: a job that died
        for job, _ in dead:
            job.reported = True
        write_jobs(_jobs_path(layout), jobs)
        first = dead[0][1]
        others = [f"{job.stage} (job {job.job_id}: {error.state})" for job, error in dead[1:]]
        others += [f"{step.name} (job {job.job_id}: still queued or running)" for step, job in live]
        also = f"\nNot completing either: {'; '.join(others)}" if others else ""
        raise RunError(f"{first}{also}") from first
    if live and not force:
        raise SlurmPlanError(
            f"stage(s) {', '.join(step.name for step, _ in live)} already submitted "
            f"(job(s) {', '.join(job.job_id for _, job in live)}) and still queued or running (or squeue cannot "
            "tell); wait for them, or use --force to cancel them and submit again"
        )
    listed = [(step, job) for step, job, state in seen if state.listed]
    if listed:
        cancel(job.job_id for _, job in listed)
        for step, job in listed:
            report(f"{step.name}: cancelled the earlier job {job.job_id}")


def submit_chain(
    recipe: Any,
    steps: list,
    layout: Any,
    stages: dict[str, Any],
    report: Callable[[str], None] = print,
    force: bool = False,
) -> list[str]:
    """Submit every incomplete stage as a job that waits for the previous one. Returns `stage=job id` lines.

    Looks first at the jobs an earlier submission recorded for those stages (see the module docstring): running
    the command twice never starts a stage twice, and a job that died is reported, not silently resubmitted.
    """
    for step in steps:
        if step.section.executor.type != "slurm":
            raise SlurmPlanError(
                f"{step.name}.executor.type: a Slurm run submits every stage; got {step.section.executor.type}"
            )
    jobs = read_jobs(_jobs_path(layout))
    todo = [s for s in steps if not layout.is_complete(recipe, s.name)]
    _clear_earlier(todo, layout, jobs, force, report)
    resume = resume_command(layout)
    submitted: list[str] = []
    previous = None
    for step in steps:
        if step not in todo:
            report(f"{step.name}: complete, not submitted")
            continue
        # The stage is to run: an earlier job's completion marker must not make datatrove skip the submission.
        (layout.root / ".slurm" / step.name / "completions" / "00000").unlink(missing_ok=True)
        executor = stage_executor(recipe, step, layout, stages, depends=previous)
        executor.run()  # sbatch; launches `previous` first if it has not been
        submitted.append(f"{step.name}={executor.job_id}")
        jobs[step.name] = SlurmJob(
            step.name,
            str(executor.job_id),
            log=job_log(executor),
            resume=resume,
            time=step.section.executor.time,
            stage_logs=str(layout.stage_dir(step.name).resolve() / "logs"),
            submitted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        write_jobs(_jobs_path(layout), jobs)
        after = f" (after job {previous.job_id})" if previous is not None and previous.job_id not in (None, -1) else ""
        script = executor.logging_dir.resolve_paths("launch_script.slurm")
        report(f"{step.name}: submitted as job {executor.job_id}{after}; script {script}; log {job_log(executor)}")
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
