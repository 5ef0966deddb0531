"""`thinktoggle demo`: the whole mission in one command, offline, on a CPU.

    recipes/demo.yaml through the recipe runner (one code path with `thinktoggle run`):
      procedural mod-10 chains (train split) → procedural teacher, on/off pairs → filters (format, length,
      repetition, math) → exact dedup → decontamination against the held-out split → mix (complete pairs)
      → export with a dataset card → train a tiny Llama from scratch → evaluate the held-out problems in
      both modes (pass@1 over 4 samples on, greedy off; compliance; tokens)
    then a distillation round, the paper's teacher → verifier loop at toy scale:
      new prompts → the freshly trained model, served by vLLM, answers each n times per mode (generate stage)
      → the math filter rejects the wrong ones (filter stage); its funnel says how many and why.

A rerun into the same folder resumes: completed stages are skipped (the runner's markers), an interrupted
training resumes from its last checkpoint, the distillation's generate stage regenerates only what is missing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()

RECIPE = Path(__file__).resolve().parent / "recipes" / "demo.yaml"  # demo.py sits at the package root

# --small: the same pipeline in seconds (the test suite runs it). Too few steps to learn the toggle.
SMALL_OVERRIDES = (
    "sources.0.limit=48",
    "sources.1.limit=32",
    "train.max_steps=30",
    "train.warmup_steps=5",
    "train.save_every=0",
    "validate.limit=16",
    "export.plots=false",
)


class DemoError(Exception):
    """The demo cannot run (a changed recipe in a used folder, a stage that failed)."""


def distill_sizes(small: bool) -> tuple[int, int]:
    """(new prompts, samples per prompt and mode) of the distillation round."""
    return (8, 2) if small else (64, 4)


def run_pipeline(out_dir: Path, seed: int, small: bool, engine: str) -> Any:
    """Run recipes/demo.yaml into `out_dir` through the recipe runner."""
    from thinktoggle.runner.recipe import RecipeError, load_recipe
    from thinktoggle.runner.run import RunError, run_recipe

    overrides = [
        f"out_dir={out_dir}",
        f"sources.0.seed={seed}",  # the chains
        f"sources.1.seed={seed}",  # the multiple-choice chains
        f"mix.seed={seed}",
        f"train.seed={seed}",
        f"validate.seed={seed}",
        f"validate.engine.kind={engine}",
        *(SMALL_OVERRIDES if small else ()),
    ]
    try:
        recipe = load_recipe(RECIPE, overrides)
        return run_recipe(recipe, report=lambda line: console.print(line, highlight=False))
    except (RecipeError, RunError) as exc:
        raise DemoError(str(exc)) from None


def distillation_round(out_dir: Path, model_dir: Path, seed: int, small: bool, engine: str) -> dict[str, Any]:
    """The trained model as the teacher of new prompts, n samples per mode, rejection-sampled by the math filter."""
    from thinktoggle.core.layout import kept_dir
    from thinktoggle.filters.stage import FilterConfig, run_filter
    from thinktoggle.generators.engines.base import SamplingConfig
    from thinktoggle.generators.engines.config import EngineConfig
    from thinktoggle.generators.generate import GenerateConfig, run_generate
    from thinktoggle.generators.procedural import procedural_records
    from thinktoggle.generators.sources import write_prompts

    n_prompts, n = distill_sizes(small)
    root = out_dir / "distill"
    prompts_path = root / "prompts" / "prompts.parquet"
    if not prompts_path.exists():
        # new problems: another seed's draw of the train split (never a held-out problem)
        write_prompts(procedural_records("mod_chain", n_prompts, seed=seed + 1_000_003, split="train"), prompts_path)
    # Sampled in both modes (T=0.6, top-p 0.95): rejection sampling needs n different answers to choose from.
    sampling = SamplingConfig(n=n, temperature=0.6, top_p=0.95, max_tokens=64)
    config = GenerateConfig(
        engine=EngineConfig(kind=engine),  # auto: vLLM where installed, else transformers; CPU settings without CUDA
        teacher_on=str(model_dir),
        sampling_on=sampling,
        sampling_off=sampling,
        seed=seed,
        shard_size=1000,
        progress=False,
    )
    generate_dir = root / "generate"
    if not (generate_dir / "stats.json").exists():
        run_generate(config, [prompts_path], generate_dir)  # the stage builds the engine from config.engine
    filter_dir = root / "filter"
    if not (filter_dir / "stats.json").exists():
        run_filter(FilterConfig(only=("format", "math")), [kept_dir(generate_dir)], filter_dir)
    return {
        "prompts": n_prompts,
        "samples_per_mode": n,
        "generate": json.loads((generate_dir / "stats.json").read_text()),
        "filter": json.loads((filter_dir / "stats.json").read_text()),
        "kept_dir": str(filter_dir / "kept"),
    }


def kept_by_mode(kept_dir: Path) -> dict[str, int]:
    from thinktoggle.schemas.io import iter_rows

    counts = {"on": 0, "off": 0}
    if kept_dir.exists():
        for read in iter_rows([kept_dir]):
            if read.row is not None:
                counts[read.row["reasoning"]] += 1
    return counts


def print_report(out_dir: Path, result: Any, distill: dict[str, Any], seconds: float) -> None:
    funnel = Table(title="data funnel (recipes/demo.yaml)", title_justify="left")
    for column in ("stage", "in", "kept", "dropped", "failed", "seconds"):
        funnel.add_column(column, justify="left" if column == "stage" else "right")
    for stage in ("sources", "generate", "filter", "dedup", "decontaminate", "mix", "export", "train", "validate"):
        marker = out_dir / ".run" / "done" / f"{stage}.json"
        if marker.exists():
            data = json.loads(marker.read_text())
            s = data["stats"]
            funnel.add_row(
                stage, str(s["in"]), str(s["kept"]), str(s["dropped"]), str(s["failed"]), f"{data['seconds']:.0f}"
            )
    console.print(funnel)

    report = json.loads((out_dir / "validate" / "report.json").read_text())
    console.print(toggle_table(report["benchmarks"]))
    if any("budget_curve" in modes for modes in report["benchmarks"].values()):
        console.print(budget_table(report["benchmarks"]))

    f = distill["filter"]
    by_mode = kept_by_mode(Path(distill["kept_dir"]))
    console.print(
        f"distillation: {distill['prompts']} new prompts x {distill['samples_per_mode']} samples x 2 modes "
        f"= {f['in']} answers from the trained model; the math filter kept {f['kept']} "
        f"(on {by_mode['on']}, off {by_mode['off']}), dropped {f['dropped']} {f['dropped_reasons'] or ''}, "
        f"failed {f['failed']} {f['failed_reasons'] or ''}"
    )
    train_summary = json.loads((out_dir / "train" / "train_summary.json").read_text())
    console.print(
        f"trained {train_summary['parameters']:,} parameters for {train_summary['steps']} steps "
        f"({train_summary['tokens_per_s']:,.0f} tokens/s, final loss {train_summary['final_loss']:.4f})"
    )
    console.print(f"\nwhere everything is ({out_dir}):")
    for what, path in (
        ("dataset (published layout) + card", out_dir / "export"),
        ("trained model (HF format)", out_dir / "train" / "model"),
        ("validation report", out_dir / "validate" / "report.json"),
        ("plots (toggle, budget curve)", out_dir / "validate" / "plots"),
        ("distillation kept / dropped", out_dir / "distill" / "filter"),
        ("funnel", out_dir / "stats.json"),
        ("summary", out_dir / "demo_summary.json"),
    ):
        console.print(f"  {what:<36} {path}")
    console.print(f"demo finished in {seconds:.0f} s")


def toggle_table(benchmarks: dict[str, Any]) -> Table:
    """Each benchmark on held-out problems: the paper's on | off columns."""
    table = Table(title="toggle evaluation on held-out problems (training/validate.py)", title_justify="left")
    for column in ("benchmark", "metric", "on", "off", "on - off"):
        table.add_column(column, justify="left" if column in ("benchmark", "metric") else "right")
    for name, modes in benchmarks.items():
        on, off = modes.get("on"), modes.get("off")
        rows = [
            ("pass@1", "pass@1", "{:.3f}"),
            ("compliance", "compliance", "{:.3f}"),
            ("no answer", "no_answer", "{:.3f}"),
        ]
        for i, (label, key, fmt) in enumerate(rows):
            gap = f"{on[key] - off[key]:+.3f}" if on and off and key == "pass@1" else ""
            table.add_row(
                name if i == 0 else "",
                label,
                fmt.format(on[key]) if on else "-",
                fmt.format(off[key]) if off else "-",
                gap,
            )
        n = on["n_samples"] if on else 1
        if on and n > 1:
            table.add_row("", f"pass@{n} / maj@{n}", f"{on['pass@k'][str(n)]:.3f} / {on['maj@k'][str(n)]:.3f}", "", "")
        tokens = [f"{m['reasoning_tokens']['mean'] + m['answer_tokens']['mean']:.1f}" if m else "-" for m in (on, off)]
        table.add_row("", "mean tokens", *tokens, "", end_section=True)
    return table


def budget_table(benchmarks: dict[str, Any]) -> Table:
    """The dial: each benchmark from off through the thinking budgets to unlimited on."""
    table = Table(title="thinking budget (on, the think block closed at the budget)", title_justify="left")
    for column in ("benchmark", "budget", "tokens", "pass@1", "thinking tokens", "within 1.1x", "cut"):
        table.add_column(column, justify="left" if column in ("benchmark", "budget") else "right")
    for name, modes in benchmarks.items():
        points = modes.get("budget_curve") or []
        for i, p in enumerate(points):
            table.add_row(
                name if i == 0 else "",
                p["label"],
                "" if p["budget"] is None else str(p["budget"]),
                f"{p['pass@1']:.3f}",
                f"{p['thinking_tokens']:.1f}",
                "" if p["within_budget"] is None else f"{p['within_budget']:.3f}",
                f"{p['cut']:.3f}",
                end_section=i == len(points) - 1,
            )
    return table


def run_demo(out_dir: Path, seed: int = 0, small: bool = False, engine: str = "auto") -> dict[str, Any]:
    """Run the demo into `out_dir`; return (and write to demo_summary.json) the figures it printed."""
    from thinktoggle.cli.run import _datatrove_info_to
    from thinktoggle.schemas.io import atomic_write_text

    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # the engine's start-up chatter (CPU tuning hints)
    started = time.monotonic()
    out_dir = Path(out_dir)
    with _datatrove_info_to(out_dir / "run.log"):  # as `thinktoggle run`: datatrove's INFO lines to the log
        result = run_pipeline(out_dir, seed, small, engine)
        distill = distillation_round(out_dir, out_dir / "train" / "model", seed, small, engine)
    seconds = time.monotonic() - started
    report = json.loads((out_dir / "validate" / "report.json").read_text())
    summary = {
        "seed": seed,
        "small": small,
        "seconds": round(seconds, 1),
        "validation": report["benchmarks"],
        "distillation": {k: v for k, v in distill.items() if k != "kept_dir"},
        "kept_by_mode": kept_by_mode(Path(distill["kept_dir"])),
    }
    atomic_write_text(json.dumps(summary, indent=2) + "\n", out_dir / "demo_summary.json")
    print_report(out_dir, result, distill, seconds)
    from thinktoggle.report import write_report  # the page of the whole run: funnel, pairs, curves, toggle table

    console.print(f"report: {write_report(out_dir)}")
    return summary
