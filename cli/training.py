"""`thinktoggle train | validate | demo` (registered in cli/main.py STAGE_COMMANDS)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

err = Console(stderr=True)


def train(
    data: list[Path] = typer.Option(..., "--data", help="the exported dataset (published rows) or record folders"),
    out_dir: Path = typer.Option(..., "--out", help="output folder: model/, checkpoints/, logs (rerun resumes)"),
    model: str = typer.Option("", "--model", help="a Hugging Face checkpoint folder; default: a tiny Llama"),
    steps: int = typer.Option(2000, "--steps", help="optimizer steps"),
    lr: float = typer.Option(3e-3, "--lr", help="peak learning rate (after warmup; cosine to lr * 0.1)"),
    warmup: int = typer.Option(100, "--warmup", help="warmup steps"),
    seq_len: int = typer.Option(256, "--seq-len", help="tokens per packed row"),
    batch_size: int = typer.Option(6, "--batch-size", help="packed rows per micro-step"),
    grad_accum: int = typer.Option(1, "--grad-accum", help="micro-steps per optimizer step"),
    no_packing: bool = typer.Option(False, "--no-packing", help="one example per row"),
    save_every: int = typer.Option(500, "--save-every", help="steps between checkpoints (0: final only)"),
    seed: int = typer.Option(0, "--seed"),
    hidden_size: int = typer.Option(64, "--hidden-size", help="tiny model width"),
    layers: int = typer.Option(4, "--layers", help="tiny model depth"),
    heads: int = typer.Option(2, "--heads", help="tiny model heads (head_dim >= 32 for vLLM on CPU)"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Supervised fine-tuning on on/off pairs: loss on assistant tokens, packing, HF checkpoints, resume."""
    from thinktoggle.schemas.io import InputError
    from thinktoggle.training.trainer import TinyModelConfig, TrainConfig, run_train

    try:
        config = TrainConfig(
            model=model,
            tiny=TinyModelConfig(hidden_size=hidden_size, num_layers=layers, num_heads=heads),
            seq_len=seq_len,
            batch_size=batch_size,
            grad_accum=grad_accum,
            max_steps=steps,
            lr=lr,
            warmup_steps=warmup,
            packing=not no_packing,
            save_every=save_every,
            seed=seed,
            device=device,
            progress=not quiet,
        )
        stats = run_train(config, data, out_dir)
    except (ValueError, InputError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    print(f"train: {stats.kept} examples; model in {out_dir / 'model'} (summary: {out_dir / 'train_summary.json'})")


def validate(
    model: Path = typer.Option(..., "--model", help="checkpoint folder (a train run's model/)"),
    prompts: Path = typer.Option(..., "--prompts", help="held-out prompts with expected answers (files/folders)"),
    out_dir: Path | None = typer.Option(None, "--out", help="where report.json goes (default: <model>/validation)"),
    engine: str = typer.Option("auto", "--engine", help="vllm | transformers | auto (vLLM where installed)"),
    limit: int = typer.Option(0, "--limit", help="first N prompts only (0: all)"),
    temperature_on: float = typer.Option(0.6, "--temperature-on"),
    top_p_on: float = typer.Option(0.95, "--top-p-on"),
    temperature_off: float = typer.Option(0.0, "--temperature-off", help="0 = greedy"),
    max_tokens: int = typer.Option(256, "--max-tokens"),
    seed: int = typer.Option(0, "--seed"),
):
    """Answer held-out prompts with thinking on and off; report compliance, accuracy and tokens per mode."""
    from thinktoggle.generators.engines.base import SamplingConfig
    from thinktoggle.schemas.io import InputError
    from thinktoggle.training.validate import ValidateConfig, run_validate

    try:
        config = ValidateConfig(
            prompts=str(prompts),
            model=str(model),
            engine=engine,
            limit=limit,
            seed=seed,
            sampling_on=SamplingConfig(n=1, temperature=temperature_on, top_p=top_p_on, max_tokens=max_tokens),
            sampling_off=SamplingConfig(n=1, temperature=temperature_off, top_p=1.0, max_tokens=max_tokens),
        )
        target = out_dir or model / "validation"
        run_validate(config, [model.parent], target)
    except (ValueError, InputError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    print(f"report: {target / 'report.json'}")


def demo(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="where everything goes"),
    seed: int = typer.Option(0, "--seed", help="prompts, model init and data order"),
    small: bool = typer.Option(False, "--small", help="a reduced size (seconds, for tests): no toggle expected"),
    engine: str = typer.Option("auto", "--engine", help="validation/distillation engine: vllm | transformers"),
):
    """The whole mission offline: data → filters → curation → export → train a tiny toggle model → validate → distill."""
    from thinktoggle.demo import DemoError, run_demo

    try:
        run_demo(out_dir, seed=seed, small=small, engine=engine)
    except DemoError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
