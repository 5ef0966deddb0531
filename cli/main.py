"""The `thinktoggle` command line (click).

Two kinds of commands:
- one per stage of core/registry.py (sources, generate, filter, dedup, ..., validate), built from the stage's
  config dataclass by cli/stage_command.py the first time it is asked for: `thinktoggle --help` lists them from
  the registry without importing any stage;
- hand-written ones: check, ingest, run (cli/run.py), publish, demo.

Heavy imports (vLLM, torch, datasets) happen inside the commands, so `--help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from thinktoggle.cli.report import report, view
from thinktoggle.cli.run import run
from thinktoggle.core.registry import STAGE_ORDER, STAGES

LAST = ("run", "publish", "demo")  # listed after the stages


def fail(message: str, code: int = 2) -> NoReturn:
    """One `error:` line on stderr, then exit (2: bad input or options)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def stage_names() -> list[str]:
    return [s for s in STAGE_ORDER if s in STAGES] + [s for s in STAGES if s not in STAGE_ORDER]


class ThinktoggleGroup(click.Group):
    """The hand-written commands, and one command per registered stage, built on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        first = [name for name in self.commands if name not in LAST]
        return [*first, *stage_names(), *(name for name in LAST if name in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in STAGES:
            from thinktoggle.cli.stage_command import build_stage_command

            return build_stage_command(STAGES[cmd_name])
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Stages are listed by their registry summary: building their commands would import every stage.
        stages = [(name, STAGES[name].summary) for name in stage_names()]
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        names = [name for name in self.list_commands(ctx) if name in self.commands]
        others = [(name, self.commands[name].get_short_help_str(limit)) for name in names]
        with formatter.section("Stages (each a recipe section: its settings are the command's options)"):
            formatter.write_dl(stages)
        with formatter.section("Commands"):
            formatter.write_dl(others)


@click.group(
    cls=ThinktoggleGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)
def app() -> None:
    """Build reasoning-toggle (detailed thinking on/off) post-training data and train a toggle model on it."""


@app.command(short_help="validate published rows: file:line: field: reason")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--layout",
    type=click.Choice(["auto", "llama-nemotron", "nemotron-v1", "nemotron-v2"]),
    default="auto",
    show_default=True,
    help="the layout rows must follow (auto: each row's own, by its columns)",
)
def check(paths: tuple[Path, ...], layout: str) -> None:
    """Validate published rows (PATHS: jsonl/parquet files, folders, saved HF datasets, stage folders); print
    `file:line: field: reason` per problem and a summary."""
    from thinktoggle.curation.check import check_paths
    from thinktoggle.schemas.io import InputError

    try:
        summary = check_paths(list(paths), report=lambda line: print(line, flush=True), layout=layout)
    except InputError as exc:
        fail(str(exc))
    print(summary.line())
    sys.exit(0 if summary.invalid == 0 and summary.rows > 0 else 1)


@app.command(short_help="NVIDIA's published rows (files or Hub id) → records")
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="the stage folder to write")
@click.option("--category", help="keep only this category")
@click.option("--reasoning", help="keep only this mode (on|off)")
@click.option("--used-in-training", help="keep rows used for e.g. Nano")
@click.option("--split", help="Hub split (default: every split)")
@click.option("--config", help="Hub config name")
@click.option("--quiet", "-q", is_flag=True, help="do not print each rejected row")
def ingest(
    sources: tuple[str, ...],
    out_dir: Path,
    category: str | None,
    reasoning: str | None,
    used_in_training: str | None,
    split: str | None,
    config: str | None,
    quiet: bool,
) -> None:
    """Ingest published rows (Llama-Nemotron v1/v1.1, or Nemotron-Post-Training-Dataset-v1/v2 conversations;
    SOURCES: files, folders or a Hub id ORG/NAME) into schema-checked records: kept/, dropped/ (not selected), failed/ (invalid rows), stats.json."""
    from thinktoggle.core.layout import stats_path, written_folders
    from thinktoggle.curation.ingest import Selection
    from thinktoggle.curation.ingest import ingest as run_ingest
    from thinktoggle.schemas.io import InputError
    from thinktoggle.schemas.record import RECORD_CATEGORIES, is_record_category

    if reasoning not in (None, "on", "off"):
        raise click.BadParameter("must be 'on' or 'off'", param_hint="--reasoning")
    if category is not None and not is_record_category(category):  # a typo would otherwise select nothing
        raise click.BadParameter(
            f"must be one of {', '.join(RECORD_CATEGORIES)} or multilingual_<lang>", param_hint="--category"
        )
    try:
        summary = run_ingest(
            list(sources),
            out_dir,
            Selection(category=category, reasoning=reasoning, used_in_training=used_in_training),
            split=split,
            config=config,
            report=None if quiet else (lambda line: print(line, flush=True)),
        )
    except (InputError, FileNotFoundError) as exc:
        fail(str(exc))
    print(summary.line())
    for folder in written_folders(out_dir):
        print(f"  {folder}/")
    if stats_path(out_dir).is_file():
        print(f"  {stats_path(out_dir)}")
    sys.exit(1 if summary.rows > 0 and summary.rejected == summary.rows else 0)


@app.command(short_help="upload an exported folder to the Hub")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--repo-id", required=True, help="ORG/NAME of the dataset repo")
@click.option("--private", is_flag=True, help="create the repo private")
@click.option("--revision", help="branch to upload to (created if missing)")
@click.option("--dry-run", is_flag=True, help="list every file and its size; upload nothing")
def publish(folder: Path, repo_id: str, private: bool, revision: str | None, dry_run: bool) -> None:
    """Upload an exported FOLDER (with README.md) to the Hugging Face Hub (token: HF_TOKEN or `hf auth login`)."""
    from thinktoggle.curation.publish import PublishError
    from thinktoggle.curation.publish import publish as run_publish

    try:
        run_publish(folder, repo_id, private=private, revision=revision, dry_run=dry_run)
    except PublishError as exc:
        fail(str(exc))


@app.command(short_help="the whole mission offline, CPU only")
@click.option("--out", "out_dir", default=Path("runs/demo"), show_default=True, type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, help="prompts, model init and data order")
@click.option("--small", is_flag=True, help="a reduced size (seconds, for tests): no toggle expected")
@click.option("--engine", default="auto", show_default=True, help="validation/distillation engine: vllm | transformers")
def demo(out_dir: Path, seed: int, small: bool, engine: str) -> None:
    """The whole mission offline: data → filters → curation → export → train a tiny toggle model → validate → distill."""
    from thinktoggle.demo import DemoError, run_demo

    try:
        run_demo(out_dir, seed=seed, small=small, engine=engine)
    except DemoError as exc:
        fail(str(exc))


app.add_command(run)
app.add_command(report)
app.add_command(view)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
