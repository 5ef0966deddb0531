"""`thinktoggle dedup|decontaminate|mix|export|publish`: the curation stages one at a time (registered in cli.py).

Each command builds the stage's config from its options and calls the same `run_x` the recipe runner calls.
Heavy imports happen inside the commands so that `thinktoggle --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

err = Console(stderr=True)

INPUTS = typer.Argument(..., help="record shards: files or stage folders (internal-record parquet or published rows)")
OUT = typer.Option(..., "--out", help="output folder (a finished one is not redone)")
TASKS = typer.Option(1, "--tasks", help="datatrove tasks (input files are split among them)")
WORKERS = typer.Option(1, "--workers", help="tasks run at once (-1: all)")


def _fail(message: str) -> None:
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _pairs(values: list[str], option: str, cast) -> dict:
    """`KEY=VALUE` options as a dict, with the option named in errors."""
    result = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint=option)
        try:
            result[key] = cast(raw)
        except ValueError:
            raise typer.BadParameter(f"{key}: {raw!r} is not a {cast.__name__}", param_hint=option) from None
    return result


def _run_stage(run, config, inputs: list[Path], out_dir: Path, tasks: int, workers: int) -> None:
    from thinktoggle.core.executors import ExecutorConfig
    from thinktoggle.cli.run import _datatrove_info_to
    from thinktoggle.schemas.io import InputError

    try:
        # datatrove's per-rank INFO lines go to out_dir/logs/<command>.log, as `thinktoggle run` does.
        with _datatrove_info_to(out_dir / "logs" / f"{run.__name__.removeprefix('run_')}.log"):
            stats = run(config, inputs, out_dir, ExecutorConfig(tasks=tasks, workers=workers))
    except (InputError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    reasons = ", ".join(f"{r}: {n}" for r, n in sorted({**stats.dropped, **stats.failed}.items()))
    print(f"{stats.stage}: in {stats.n_in}, kept {stats.kept}, dropped {stats.n_dropped}, failed {stats.n_failed}")
    if reasons:
        print(f"  {reasons}")
    print(f"kept records in {out_dir}; dropped in {out_dir / 'dropped'}; stats in {out_dir / 'stats.json'}")


def dedup(
    inputs: list[Path] = INPUTS,
    out_dir: Path = OUT,
    exact_prompt: bool = typer.Option(True, "--exact-prompt/--no-exact-prompt", help="normalised prompt text"),
    exact_response: bool = typer.Option(True, "--exact-response/--no-exact-response", help="prompt+mode+response"),
    minhash: bool = typer.Option(True, "--minhash/--no-minhash", help="near-duplicate prompts"),
    ngram: int = typer.Option(5, "--ngram", help="MinHash word n-gram size"),
    bands: int = typer.Option(14, "--bands", help="MinHash LSH bands (datatrove buckets)"),
    rows: int = typer.Option(8, "--rows", help="MinHash hashes per band"),
    threshold: float = typer.Option(0.7, "--threshold", help="n-gram Jaccard needed to drop a near duplicate"),
    ignore_numbers: bool = typer.Option(False, "--ignore-numbers", help="near duplicates may differ in numbers"),
    tasks: int = TASKS,
    workers: int = WORKERS,
):
    """Drop duplicate prompts (exact and MinHash near duplicates, with all their on/off samples) and repeated responses."""
    from thinktoggle.curation.dedup import DedupConfig, MinHashConfig, run_dedup

    config = DedupConfig(
        exact_prompt=exact_prompt,
        exact_response=exact_response,
        minhash=MinHashConfig(
            enabled=minhash, ngram=ngram, bands=bands, rows=rows, threshold=threshold, same_numbers=not ignore_numbers
        ),
    )
    _run_stage(run_dedup, config, inputs, out_dir, tasks, workers)


def _benchmark(spec: str):
    """NAME=SOURCE[:COLUMNS[:SPLIT[:CONFIG]]]: SOURCE is a local file/folder if it exists, else a Hub id."""
    from thinktoggle.curation.decontaminate import BenchmarkConfig

    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise typer.BadParameter(
            f"expected NAME=SOURCE[:COLUMNS[:SPLIT[:CONFIG]]], got {spec!r}", param_hint="--benchmark"
        )
    source, *more = rest.split(":")
    columns = tuple(c for c in (more[0].split(",") if more and more[0] else ["problem"]))
    split = more[1] if len(more) > 1 and more[1] else "test"
    hub_config = more[2] if len(more) > 2 else ""
    if Path(source).exists():
        return BenchmarkConfig(name=name, path=source, columns=columns)
    return BenchmarkConfig(name=name, hub_id=source, hub_config=hub_config, split=split, columns=columns)


def decontaminate(
    inputs: list[Path] = INPUTS,
    out_dir: Path = OUT,
    benchmark: list[str] = typer.Option(
        ...,
        "--benchmark",
        help="NAME=SOURCE[:COLUMNS[:SPLIT[:CONFIG]]], repeatable; SOURCE: a jsonl/parquet file or a Hub dataset id, "
        "e.g. math500=HuggingFaceH4/MATH-500:problem:test",
    ),
    ngram: int = typer.Option(13, "--ngram", help="word n-gram size (13 common, 8 as in open-r1)"),
    tasks: int = TASKS,
    workers: int = WORKERS,
):
    """Drop prompts (both modes) sharing a word n-gram with a benchmark; writes decontamination_report.json."""
    from thinktoggle.curation.decontaminate import DecontaminateConfig, run_decontaminate

    config = DecontaminateConfig(ngram=ngram, benchmarks=tuple(_benchmark(spec) for spec in benchmark))
    _run_stage(run_decontaminate, config, inputs, out_dir, tasks, workers)


def mix(
    inputs: list[Path] = INPUTS,
    out_dir: Path = OUT,
    seed: int = typer.Option(0, "--seed"),
    cap: list[str] = typer.Option([], "--cap", help="CATEGORY=ROWS (or *=ROWS), repeatable"),
    ratio: list[str] = typer.Option([], "--ratio", help="CATEGORY=ON_PER_OFF (or *=R), repeatable"),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="keep prompts missing a mode"),
    used_in_training: str = typer.Option("", "--used-in-training", help="tag for kept rows, e.g. 'Ultra, Nano'"),
    version: str = typer.Option("", "--version", help="version tag for kept rows"),
):
    """Cap categories, set on:off ratios, keep complete pairs, tag the rows (seeded, reproducible)."""
    from thinktoggle.curation.mix import MixConfig, run_mix

    config = MixConfig(
        seed=seed,
        complete_pairs=not allow_incomplete,
        caps=_pairs(cap, "--cap", int),
        on_off_ratio=_pairs(ratio, "--ratio", float),
        used_in_training=used_in_training,
        version=version,
    )
    _run_stage(run_mix, config, inputs, out_dir, 1, 1)


def export(
    inputs: list[Path] = INPUTS,
    out_dir: Path = OUT,
    name: str = typer.Option("thinktoggle-reasoning-toggle", "--name", help="the card's title"),
    config_name: str = typer.Option("SFT", "--config-name", help="the dataset config holding the category splits"),
    license: str = typer.Option("cc-by-4.0", "--license"),
    tokenizer: str = typer.Option("", "--tokenizer", help="tokenizer folder for token counts (default: word pieces)"),
    upstream_stats: str = typer.Option("auto", "--upstream-stats", help="run stats.json for the funnel ('' none)"),
    recipe: str = typer.Option("auto", "--recipe", help="recipe file shown on the card ('' none)"),
    plots: bool = typer.Option(True, "--plots/--no-plots"),
    tasks: int = TASKS,
    workers: int = WORKERS,
):
    """Write the published layout (one split per category), the dataset card and its plots."""
    from thinktoggle.curation.export import ExportConfig, run_export

    config = ExportConfig(
        name=name,
        config_name=config_name,
        license=license,
        tokenizer=tokenizer,
        upstream_stats=upstream_stats,
        recipe=recipe,
        plots=plots,
    )
    _run_stage(run_export, config, inputs, out_dir, tasks, workers)


def publish(
    folder: Path = typer.Argument(..., help="an exported folder (with README.md)"),
    repo_id: str = typer.Option(..., "--repo-id", help="ORG/NAME of the dataset repo"),
    private: bool = typer.Option(False, "--private", help="create the repo private"),
    revision: str | None = typer.Option(None, "--revision", help="branch to upload to (created if missing)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list every file and its size; upload nothing"),
):
    """Upload an exported folder to the Hugging Face Hub (token: HF_TOKEN or `hf auth login`)."""
    from thinktoggle.curation.publish import PublishError
    from thinktoggle.curation.publish import publish as run_publish

    try:
        run_publish(folder, repo_id, private=private, revision=revision, dry_run=dry_run)
    except PublishError as exc:
        _fail(str(exc))
