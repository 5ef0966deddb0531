"""The `thinktoggle` command line: one subcommand per stage.

Each stage's command lives beside its code (e.g. `thinktoggle.cli.generate`) and is registered here;
heavy imports (vLLM, torch) happen inside the commands so that `--help` stays instant.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="thinktoggle",
    help="Build reasoning-toggle (detailed thinking on/off) post-training data and train a toggle model on it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)  # soft_wrap: an error line stays one greppable line
out = Console()


@app.command()
def check(
    paths: list[Path] = typer.Argument(..., help="jsonl/parquet files, folders of them, saved HF datasets"),
):
    """Validate published rows; print `file:line: field: reason` per problem and a summary."""
    from thinktoggle.curation.check import check_paths
    from thinktoggle.schemas.io import InputError

    try:
        summary = check_paths(paths, report=lambda line: print(line, flush=True))
    except InputError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    print(summary.line())
    raise typer.Exit(0 if summary.invalid == 0 and summary.rows > 0 else 1)


@app.command()
def ingest(
    sources: list[str] = typer.Argument(..., help="files, folders, or a Hub dataset id (org/name)"),
    out_dir: Path = typer.Option(..., "--out", help="output folder for v1.1 parquet shards"),
    category: str | None = typer.Option(None, help="keep only this category"),
    reasoning: str | None = typer.Option(None, help="keep only this mode (on|off)"),
    used_in_training: str | None = typer.Option(None, "--used-in-training", help="keep rows used for e.g. Nano"),
    split: str | None = typer.Option(None, help="Hub split (default: every split)"),
    config: str | None = typer.Option(None, help="Hub config name"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="do not print each rejected row"),
):
    """Ingest the published dataset (v1 or v1.1 rows) into schema-checked v1.1 parquet shards."""
    from thinktoggle.curation.ingest import Selection
    from thinktoggle.curation.ingest import ingest as run_ingest
    from thinktoggle.schemas.io import InputError

    if reasoning not in (None, "on", "off"):
        raise typer.BadParameter("must be 'on' or 'off'", param_hint="--reasoning")
    from thinktoggle.schemas.record import CATEGORIES

    if category is not None and category not in CATEGORIES:  # a typo would otherwise select nothing, silently
        raise typer.BadParameter(f"must be one of {', '.join(CATEGORIES)}", param_hint="--category")
    try:
        summary = run_ingest(
            sources,
            out_dir,
            Selection(category=category, reasoning=reasoning, used_in_training=used_in_training),
            split=split,
            config=config,
            report=None if quiet else (lambda line: print(line, flush=True)),
        )
    except (InputError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    print(summary.line())
    print(f"wrote {len(summary.shards)} shard(s) to {out_dir}; rejected rows in {out_dir / 'rejected'}")


# Stage commands that live beside their code: (command name, module, function).
STAGE_COMMANDS: list[tuple[str, str, str]] = [
    ("generate", "thinktoggle.cli.generate", "generate"),
    ("run", "thinktoggle.cli.run", "run"),
    ("filter", "thinktoggle.cli.filter", "filter_command"),
    ("dedup", "thinktoggle.cli.curation", "dedup"),
    ("decontaminate", "thinktoggle.cli.curation", "decontaminate"),
    ("mix", "thinktoggle.cli.curation", "mix"),
    ("export", "thinktoggle.cli.curation", "export"),
    ("publish", "thinktoggle.cli.curation", "publish"),
    ("train", "thinktoggle.cli.training", "train"),
    ("validate", "thinktoggle.cli.training", "validate"),
    ("demo", "thinktoggle.cli.training", "demo"),
]


def _register_stage_commands() -> None:
    for name, module, function in STAGE_COMMANDS:
        app.command(name=name)(getattr(importlib.import_module(module), function))


_register_stage_commands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
