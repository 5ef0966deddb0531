"""`thinktoggle generate`: answer prompts in both modes with teacher models (registered in cli/main.py)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

err = Console(stderr=True)


def generate(
    out_dir: Path = typer.Option(..., "--out", help="output folder (rerun the same command to resume)"),
    prompts: list[Path] = typer.Option(
        [], "--prompts", help="prompt files/folders: prompt records (output empty) or published rows"
    ),
    procedural: str | None = typer.Option(None, "--procedural", help="built-in prompts: arithmetic | code"),
    count: int = typer.Option(100, "--count", help="how many built-in prompts (with --procedural)"),
    procedural_split: str = typer.Option("train", "--split", help="built-in prompts: train | heldout"),
    procedural_seed: int = typer.Option(0, "--procedural-seed", help="seed of the built-in prompts"),
    engine: str = typer.Option("procedural", "--engine", help="vllm | openai | procedural"),
    teacher_on: str = typer.Option("", "--teacher-on", help="reasoning teacher (model path/id or served name)"),
    teacher_off: str = typer.Option("", "--teacher-off", help="off teacher (default: the on teacher)"),
    base_url: str = typer.Option("", "--base-url", help="OpenAI-compatible server, e.g. http://host:8000/v1"),
    n: int = typer.Option(1, "--n", help="samples per prompt and mode"),
    n_off: int | None = typer.Option(
        None, "--n-off", help="samples per prompt in off mode (default: 1 when greedy, else --n)"
    ),
    max_tokens: int = typer.Option(1024, "--max-tokens"),
    temperature_on: float = typer.Option(0.6, "--temperature-on"),
    top_p_on: float = typer.Option(0.95, "--top-p-on"),
    temperature_off: float = typer.Option(0.0, "--temperature-off", help="0 = greedy (the paper's off mode)"),
    toggle: str = typer.Option("nemotron", "--toggle", help="nemotron | qwen3 | slash (both teachers)"),
    toggle_off: str | None = typer.Option(
        None, "--toggle-off", help="the off teacher's convention (default: --toggle)"
    ),
    seed: int = typer.Option(0, "--seed"),
    tp: int = typer.Option(1, "--tp", help="tensor parallel size (vllm)"),
    dp: int = typer.Option(1, "--dp", help="data-parallel ranks, one engine each"),
    dtype: str = typer.Option("auto", "--dtype"),
    max_model_len: int = typer.Option(0, "--max-model-len"),
    kv_cache_memory_bytes: int = typer.Option(0, "--kv-cache-memory-bytes", help="0: use --gpu-memory-utilization"),
    gpu_memory_utilization: float = typer.Option(0.9, "--gpu-memory-utilization"),
    enforce_eager: bool = typer.Option(False, "--enforce-eager"),
    concurrency: int = typer.Option(64, "--concurrency", help="requests in flight (openai)"),
    timeout: float = typer.Option(600.0, "--timeout", help="seconds per request (openai)"),
    retries: int = typer.Option(5, "--retries", help="retries on 429/5xx/connection errors (openai)"),
    backoff: float = typer.Option(1.0, "--backoff", help="first retry delay in seconds, doubled each time"),
    shard_size: int = typer.Option(1000, "--shard-size", help="prompts per shard (the unit of resume)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Answer prompts with "detailed thinking on" and "off" teachers: n samples each, resumable, with provenance."""
    from thinktoggle.generators.engines.base import SamplingConfig
    from thinktoggle.generators.generate import GenerateConfig, run_generate
    from thinktoggle.schemas.io import InputError

    inputs = list(prompts)
    if procedural:
        from thinktoggle.generators.procedural import procedural_records
        from thinktoggle.generators.sources import write_prompts

        try:
            records = procedural_records(procedural, count, seed=procedural_seed, split=procedural_split)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--procedural") from None
        name = f"{procedural}-{procedural_split}-{procedural_seed}-{count}.parquet"
        inputs.append(write_prompts(records, out_dir / ".procedural-prompts" / name))
    if not inputs:
        raise typer.BadParameter("give --prompts or --procedural", param_hint="--prompts")
    try:
        config = GenerateConfig(
            engine=engine,  # type: ignore[arg-type]
            teacher_on=teacher_on,
            teacher_off=teacher_off,
            toggle_on=toggle,
            toggle_off=toggle_off or toggle,
            sampling_on=SamplingConfig(n=n, temperature=temperature_on, top_p=top_p_on, max_tokens=max_tokens),
            sampling_off=SamplingConfig(
                n=n_off or (1 if temperature_off == 0 else n),
                temperature=temperature_off,
                top_p=1.0 if temperature_off == 0 else top_p_on,
                max_tokens=max_tokens,
            ),
            seed=seed,
            base_url=base_url,
            concurrency=concurrency,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            tp=tp,
            dp=dp,
            dtype=dtype,
            max_model_len=max_model_len,
            kv_cache_memory_bytes=kv_cache_memory_bytes,
            gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=enforce_eager,
            shard_size=shard_size,
            progress=not quiet,
        )
        stats = run_generate(config, inputs, out_dir)
    except (ValueError, InputError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    print(
        f"generate: {stats.kept} records kept, {stats.n_failed} failed of {stats.n_in}; "
        f"records in {out_dir / 'kept'}, failures in {out_dir / 'failed'}"
    )
    raise typer.Exit(0 if stats.n_failed == 0 else 1)
