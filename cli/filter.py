"""`thinktoggle filter`: verify records and keep the good ones (registered in cli/main.py STAGE_COMMANDS)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True, soft_wrap=True)  # error lines name paths: never wrap them


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def filter_command(
    inputs: list[Path] = typer.Argument(..., help="published rows (jsonl/parquet) or internal-record parquet"),
    out_dir: Path = typer.Option(..., "--out", help="output folder: kept/, dropped/, failed/, stats.json"),
    only: str = typer.Option("format,length,repetition,math,code", help="filters to run, comma-separated"),
    workers: int = typer.Option(1, "--workers", help="parallel ranks (datatrove tasks), one core each"),
    keep: str = typer.Option("pass", help="verdicts kept: pass, unverifiable:no_gold, math:unverifiable, ..."),
    math_timeout: float = typer.Option(10.0, "--math-timeout", help="seconds per math row (hard kill)"),
    majority: bool = typer.Option(True, "--majority/--no-majority", help="vote on math rows without gold"),
    min_agreement: float = typer.Option(0.5, "--min-agreement", help="majority: share of samples that agree"),
    min_samples: int = typer.Option(2, "--min-samples", help="majority: smallest group that may vote"),
    max_tokens_on: int = typer.Option(32768, "--max-tokens-on", help="length limit of on outputs"),
    max_tokens_off: int = typer.Option(8192, "--max-tokens-off", help="length limit of off outputs"),
    tokenizer: str = typer.Option("bytes", help="'bytes' (UTF-8 bytes / --bytes-per-token) or a tokenizer folder"),
    bytes_per_token: float = typer.Option(4.0, "--bytes-per-token", help="for the bytes counter"),
    repetition: float = typer.Option(0.3, "--max-repeated", help="max share of repeated 10-grams"),
    code_workers: int = typer.Option(1, "--code-workers", help="concurrent sandboxes per rank"),
    unsafe_code: bool = typer.Option(False, "--unsafe-code", help="run code WITHOUT a sandbox if bwrap is missing"),
    write_records: bool = typer.Option(False, "--write-records", help="also write records/ (internal parquet)"),
):
    """Verify math answers, run code in a sandbox, enforce the toggle format, length and repetition limits."""
    from thinktoggle.core.executors import ExecutorConfig
    from thinktoggle.filters.length import LengthConfig
    from thinktoggle.filters.repetition import RepetitionConfig
    from thinktoggle.filters.stage import CodeConfig, FilterConfig, MathConfig, count_input_rows, run_filter
    from thinktoggle.schemas.io import InputError

    try:
        config = FilterConfig(
            only=_split(only),
            keep=_split(keep),
            math=MathConfig(
                row_timeout_s=math_timeout, majority=majority, min_agreement=min_agreement, min_samples=min_samples
            ),
            length=LengthConfig(
                max_tokens_on=max_tokens_on,
                max_tokens_off=max_tokens_off,
                tokenizer=tokenizer,
                bytes_per_token=bytes_per_token,
            ),
            repetition=replace(RepetitionConfig(), max_repeated_fraction=repetition),
            code=CodeConfig(workers=code_workers, allow_unsafe=unsafe_code),
            write_records=write_records,
        )
        total = count_input_rows(inputs)
    except (ValueError, InputError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    executor = ExecutorConfig(tasks=max(1, workers), workers=max(1, workers))
    try:
        stats = _run_with_progress(lambda: run_filter(config, inputs, out_dir, executor), out_dir, total)
    except (ValueError, InputError, RuntimeError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    reasons = sorted({**stats.dropped, **stats.failed}.items(), key=lambda kv: -kv[1])[:5]
    print(
        f"in {stats.n_in}, kept {stats.kept}, dropped {stats.n_dropped}, failed {stats.n_failed}"
        + (" (" + ", ".join(f"{r}: {n}" for r, n in reasons) + ")" if reasons else "")
    )
    print(f"kept rows in {out_dir / 'kept'}; dropped in {out_dir / 'dropped'}; stats in {out_dir / 'stats.json'}")


def _run_with_progress(work, out_dir: Path, total: int | None):
    """Run `work` while a rich progress bar follows the ranks' progress files."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from thinktoggle.filters.stage import progress_done

    stop = threading.Event()
    with Progress(
        TextColumn("filter"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=False
    ) as progress:
        task = progress.add_task("filter", total=total)

        def follow() -> None:
            while not stop.wait(0.5):
                progress.update(task, completed=progress_done(out_dir))

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        try:
            result = work()
        finally:
            stop.set()
            follower.join()
        progress.update(task, completed=result.n_in if total is None else total)
    return result
