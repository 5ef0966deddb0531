"""`thinktoggle run RECIPE`: run, resume or plan a recipe (registered in cli/main.py STAGE_COMMANDS)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import traceback
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True, soft_wrap=True)  # an error line names file:line: never wrap it (greppable)


def run(
    recipe: Path = typer.Argument(..., help="a YAML recipe (see recipes/demo-curation.yaml)"),
    overrides: list[str] = typer.Option(
        [], "--set", help="override a setting, e.g. --set mix.caps.math=20 (the value is read as YAML)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan (and sbatch scripts), run nothing"),
    from_stage: str | None = typer.Option(None, "--from", help="rerun this stage and the ones after it"),
    only: str | None = typer.Option(None, "--only", help="rerun this stage alone"),
    force: bool = typer.Option(False, "--force", help="accept a changed recipe: rerun the stages it changes"),
):
    """Run a recipe's stages in order; a rerun skips completed stages and resumes a partial one."""
    from thinktoggle.runner.recipe import RecipeError, load_recipe
    from thinktoggle.runner.run import RunError, StageFailed, run_recipe
    from thinktoggle.runner.slurm import SlurmPlanError
    from thinktoggle.core.registry import StageUnavailable
    from thinktoggle.schemas.io import InputError

    if from_stage and only:
        raise typer.BadParameter("use --from or --only, not both", param_hint="--only")
    try:
        loaded = load_recipe(recipe, overrides)
        if dry_run:
            from thinktoggle.runner.plan import print_plan

            print_plan(loaded, from_stage=from_stage, only=only)
            return
        log_path = Path(loaded.out_dir) / "run.log"
        with _datatrove_info_to(log_path):
            result = run_recipe(loaded, from_stage=from_stage, only=only, force=force, report=_report)
    except RecipeError as exc:
        err.print(f"[red]error:[/red] invalid recipe ({len(exc.problems)} problem(s)):")
        for problem in exc.problems:
            err.print(f"  {escape(problem)}", highlight=False)
        raise typer.Exit(2) from None
    except (RunError, StageUnavailable, SlurmPlanError, InputError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except StageFailed as exc:
        # The stage's message is shown; its traceback goes to the run's log (THINKTOGGLE_DEBUG=1 shows it here).
        if os.environ.get("THINKTOGGLE_DEBUG"):
            raise
        log = Path(loaded.out_dir) / "run.log"
        with log.open("a") as handle:
            traceback.print_exception(exc.error, file=handle)
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        err.print(f"the traceback is in {escape(str(log))}; fix and rerun the same command to resume")
        raise typer.Exit(1) from None
    if result.submitted:
        print(f"submitted {len(result.submitted)} Slurm job(s): {' '.join(result.submitted)}")
        print(f"rerun `thinktoggle run {recipe}` after they finish to see the funnel in {result.root / 'stats.json'}")
    else:
        print(
            f"run complete: {result.root} (ran {len(result.ran)}, skipped {len(result.skipped)}); funnel in stats.json"
        )


def _report(line: str) -> None:
    print(line, flush=True)


# datatrove logs every rank's start, pipeline and stats at INFO on stderr; the run's own lines say what
# matters, so those records go to out_dir/run.log (warnings, errors and progress bars stay on stderr).
_DATATROVE_INFO = re.compile(r"^(\[NODE \d+\] )?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \| (DEBUG|INFO|SUCCESS) ")


class _LogFilter(io.TextIOBase):
    def __init__(self, terminal, log) -> None:
        self.terminal, self.log = terminal, log

    def write(self, text: str) -> int:
        (self.log if _DATATROVE_INFO.match(text) else self.terminal).write(text)
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()

    def fileno(self) -> int:
        return self.terminal.fileno()


@contextlib.contextmanager
def _datatrove_info_to(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        original = sys.stderr
        sys.stderr = _LogFilter(original, log)
        try:
            yield
        finally:
            sys.stderr = original
