"""Export: the kept records as the published dataset, the way NVIDIA lays out Llama-Nemotron-Post-Training-Dataset.

    out_dir/kept/, dropped/, failed/, stats.json        the stage layout every stage writes (core/layout.py):
                                                        kept/ holds the exported records, for a next stage
    out_dir/SFT/<category>/part-r00000-00000.parquet   layout llama-nemotron: published rows (PUBLISHED_SCHEMA),
                                                        one split per category
    out_dir/data/<split>-part-r00000-00000.parquet     layouts nemotron-v1 / -v2 (NEMOTRON_V1/V2_SCHEMA), as
                                                        NVIDIA's cards lay them out: one split per category,
                                                        `multilingual_<lang>` for other languages
    out_dir/README.md                                   the dataset card (its YAML `configs:` make
                                                        `datasets.load_dataset(out_dir)` find the splits)
    out_dir/plots/*.png                                 length histograms on vs off, the funnel

A record the layout cannot hold without losing something (tool calls in llama-nemotron, a gold answer in
nemotron-v2: `schemas.convert.unwritable_reason`) is dropped with that reason, never changed. Each exported
row is checked against its layout's JSON Schema on the way out; a row that breaks it is failed (naming the
field) instead of exported, so `thinktoggle check` passes on what is written.
Export runs record by record as a datatrove PipelineStep (rank r writes `part-r{r}-*` files).
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from datatrove.pipeline.base import PipelineStep

from thinktoggle.core.executors import ExecutorConfig, make_executor
from thinktoggle.core.layout import logs_dir, ranks_dir
from thinktoggle.core.outputs import (
    StageOutputs,
    clear_partial,
    completed_stats,
    merge_rank_stats,
    rank_prefix,
)
from thinktoggle.core.stats import StageStats
from thinktoggle.schemas.arrow import NEMOTRON_V1_SCHEMA, NEMOTRON_V2_SCHEMA, PUBLISHED_SCHEMA
from thinktoggle.schemas.conversation import layout_problems
from thinktoggle.schemas.convert import record_to_layout_row, split_of, unwritable_reason
from thinktoggle.schemas.io import ShardWriter, atomic_write_text, discover_files, iter_records
from thinktoggle.schemas.record import Record

STAGE = "export"
CARD = "README.md"
INVALID = "invalid_published_row"
UNWRITABLE = "unwritable"
ARROW_SCHEMAS = {
    "llama-nemotron": PUBLISHED_SCHEMA,
    "nemotron-v1": NEMOTRON_V1_SCHEMA,
    "nemotron-v2": NEMOTRON_V2_SCHEMA,
}
DATA = "data"  # the conversational layouts' folder, as on NVIDIA's cards
FILE_PREFIX = {"tool_calling": "tool"}  # NVIDIA's v1 card: split tool_calling, files data/tool-*


def file_prefix(split: str) -> str:
    """How a conversational split's files start (`data/<prefix>-*` on the card)."""
    return FILE_PREFIX.get(split, split)


@dataclass(frozen=True)
class ExportConfig:
    name: str = "thinktoggle-reasoning-toggle"  # the card's title
    layout: Literal["llama-nemotron", "nemotron-v1", "nemotron-v2"] = (
        "llama-nemotron"  # the published layout (schemas/conversation.py)
    )
    description: str = ""  # a paragraph for the card
    config_name: str = (
        "SFT"  # llama-nemotron: the config the category splits live in (NVIDIA: SFT, RL); the others: default
    )
    license: str = "cc-by-4.0"  # the card's license (rows keep their own `license` column)
    rows_per_shard: int = 100_000
    card: bool = True
    plots: bool = True
    tokenizer: str = ""  # a tokenizer folder (or Hub id) for token counts; "": regex word pieces
    upstream_stats: str = "auto"  # the funnel before export: "auto" (the run's stage folders), a stats.json, or ""
    recipe: str = "auto"  # the recipe shown on the card: "auto" (the run's recipe.resolved.yaml), a path, or ""


def provenance_of(record: Record) -> tuple[str, str, str]:
    """(generator, engine, teacher model) as far as the record's sampling provenance tells."""
    sampling = record.sampling or {}
    teacher = sampling.get("teacher") or sampling.get("model") or ""
    return record.generator, str(sampling.get("engine", "")), str(teacher)


class ExportStep(PipelineStep):
    """One rank of the export: records in, published rows out (one folder per category)."""

    type = "💽 - WRITER"
    name = "📦 export"

    def __init__(
        self,
        inputs: list[str | Path],
        out_dir: str | Path,
        config_name: str,
        rows_per_shard: int,
        layout: str = "llama-nemotron",
    ):
        super().__init__()
        self.inputs = [str(p) for p in inputs]
        self.out_dir = str(out_dir)
        self.config_name = config_name
        self.rows_per_shard = rows_per_shard
        self.layout = layout

    def _writer_for(self, split: str, rank: int, stack: ExitStack) -> ShardWriter:
        out, schema = Path(self.out_dir), ARROW_SCHEMAS[self.layout]
        if self.layout == "llama-nemotron":
            return stack.enter_context(
                ShardWriter(out / self.config_name / split, schema, f"part-r{rank:05d}", self.rows_per_shard)
            )
        prefix = f"{file_prefix(split)}-part-r{rank:05d}"
        return stack.enter_context(ShardWriter(out / DATA, schema, prefix, self.rows_per_shard))

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        out = Path(self.out_dir)
        prefix, published_prefix = rank_prefix(rank), f"part-r{rank:05d}"
        clear_partial(out, prefix)
        for pattern in (f"{published_prefix}*", f".{published_prefix}*.tmp-*"):  # what an interrupted try left
            for stale in out.glob(f"{self.config_name}/*/{pattern}"):
                stale.unlink(missing_ok=True)
        for stale in [*out.glob(f"{DATA}/*-{published_prefix}-*"), *out.glob(f"{DATA}/.*-{published_prefix}-*.tmp-*")]:
            stale.unlink(missing_ok=True)
        teachers: Counter = Counter()
        filters: dict[str, Counter] = {}
        writers: dict[str, ShardWriter] = {}
        # Each writer publishes its shards when the block ends, or drops its partial shard on an error.
        with StageOutputs(out, STAGE, prefix=prefix) as outputs, ExitStack() as open_writers:
            for read, record in iter_records(discover_files(self.inputs)[rank::world_size]):
                if record is None:
                    outputs.fail_read(read)
                    continue
                if reason := unwritable_reason(record, self.layout):
                    outputs.drop(record, f"{UNWRITABLE}:{self.layout}", reason, read.where)
                    continue
                row = record_to_layout_row(record, self.layout)
                if problems := list(layout_problems(row, self.layout)):
                    outputs.fail(record, f"{INVALID}:{problems[0].field}", problems[0].reason, read.where)
                    continue
                split = record.category if self.layout == "llama-nemotron" else split_of(record)
                if split not in writers:
                    writers[split] = self._writer_for(split, rank, open_writers)
                writers[split].write(row)
                outputs.keep(record)
                self.stat_update("exported", split)
                teachers["\t".join(provenance_of(record))] += 1
                for verdict in record.verdicts:
                    filters.setdefault(verdict.filter, Counter())[verdict.verdict] += 1
        part = {"teachers": dict(teachers), "filters": {name: dict(c) for name, c in filters.items()}}
        atomic_write_text(json.dumps(part), out / "provenance" / f"{prefix}.json")
        outputs.write_rank_stats()


def merge_provenance(out_dir: Path) -> dict[str, Any]:
    """Teachers (generator, engine, model -> rows) and filter verdicts on the exported rows, over all ranks."""
    teachers: Counter = Counter()
    filters: dict[str, Counter] = {}
    for part in sorted((out_dir / "provenance").glob("*.json")):
        data = json.loads(part.read_text())
        teachers.update(data["teachers"])
        for name, counts in data["filters"].items():
            filters.setdefault(name, Counter()).update(counts)
    return {
        "teachers": [
            {"generator": g, "engine": e, "teacher": t, "rows": n}
            for (g, e, t), n in sorted((tuple(k.split("\t")), n) for k, n in teachers.items())
        ],
        "filters": {name: dict(sorted(c.items())) for name, c in sorted(filters.items())},
    }


def _upstream_funnel(config: ExportConfig, out_dir: Path, own: StageStats) -> dict[str, Any]:
    from thinktoggle.core.funnel import build_funnel, read_funnel, stage_stats_in_run

    if config.upstream_stats == "auto":
        return build_funnel([*stage_stats_in_run(out_dir.parent, upto=STAGE), own])
    if config.upstream_stats:
        upstream = read_funnel(config.upstream_stats)["stages"]
        return build_funnel([*(StageStats.from_dict(s) for s in upstream if s["stage"] != STAGE), own])
    return build_funnel([own])


def _recipe_text(config: ExportConfig, out_dir: Path) -> str:
    if config.recipe == "auto":
        path = out_dir.parent / "recipe.resolved.yaml"
        return path.read_text() if path.exists() else ""
    return Path(config.recipe).read_text() if config.recipe else ""


def run_export(
    config: ExportConfig, inputs: list[Path], out_dir: Path, executor: ExecutorConfig = ExecutorConfig()
) -> StageStats:
    """Export the records under `inputs` into `out_dir` in the published layout, with the card and plots."""
    out_dir = Path(out_dir)
    if (done := completed_stats(out_dir)) and (not config.card or (out_dir / CARD).exists()):
        return done
    n_files = len(discover_files(inputs))
    stage_executor = replace(executor, tasks=max(1, min(executor.tasks, n_files)))
    step = ExportStep(inputs, out_dir, config.config_name, config.rows_per_shard, config.layout)
    make_executor(stage_executor, [step], logs_dir(out_dir), job_name=STAGE).run()
    ranks = [rank_prefix(r) for r in range(stage_executor.tasks)]
    stats = StageStats(STAGE)
    for name in ranks:
        stats.merge(StageStats.read(ranks_dir(out_dir) / f"{name}.json"))
    if config.card:
        from thinktoggle.curation.card import write_card

        write_card(
            out_dir,
            config,
            funnel=_upstream_funnel(config, out_dir, stats),
            provenance=merge_provenance(out_dir),
            recipe_text=_recipe_text(config, out_dir),
        )
    return merge_rank_stats(out_dir, STAGE, ranks)  # stats.json last: it marks the stage complete
