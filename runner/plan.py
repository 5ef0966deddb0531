"""`thinktoggle run --dry-run`: what a run would do, without running, importing vLLM or touching the network.

Prints one row per stage (status in the run folder, inputs, output, engines/models, executor, GPUs per
task, jobs) and, for Slurm recipes, each stage's sbatch command and launch script exactly as they would
be submitted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from thinktoggle.core.registry import STAGES, StageSpec
from thinktoggle.runner.recipe import Recipe
from thinktoggle.runner.run import RunLayout, StageStep, check_same_recipe, plan_steps, select_steps

# Config fields that name what does the work: shown in the plan's "engines / models" column.
ENGINE_FIELDS = (
    "engine",
    "model",
    "model_name",
    "base_model",
    "teacher",
    "teacher_on",
    "teacher_off",
    "backend",
    "kind",
)
# Fields that name models / data read from the Hub or disk: listed in full under the table.
MODEL_FIELDS = ("model", "teacher_on", "teacher_off")
DATA_FIELDS = ("hub_id", "path", "prompts")


def engines(config: Any, limit: int = 4, names: tuple[str, ...] = ENGINE_FIELDS) -> list[str]:
    """`path=value` for every engine/model-like field in a stage config (nested dataclasses and lists too)."""
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                child = getattr(value, f.name)
                sub = f"{path}.{f.name}" if path else f.name
                if f.name in names and isinstance(child, str | int | float) and child != "":
                    found.append(f"{sub}={child}")
                else:
                    walk(child, sub)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, f"{path}.{i}")

    walk(config, "")
    unique = list(dict.fromkeys(found))
    if limit <= 0:
        return unique
    return unique[:limit] + ([f"(+{len(unique) - limit} more)"] if len(unique) > limit else [])


def _status(layout: RunLayout, recipe: Recipe, step: StageStep) -> str:
    if layout.is_complete(recipe, step.name):
        return "[green]done[/green] (skip)"
    # A Slurm job recorded for it (the plan does not ask squeue; a run checks it before submitting anything).
    submitted, jobs = "", layout.root / ".run" / "slurm_jobs.json"
    if jobs.exists():
        from thinktoggle.core.slurm import read_jobs

        if (job := read_jobs(jobs).get(step.name)) is not None:
            submitted = f"\n[dim]Slurm job {job.job_id} recorded[/dim]"
    if layout.read_marker(step.name) is not None:
        return "[yellow]changed[/yellow] (rerun)" + submitted
    if step.out_dir.exists():
        return (
            "[yellow]partial[/yellow] (resume)" if step.spec.resumable else "[yellow]partial[/yellow] (redo)"
        ) + submitted
    return "to run" + submitted


def _jobs(executor: Any) -> str:
    at_once = executor.tasks if executor.workers == -1 else min(executor.workers, executor.tasks)
    if executor.type == "local":
        return f"{executor.tasks} task(s), {at_once} at once"
    if executor.type == "ray":
        return f"{executor.tasks} Ray task(s), {at_once} at once, {executor.nodes_per_task} node(s) each"
    return f"1 sbatch job: {executor.tasks} task(s), {at_once} at once on {executor.nodes_per_task} node(s)"


def _short(path: Path, root: Path) -> str:
    """A path inside the run folder relative to it (the table's title names the folder)."""
    try:
        return str(path.relative_to(root)) + "/"
    except ValueError:
        return str(path)


def print_plan(
    recipe: Recipe,
    from_stage: str | None = None,
    only: str | None = None,
    stages: dict[str, StageSpec] = STAGES,
    console: Console | None = None,
) -> list[StageStep]:
    console = console or Console(width=max(140, Console().width))  # a plan is wide; let it be
    layout = RunLayout(Path(recipe.out_dir))
    steps = plan_steps(recipe, stages)
    selected = select_steps(steps, from_stage, only)
    table = Table(title=f"{escape(recipe.name)}: {len(selected)} stage(s) -> {escape(recipe.out_dir)}")
    for column in ("#", "stage", "status", "reads", "writes", "engines / models", "executor", "GPUs/task", "jobs"):
        table.add_column(column, overflow="fold", no_wrap=column in ("#", "stage", "GPUs/task"))
    for index, step in enumerate(selected, 1):
        executor = step.section.executor
        inputs = ", ".join(_short(p, layout.root) for p in step.inputs) or "(sources in config)"
        table.add_row(
            str(index),
            f"{step.name}\n[dim]{escape(step.spec.summary)}[/dim]" if step.spec.summary else step.name,
            _status(layout, recipe, step),
            escape(inputs),
            escape(_short(step.spec.kept_dir(step.out_dir), layout.root)),
            escape("\n".join(engines(step.section.config)) or "-"),
            executor.type + (f" ({executor.partition})" if executor.type == "slurm" else ""),
            str(executor.gpus_per_task),
            _jobs(executor),
        )
    console.print(table)
    for label, names in (("models", MODEL_FIELDS), ("data", DATA_FIELDS)):
        named = [
            item if s.section.list_field else f"{s.name}.{item}"  # `sources.0.path`, not `sources.sources.0.path`
            for s in selected
            for item in engines(s.section.config, 0, names)
        ]
        if named:  # in full (the table folds long names): what the run will download or read
            console.print(f"{label}: " + escape(", ".join(named)), highlight=False, soft_wrap=True)
    if any(s.section.executor.type == "slurm" for s in selected):
        from thinktoggle.runner.slurm import sbatch_plan

        console.print("\n[bold]sbatch plan[/bold] (one job per stage, each after the previous one succeeded):")
        for name, command, script in sbatch_plan(recipe, selected, layout, stages):
            console.print(f"\n[bold]# {name}[/bold]: {escape(command)}")
            console.print(escape(script.strip()), highlight=False, soft_wrap=True)
    changes = check_same_recipe(recipe, layout, force=True)
    if changes:
        console.print(
            f"\n[yellow]{escape(str(layout.root))} was made by a different recipe[/yellow] (a run needs --force; "
            "stages whose settings changed rerun):\n  " + escape("\n  ".join(changes[:20])),
            highlight=False,
        )
    console.print(f"\nresolved recipe -> {escape(str(layout.resolved))} (fingerprint {recipe.fingerprint()})")
    return selected
