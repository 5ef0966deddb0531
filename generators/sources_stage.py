"""The `sources:` stage of a recipe: read every prompt source into one folder of prompt records.

    sources:                       # a list of thinktoggle.generators.sources.SourceConfig
      - {type: procedural, path: arithmetic, limit: 40, seed: 1}
      - {type: hf, path: AI-MO/NuminaMath-CoT, split: train, columns: {question: problem}}

Writes the stage layout (core/layout.py): `kept/` prompt records (output ""), `dropped/` (a prompt already given
by an earlier source or row: first one wins, as the pair id is the same), `failed/` (rows that are not usable
prompts: source file:line, field and error) and `stats.json`. The generate stage reads `kept/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.layout import stats_path
from thinktoggle.core.outputs import StageOutputs, clear_partial
from thinktoggle.core.stats import StageStats
from thinktoggle.generators.sources import SourceConfig, iter_source
from thinktoggle.schemas.record import Verdict

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
    clear_partial(out_dir, "prompts")
    seen: set[str] = set()
    with StageOutputs(out_dir, STAGE, prefix="prompts") as outputs:
        for source in config.sources:
            for read, record in iter_source(source):
                if record is None:
                    outputs.fail(None, UNUSABLE, f"{read.field}: {read.error}", read.where)
                elif record.pair_id in seen:
                    outputs.write(record, Verdict(STAGE, "fail", f"{DUPLICATE}: an earlier row gave it"), read.where)
                else:
                    seen.add(record.pair_id)
                    outputs.keep(record)
    outputs.stats.write(stats_path(out_dir))
    return outputs.stats
