"""Run a recipe: its stages in order, each reading the previous stage's kept records, resumable and refusable.

Run folder (`out_dir`):

    recipe.resolved.yaml      the recipe with every default filled in (what actually ran)
    stats.json                the run's funnel: in / kept / dropped / failed per stage and reason
    .run/fingerprint          hash of the resolved recipe; a rerun with a different one is refused unless --force
    .run/done/<stage>.json    completion marker, written atomically after the stage's own stats.json
    .run/lock                 held (flock) by the one `thinktoggle run` using the folder
    run.log                   datatrove's INFO logs and the traceback of a failed stage
    <stage>/                  each stage's folder: kept records under <stage>/kept/, dropped, stats.json, logs/

A rerun skips stages whose marker matches the stage's fingerprint (its settings and everything upstream) and
reruns a partial stage into its folder: resumable stages (datatrove completion markers, record-level resume)
pick up where they stopped, the others start that stage afresh.

On Slurm each stage becomes one sbatch job (see `slurm.py`) chained with `afterok` dependencies, and the run
command returns once the chain is submitted; local and Ray runs execute here and wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thinktoggle.core.registry import STAGES, StageSpec
from thinktoggle.core.stats import StageStats
from thinktoggle.runner.recipe import Recipe, RecipeError
from thinktoggle.schemas.io import atomic_write_text

RESOLVED_NAME = "recipe.resolved.yaml"
STATE_DIR = ".run"


class RunError(Exception):
    """A run that cannot proceed for a reason the user can fix (changed recipe, missing upstream stage)."""


class StageFailed(Exception):
    """A stage raised: which stage, and the exception (kept as __cause__ for the traceback)."""

    def __init__(self, stage: str, error: BaseException) -> None:
        self.stage, self.error = stage, error
        super().__init__(f"stage {stage} failed: {type(error).__name__}: {error}")


@dataclass(frozen=True)
class StageStep:
    """One stage as the runner sees it: where it reads from and writes to."""

    section: Any  # recipe.StageSection
    spec: StageSpec
    inputs: tuple[Path, ...]
    out_dir: Path

    @property
    def name(self) -> str:
        return self.section.name


@dataclass
class RunResult:
    root: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)  # Slurm: stages handed to the scheduler
    stats: dict[str, StageStats] = field(default_factory=dict)


class RunLayout:
    """Paths of one run folder, and its markers."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def resolved(self) -> Path:
        return self.root / RESOLVED_NAME

    @property
    def fingerprint_file(self) -> Path:
        return self.root / STATE_DIR / "fingerprint"

    def marker(self, stage: str) -> Path:
        return self.root / STATE_DIR / "done" / f"{stage}.json"

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def read_marker(self, stage: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.marker(stage).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_complete(self, recipe: Recipe, stage: str) -> bool:
        marker = self.read_marker(stage)
        return marker is not None and marker.get("fingerprint") == recipe.stage_fingerprint(stage)

    def write_marker(self, recipe: Recipe, stage: str, stats: StageStats, seconds: float) -> None:
        marker = {
            "stage": stage,
            "fingerprint": recipe.stage_fingerprint(stage),
            "stats": stats.to_dict(),
            "seconds": round(seconds, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write_text(json.dumps(marker, indent=2) + "\n", self.marker(stage))

    @contextlib.contextmanager
    def lock(self):
        """Hold the run folder for one `thinktoggle run` at a time (released by the OS if the process dies)."""
        path = self.root / STATE_DIR / "lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                raise RunError(f"{self.root} is in use by another `thinktoggle run` (pid {holder})") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def clear_stage(self, stage: str) -> None:
        self.marker(stage).unlink(missing_ok=True)
        shutil.rmtree(self.stage_dir(stage), ignore_errors=True)


def plan_steps(recipe: Recipe, stages: dict[str, StageSpec] = STAGES) -> list[StageStep]:
    """Each stage with its inputs (the previous stage's kept records, or the recipe's `inputs:`) and folder."""
    root = Path(recipe.out_dir)
    steps: list[StageStep] = []
    previous: StageStep | None = None
    for section in recipe.stages:
        spec = stages[section.name]
        if not spec.takes_inputs:
            inputs: tuple[Path, ...] = ()
        elif previous is not None:
            inputs = (previous.spec.kept_dir(previous.out_dir),)
        elif recipe.inputs:
            inputs = tuple(Path(p) for p in recipe.inputs)
        else:
            raise RecipeError(
                [f"{recipe.source}: {section.name}: the first stage reads records: add `inputs: [paths]` to the recipe"]
            )
        step = StageStep(section, spec, inputs, root / section.name)
        steps.append(step)
        previous = step
    return steps


def select_steps(steps: list[StageStep], from_stage: str | None, only: str | None) -> list[StageStep]:
    names = [s.name for s in steps]
    for flag, wanted in (("--from", from_stage), ("--only", only)):
        if wanted is not None and wanted not in names:
            raise RunError(f"{flag} {wanted}: the recipe has no such stage (stages: {', '.join(names)})")
    if only is not None:
        return [s for s in steps if s.name == only]
    if from_stage is not None:
        return steps[names.index(from_stage) :]
    return steps


def _recipe_diff(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                lines.append(f"{sub}: removed (was {old[key]!r})")
            elif key not in old:
                lines.append(f"{sub}: added ({new[key]!r})")
            else:
                lines.extend(_recipe_diff(old[key], new[key], sub))
        return lines
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def check_same_recipe(recipe: Recipe, layout: RunLayout, force: bool) -> list[str]:
    """Refuse a changed recipe in a used folder (unless forced). Returns the changed keys."""
    if not layout.fingerprint_file.exists():
        return []
    if layout.fingerprint_file.read_text().strip() == recipe.fingerprint():
        return []
    try:
        old = yaml.safe_load(layout.resolved.read_text())
    except (OSError, yaml.YAMLError):
        old = {}
    changes = _recipe_diff(old or {}, recipe.to_dict()) or ["(the resolved recipe differs)"]
    if not force:
        shown = "\n  ".join(changes[:20])
        raise RunError(
            f"{layout.root} was made by a different recipe; changed:\n  {shown}\n"
            "use another out_dir, or --force to rerun the stages whose settings changed"
        )
    return changes


def save_resolved(recipe: Recipe, layout: RunLayout) -> None:
    atomic_write_text(recipe.to_yaml(), layout.resolved)
    atomic_write_text(recipe.fingerprint() + "\n", layout.fingerprint_file)


def run_stage(step: StageStep, recipe: Recipe, layout: RunLayout, executor: Any = None) -> StageStats:
    """Run one stage into its folder, check its accounting, then write its completion marker."""
    run = step.spec.run_function()
    for path in step.inputs:
        if not Path(path).exists():
            raise RunError(f"{step.name}: input {path} does not exist (did the previous stage run?)")
    if not step.spec.resumable:
        shutil.rmtree(step.out_dir, ignore_errors=True)  # a half-done non-resumable stage starts afresh
    step.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stats = run(step.section.config, list(step.inputs), step.out_dir, executor or step.section.executor)
    if not isinstance(stats, StageStats):
        raise TypeError(f"{step.spec.module}.{step.spec.run} returned {type(stats).__name__}, not StageStats")
    stats.check()
    if not (step.out_dir / "stats.json").exists():
        stats.write(step.out_dir / "stats.json")
    layout.write_marker(recipe, step.name, stats, time.monotonic() - started)
    return stats


def _describe_stats(stats: StageStats) -> str:
    text = f"in {stats.n_in}, kept {stats.kept}, dropped {stats.n_dropped}, failed {stats.n_failed}"
    top = sorted({**stats.dropped, **stats.failed}.items(), key=lambda kv: -kv[1])[:3]
    if top:
        text += " (" + ", ".join(f"{r}: {n}" for r, n in top) + ")"
    return text


def run_recipe(
    recipe: Recipe,
    from_stage: str | None = None,
    only: str | None = None,
    force: bool = False,
    stages: dict[str, StageSpec] = STAGES,
    report: Callable[[str], None] = print,
) -> RunResult:
    """Run (or resume) the recipe's stages. Slurm recipes are submitted as a chain of sbatch jobs instead."""
    steps = plan_steps(recipe, stages)
    selected = select_steps(steps, from_stage, only)
    layout = RunLayout(Path(recipe.out_dir))
    with layout.lock():
        return _run_locked(recipe, steps, selected, layout, from_stage, only, force, stages, report)


def _run_locked(
    recipe: Recipe,
    steps: list[StageStep],
    selected: list[StageStep],
    layout: RunLayout,
    from_stage: str | None,
    only: str | None,
    force: bool,
    stages: dict[str, StageSpec],
    report: Callable[[str], None],
) -> RunResult:
    result = RunResult(layout.root)
    changes = check_same_recipe(recipe, layout, force)
    if changes:
        report(f"--force: recipe changed ({len(changes)} key(s)); stages whose settings changed will rerun")
        for marker in sorted((layout.root / STATE_DIR / "done").glob("*.json")):
            if marker.stem not in recipe.stage_names:  # a stage taken out of the recipe: its outputs are stale
                marker.unlink()
                report(f"{marker.stem}: no longer in the recipe; {layout.stage_dir(marker.stem)} is stale")
    save_resolved(recipe, layout)

    # Stages before the selection must be complete: their kept records are the selection's inputs.
    first = steps.index(selected[0])
    if first > 0 and not layout.is_complete(recipe, steps[first - 1].name):
        missing = [s.name for s in steps[:first] if not layout.is_complete(recipe, s.name)]
        raise RunError(f"cannot start at {selected[0].name}: earlier stage(s) not complete: {', '.join(missing)}")
    # --from / --only rerun their stages afresh; whatever read the old outputs is stale from then on.
    if from_stage or only:
        for step in steps[first:]:
            if step in selected:
                layout.clear_stage(step.name)
            else:
                layout.marker(step.name).unlink(missing_ok=True)

    executor_types = {s.section.executor.type for s in selected}
    if "slurm" in executor_types:
        from thinktoggle.runner.slurm import submit_chain

        result.submitted = submit_chain(recipe, selected, layout, stages, report=report, force=force)
        result.skipped = [s.name for s in selected if layout.is_complete(recipe, s.name)]
        if not result.submitted:  # everything had finished: the funnel from the jobs' markers
            write_run_stats(recipe, steps, layout)
        return result

    for index, step in enumerate(selected, 1):
        label = f"[{index}/{len(selected)}] {step.name}"
        if layout.is_complete(recipe, step.name):
            marker = layout.read_marker(step.name) or {}
            result.stats[step.name] = StageStats.from_dict(marker["stats"])
            result.skipped.append(step.name)
            report(f"{label}: complete, skipped ({_describe_stats(result.stats[step.name])})")
            continue
        if layout.read_marker(step.name) is not None:  # done under other settings (--force): redo it
            layout.clear_stage(step.name)
        report(f"{label}: running -> {step.out_dir}")
        started = time.monotonic()
        try:
            stats = run_stage(step, recipe, layout)
        except (RunError, KeyboardInterrupt):
            raise
        except Exception as exc:  # named, so that the CLI can say which stage and keep the traceback in a log
            raise StageFailed(step.name, exc) from exc
        result.stats[step.name] = stats
        result.ran.append(step.name)
        report(f"{label}: done in {time.monotonic() - started:.1f}s: {_describe_stats(stats)}")

    write_run_stats(recipe, steps, layout)
    return result


def write_run_stats(recipe: Recipe, steps: list[StageStep], layout: RunLayout) -> Path:
    """The run-level funnel (core/funnel.py) at the run root, from every completed stage's marker."""
    from thinktoggle.core.funnel import build_funnel

    done = [(step, layout.read_marker(step.name)) for step in steps]
    done = [(step, marker) for step, marker in done if marker is not None]
    funnel = build_funnel(StageStats.from_dict(marker["stats"]) for _, marker in done)
    data = {
        "recipe": recipe.name,
        "fingerprint": recipe.fingerprint(),
        "folders": {marker["stats"]["stage"]: step.name for step, marker in done},
        "seconds": {step.name: marker.get("seconds") for step, marker in done},
        **funnel,
    }
    return atomic_write_text(json.dumps(data, indent=2) + "\n", layout.root / "stats.json")
