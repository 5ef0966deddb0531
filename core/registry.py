"""The stages a recipe can name, in run order: where each one's config dataclass and run function live.

This table is the whole integration between the runner and the stages: every stage follows the Stage API in
docs/ARCHITECTURE.md (a frozen `XConfig` + `run_x(config, inputs, out_dir, executor) -> StageStats`). Modules
are imported only when a recipe uses the stage, and none of them imports vLLM at module level, so loading a
recipe and `--dry-run` stay light.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinktoggle.core.layout import KEPT


class StageUnavailable(Exception):
    """The stage's module is not installed or does not expose its config / run function."""


@dataclass(frozen=True)
class StageSpec:
    name: str
    module: str
    config: str  # the frozen XConfig dataclass
    run: str  # run_x(config, inputs, out_dir, executor) -> StageStats
    kept: str = KEPT  # what the next stage reads, relative to the stage's out_dir ("": the folder itself)
    takes_inputs: bool = True  # False: the stage starts the chain (its sources are in its config)
    resumable: bool = False  # True: a partial run is resumed in place; False: its folder is cleared first
    summary: str = ""  # what the plan prints for it
    list_field: str = ""  # the section may be written as a bare list: the value of this field
    fans_out: bool = False  # its `in` counts answers to produce (prompts x modes x n), not the records read

    def _attr(self, attribute: str) -> Any:
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as exc:
            raise StageUnavailable(f"stage not available: cannot import {self.module} ({exc.name} missing)") from None
        try:
            return getattr(module, attribute)
        except AttributeError:
            raise StageUnavailable(f"stage not available: {self.module} has no {attribute}") from None

    def config_class(self) -> type:
        return self._attr(self.config)

    def run_function(self):
        return self._attr(self.run)

    def kept_dir(self, out_dir: Path) -> Path:
        return out_dir / self.kept if self.kept else out_dir


STAGE_ORDER = ("sources", "generate", "filter", "dedup", "decontaminate", "mix", "export", "train", "validate")

STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            "sources",
            "thinktoggle.generators.sources_stage",
            "SourcesConfig",
            "run_sources",
            takes_inputs=False,
            summary="prompt sources",
            list_field="sources",
        ),
        StageSpec(
            "generate",
            "thinktoggle.generators.generate",
            "GenerateConfig",
            "run_generate",
            resumable=True,  # record-level: a rerun generates only the samples missing from kept/
            fans_out=True,
            summary="teachers answer on + off",
        ),
        StageSpec(
            "filter",
            "thinktoggle.filters.stage",
            "FilterConfig",
            "run_filter",
            resumable=True,  # datatrove completion markers per rank
            summary="verify answers",
        ),
        StageSpec("dedup", "thinktoggle.curation.dedup", "DedupConfig", "run_dedup", summary="exact + MinHash"),
        StageSpec(
            "decontaminate",
            "thinktoggle.curation.decontaminate",
            "DecontaminateConfig",
            "run_decontaminate",
            summary="n-grams vs benchmarks",
        ),
        StageSpec("mix", "thinktoggle.curation.mix", "MixConfig", "run_mix", summary="caps, ratios, pairs"),
        StageSpec("export", "thinktoggle.curation.export", "ExportConfig", "run_export", summary="published + card"),
        StageSpec("train", "thinktoggle.training.stage", "TrainConfig", "run_train", kept="", summary="SFT"),
        StageSpec(
            "validate",
            "thinktoggle.training.stage",
            "ValidateConfig",
            "run_validate",
            fans_out=True,  # reads the trained model (train's folder); its `in` counts held-out prompts
            summary="toggle check",
        ),
    )
}
