"""What a stage command offers beyond its config's fields: the few conveniences a config cannot express.

    --prompts SRC, --procedural TASK,      (sources, generate, validate) prompts read the way a recipe's `sources:`
    --column KEY=COL, --split, --count      reads them (generators/sources.py), into a hidden `.sources/` folder of
                                            the command's out dir that the stage then reads
    --benchmark NAME=SOURCE[:COLS[:SPLIT[:CONFIG]]]   (decontaminate) one item of the config's `benchmarks`
    a progress bar                          (filter) following its ranks' progress files

Each one only adds YAML nodes to the command's settings (with the option as their origin), so what it gives
is validated like any other setting, and `--set sources.0.category=code` can amend it.
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from thinktoggle.core.config_build import suggest
from thinktoggle.core.config_yaml import ConfigError, mapping_node, parse_value, sequence_node, set_path, str_node

SOURCES_DIR = ".sources"  # where a command's --prompts are written (hidden: reading the out dir skips it)
COLUMN_KEYS = ("question", "expected_answer", "tests", "category")
DEFAULT_PROCEDURAL_COUNT = 100
HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow", ".gz")


@dataclass(frozen=True)
class Convenience:
    """Extra options of some stage commands, and how their values become settings."""

    params: Callable[[], list[click.Parameter]]
    apply: Callable[[dict[str, Any], yaml.MappingNode], None]  # adds the options' values to the settings


# ------------------------------------------------------------------------------------------------- prompts


def _prompt_params() -> list[click.Parameter]:
    return [
        click.Option(
            ["--prompts", "prompt_sources"],
            multiple=True,
            metavar="SRC",
            help="prompts: a jsonl/parquet file or folder, or a Hub dataset id (repeatable); rows with a "
            "question/prompt/problem column or chat input/messages, as in a recipe's `sources:`",
        ),
        click.Option(
            ["--column", "prompt_columns"],
            multiple=True,
            metavar="KEY=COLUMN",
            help=f"the column that holds the {', '.join(COLUMN_KEYS)} of --prompts rows (repeatable)",
        ),
        click.Option(["--split", "prompt_split"], metavar="NAME", help="Hub split, or procedural: train | heldout"),
        click.Option(
            ["--procedural", "prompt_task"], metavar="TASK", help="built-in prompts (generators/procedural.py)"
        ),
        click.Option(
            ["--count", "prompt_count"],
            metavar="INT",
            help=f"--procedural: how many (default {DEFAULT_PROCEDURAL_COUNT}); --prompts: at most this many each",
        ),
    ]


def source_type(src: str) -> str:
    """`file`, `published` (rows with input and output: published rows, records) or `hf` for a --prompts SRC."""
    from thinktoggle.schemas.io import is_saved_hf_dataset, iter_rows

    path = Path(src)
    if not path.exists():
        if HUB_ID.fullmatch(src) and not src.endswith(DATA_SUFFIXES):
            return "hf"
        raise ConfigError([f"--prompts {shlex.quote(src)}: no such file or folder (nor a Hub dataset id ORG/NAME)"])
    if is_saved_hf_dataset(path) or (path / "dataset_dict.json").exists():
        return "hf"
    for read in iter_rows([path]):
        if read.error is None and read.row is not None:
            return "published" if "input" in read.row and "output" in read.row else "file"
    return "file"  # no readable row: the file source names each bad row


def _columns(values: tuple[str, ...]) -> list[tuple[yaml.Node, yaml.Node]]:
    items = []
    for value in values:
        origin = f"--column {shlex.quote(value)}"
        key, sep, column = value.partition("=")
        if not sep or not key or not column:
            raise ConfigError([f"{origin}: expected KEY=COLUMN"])
        if key not in COLUMN_KEYS:
            raise ConfigError([f"{origin}: {key}: unknown column key{suggest(key, list(COLUMN_KEYS))}"])
        items.append((str_node(key, origin), str_node(column, origin)))
    return items


def _apply_prompts(values: dict[str, Any], settings: yaml.MappingNode) -> None:
    sources, task, count = values["prompt_sources"], values["prompt_task"], values["prompt_count"]
    if not sources and not task:
        for name, flag in (("prompt_columns", "--column"), ("prompt_split", "--split"), ("prompt_count", "--count")):
            if values[name]:
                raise ConfigError([f"{flag}: goes with --prompts or --procedural"])
        return
    entries: list[yaml.Node] = []

    def entry(origin: str, **fields: yaml.Node) -> yaml.MappingNode:
        if values["prompt_split"] is not None:
            fields["split"] = str_node(values["prompt_split"], f"--split {shlex.quote(values['prompt_split'])}")
        return mapping_node([(str_node(k, origin), v) for k, v in fields.items()], origin)

    limit_origin = f"--count {shlex.quote(count)}" if count is not None else ""
    for src in sources:
        origin = f"--prompts {shlex.quote(src)}"
        fields = {"type": str_node(source_type(src), origin), "path": str_node(src, origin)}
        if values["prompt_columns"]:
            fields["columns"] = mapping_node(_columns(values["prompt_columns"]), origin)
        if count is not None:
            fields["limit"] = parse_value(count, limit_origin)
        entries.append(entry(origin, **fields))
    if task:
        origin = f"--procedural {shlex.quote(task)}"
        limit = (
            parse_value(count, limit_origin)
            if count is not None
            else parse_value(str(DEFAULT_PROCEDURAL_COUNT), origin)
        )
        entries.append(entry(origin, type=str_node("procedural", origin), path=str_node(task, origin), limit=limit))
    set_path(settings, "sources", sequence_node(entries, entries[0].origin), entries[0].origin)


PROMPTS = Convenience(_prompt_params, _apply_prompts)

# Where a command's prompts (a `sources` setting) go, for the stages that do not hold them in their config:
# "inputs" (the stage reads them as records) or the config field that names them.
PROMPTS_GO_TO = {"generate": "inputs", "validate": "prompts"}


def sources_folder(out_dir: Path) -> Path:
    return Path(out_dir) / SOURCES_DIR


# ---------------------------------------------------------------------------------------------- benchmarks


def _benchmark_params() -> list[click.Parameter]:
    return [
        click.Option(
            ["--benchmark", "benchmark_specs"],
            multiple=True,
            metavar="NAME=SOURCE[:COLUMNS[:SPLIT[:CONFIG]]]",
            help="a benchmark (repeatable), added to `benchmarks`; SOURCE: a jsonl/parquet file or a Hub dataset id, "
            "e.g. math500=HuggingFaceH4/MATH-500:problem:test",
        )
    ]


def _apply_benchmarks(values: dict[str, Any], settings: yaml.MappingNode) -> None:
    entries: list[yaml.Node] = []
    for spec in values["benchmark_specs"]:
        origin = f"--benchmark {shlex.quote(spec)}"
        name, sep, rest = spec.partition("=")
        if not sep or not name or not rest:
            raise ConfigError([f"{origin}: expected NAME=SOURCE[:COLUMNS[:SPLIT[:CONFIG]]]"])
        source, *more = rest.split(":")
        fields = {"name": str_node(name, origin)}
        if more and more[0]:
            fields["columns"] = sequence_node([str_node(c, origin) for c in more[0].split(",") if c], origin)
        if Path(source).exists():
            fields["path"] = str_node(source, origin)
        else:
            fields["hub_id"] = str_node(source, origin)
            if len(more) > 1 and more[1]:
                fields["split"] = str_node(more[1], origin)
            if len(more) > 2 and more[2]:
                fields["hub_config"] = str_node(more[2], origin)
        entries.append(mapping_node([(str_node(k, origin), v) for k, v in fields.items()], origin))
    if entries:
        set_path(settings, "benchmarks", sequence_node(entries, entries[0].origin), entries[0].origin)


BENCHMARKS = Convenience(_benchmark_params, _apply_benchmarks)


# ---------------------------------------------------------------------------------------------- the table

CONVENIENCES: dict[str, tuple[Convenience, ...]] = {
    "sources": (PROMPTS,),
    "generate": (PROMPTS,),
    "validate": (PROMPTS,),
    "decontaminate": (BENCHMARKS,),
}

# Stages whose INPUTS may be left out when a setting gives what they would have read: {stage: (setting, options)}.
INPUTS_UNLESS = {
    "generate": ("sources", "--prompts SRC / --procedural TASK"),
    "validate": ("model", "--model DIR"),
}


def filter_progress(work: Callable[[], Any], inputs: list[Path], out_dir: Path) -> Any:
    """Run the filter stage while a progress bar follows its ranks' progress files (on stderr)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from thinktoggle.filters.stage import count_input_rows, progress_done

    total = count_input_rows(inputs)
    stop = threading.Event()
    console = Console(stderr=True)
    with Progress(TextColumn("filter"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("filter", total=total)

        def follow() -> None:
            while not stop.wait(0.5):
                bar.update(task, completed=progress_done(out_dir))

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        try:
            result = work()
        finally:
            stop.set()
            follower.join()
        bar.update(task, completed=result.n_in if total is None else total)
    return result


# Stages run inside a wrapper: (work, inputs, out_dir) -> the stage's stats.
RUN_WRAPPERS: dict[str, Callable[[Callable[[], Any], list[Path], Path], Any]] = {"filter": filter_progress}
