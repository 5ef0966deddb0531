"""`thinktoggle run RECIPE`: run, resume or plan a recipe."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import traceback
from pathlib import Path

import click


@click.command(short_help="run, resume or plan a recipe")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="override a setting, e.g. --set mix.caps.math=20 (the value is read as YAML)",
)
@click.option("--dry-run", is_flag=True, help="print the plan (and sbatch scripts), run nothing")
@click.option("--from", "from_stage", metavar="STAGE", help="rerun this stage and the ones after it")
@click.option("--only", metavar="STAGE", help="rerun this stage alone")
@click.option("--force", is_flag=True, help="accept a changed recipe: rerun the stages it changes")
def run(
    recipe: Path, overrides: tuple[str, ...], dry_run: bool, from_stage: str | None, only: str | None, force: bool
) -> None:
    """Run a RECIPE's stages in order (see recipes/demo-curation.yaml); a rerun skips completed stages and
    resumes a partial one."""
    from thinktoggle.core.registry import StageUnavailable
    from thinktoggle.runner.recipe import RecipeError, load_recipe
    from thinktoggle.runner.run import RunError, StageFailed, run_recipe
    from thinktoggle.runner.slurm import SlurmPlanError
    from thinktoggle.schemas.io import InputError

    if from_stage and only:
        raise click.BadParameter("use --from or --only, not both", param_hint="--only")
    try:
        loaded = load_recipe(recipe, list(overrides))
        if dry_run:
            from thinktoggle.runner.plan import print_plan

            print_plan(loaded, from_stage=from_stage, only=only)
            return
        log_path = Path(loaded.out_dir) / "run.log"
        with _datatrove_info_to(log_path):
            result = run_recipe(loaded, from_stage=from_stage, only=only, force=force, report=_report)
    except RecipeError as exc:
        click.echo(f"error: invalid recipe ({len(exc.problems)} problem(s)):", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)
    except (RunError, StageUnavailable, SlurmPlanError, InputError, FileNotFoundError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except StageFailed as exc:
        # The stage's message is shown; its traceback goes to the run's log (THINKTOGGLE_DEBUG=1 shows it here).
        if os.environ.get("THINKTOGGLE_DEBUG"):
            raise
        if isinstance(exc.error, InputError):  # bad input (a missing file, an unreachable Hub id): its line says all
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        log = Path(loaded.out_dir) / "run.log"
        with log.open("a") as handle:
            traceback.print_exception(exc.error, file=handle)
        click.echo(f"error: {exc}", err=True)
        click.echo(f"the traceback is in {log}; fix and rerun the same command to resume", err=True)
        sys.exit(1)
    if result.submitted:
        print(f"submitted {len(result.submitted)} Slurm job(s): {' '.join(result.submitted)}")
        print(f"rerun `thinktoggle run {recipe}` after they finish to see the funnel in {result.root / 'stats.json'}")
    else:
        print(
            f"run complete: {result.root} (ran {len(result.ran)}, skipped {len(result.skipped)}); funnel in stats.json"
        )
        _write_report(result.root)


def _write_report(root: Path) -> None:
    """The run's report.html; the data is complete without it, so a failure is a warning, not the exit status."""
    from thinktoggle.report import write_report

    try:
        print(f"report: {write_report(root)}  (thinktoggle view {root} to browse the rows)")
    except Exception as exc:
        click.echo(f"warning: report.html not written: {type(exc).__name__}: {exc}", err=True)


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
