"""The run's funnel: every stage's in / kept / dropped / failed, by reason, checked from stage to stage.

Two identities hold for a complete run, and `build_funnel` reports any break instead of hiding it:
- within a stage: in == kept + dropped + failed (StageStats checks it on write; checked again here);
- between stages: a stage's `in` equals the previous stage's `kept` (it reads exactly those records), except
  into a stage that fans out (generate's `in` counts prompts x modes x samples).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from thinktoggle.core.registry import STAGE_ORDER, STAGES
from thinktoggle.core.stats import StageStats
from thinktoggle.schemas.io import atomic_write_text


class FunnelError(AssertionError):
    """Records were lost or invented somewhere in the run."""


def fans_out(stage: str) -> bool:
    """A stage whose `in` counts answers to produce (generate: prompts x modes x n), not the records it read."""
    spec = STAGES.get(stage)
    return bool(spec is not None and getattr(spec, "fans_out", False))


def build_funnel(per_stage: Iterable[StageStats]) -> dict[str, Any]:
    """The run-level funnel of stages given in run order: stages, totals by reason, and any break."""
    stages = [stats.to_dict() for stats in per_stage]
    breaks = []
    for stats in stages:
        if stats["in"] != stats["kept"] + stats["dropped"] + stats["failed"]:
            breaks.append(
                f"{stats['stage']}: in={stats['in']} != kept={stats['kept']} + dropped={stats['dropped']}"
                f" + failed={stats['failed']}"
            )
    for previous, stats in zip(stages, stages[1:], strict=False):
        if previous["kept"] != stats["in"] and not fans_out(stats["stage"]):
            breaks.append(f"{previous['stage']}.kept={previous['kept']} != {stats['stage']}.in={stats['in']}")
    reasons = [
        {"stage": s["stage"], "kind": kind, "reason": reason, "rows": n}
        for s in stages
        for kind, table in (("dropped", s["dropped_reasons"]), ("failed", s["failed_reasons"]))
        for reason, n in table.items()
    ]
    return {
        "stages": stages,
        "in": stages[0]["in"] if stages else 0,
        "out": stages[-1]["kept"] if stages else 0,
        "dropped": sum(s["dropped"] for s in stages),
        "failed": sum(s["failed"] for s in stages),
        "reasons": reasons,
        "consistent": not breaks,
        "breaks": breaks,
    }


def check_funnel(funnel: dict[str, Any]) -> None:
    if not funnel["consistent"]:
        raise FunnelError("; ".join(funnel["breaks"]))


def stage_stats_in_run(run_root: str | Path, upto: str | None = None) -> list[StageStats]:
    """The stats.json of each stage folder under `run_root`, in run order (stages after `upto` left out)."""
    root = Path(run_root)
    found = []
    for stage in STAGE_ORDER:
        if stage == upto:
            break
        path = root / stage / "stats.json"
        if path.exists():
            found.append(StageStats.read(path))
    return found


def funnel_from_run(run_root: str | Path, upto: str | None = None) -> dict[str, Any]:
    return build_funnel(stage_stats_in_run(run_root, upto))


def read_funnel(path: str | Path) -> dict[str, Any]:
    """A funnel from a run-level stats.json (as the runner writes it) or from a stage's stats.json."""
    data = json.loads(Path(path).read_text())
    if "stages" in data:
        return build_funnel(StageStats.from_dict(s) for s in data["stages"])
    return build_funnel([StageStats.from_dict(data)])


def write_funnel(funnel: dict[str, Any], path: str | Path) -> Path:
    return atomic_write_text(json.dumps(funnel, indent=2) + "\n", path)
