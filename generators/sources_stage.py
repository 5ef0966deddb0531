"""The `sources:` stage of a recipe: read every prompt source into one folder of prompt records.

    sources:                       # a list of thinktoggle.generators.sources.SourceConfig
      - {type: procedural, path: arithmetic, limit: 40, seed: 1}
      - {type: hf, path: AI-MO/NuminaMath-CoT, split: train, columns: {question: problem}}

Writes `kept/prompts.parquet` (prompt records, output ""), `dropped/` (a prompt already given by an earlier
source or row: first one wins, as the pair id is the same), `failed/rows.jsonl` (rows that are not usable
prompts, with file:line, field and error) and `stats.json`. The generate stage reads `kept/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.generators.sources import SourceConfig, iter_source
from thinktoggle.schemas.arrow import RECORD_SCHEMA
from thinktoggle.schemas.convert import record_to_arrow_row
from thinktoggle.schemas.io import ShardWriter, atomic_write_text
from thinktoggle.schemas.record import Verdict
from thinktoggle.core.stats import StageStats

STAGE = "sources"
DUPLICATE = "duplicate_prompt"
UNUSABLE = "unusable_row"


@dataclass(frozen=True)
class SourcesConfig:
    sources: list[SourceConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("sources: give at least one source")


def run_sources(
    config: SourcesConfig, inputs: list[Path], out_dir: Path, executor: ExecutorConfig = ExecutorConfig()
) -> StageStats:
    """Read every source (in order) into `out_dir`. Small and single-process: the prompts fit in memory."""
    out_dir = Path(out_dir)
    stats = StageStats(STAGE)
    seen: set[str] = set()
    failed: list[str] = []
    with (
        ShardWriter(out_dir / "kept", RECORD_SCHEMA, prefix="prompts") as kept,
        ShardWriter(out_dir / "dropped", RECORD_SCHEMA, prefix="prompts") as dropped,
    ):
        for source in config.sources:
            for read, record in iter_source(source):
                stats.n_in += 1
                if record is None:
                    stats.fail(UNUSABLE)
                    failed.append(json.dumps({"where": read.where, "field": read.field, "error": read.error}))
                elif record.pair_id in seen:
                    stats.drop(DUPLICATE)
                    verdict = Verdict(STAGE, "fail", f"{DUPLICATE}: {read.where}")
                    dropped.write(record_to_arrow_row(record.with_verdict(verdict)))
                else:
                    seen.add(record.pair_id)
                    stats.keep()
                    kept.write(record_to_arrow_row(record))
    if failed:
        atomic_write_text("\n".join(failed) + "\n", out_dir / "failed" / "rows.jsonl")
    stats.write(out_dir / "stats.json")
    return stats
