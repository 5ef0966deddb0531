"""Mixing: pair completeness, per-category on:off ratios and caps, seeded sampling, release tags.

Per category, in this order:
1. completeness (`complete_pairs`): a prompt whose on or off samples did not all survive the earlier stages is
   dropped whole (`incomplete_pair`);
2. quotas: the most rows that respect the category's on:off ratio (on rows per off row), then scaled down to
   its cap (total rows), keeping the ratio;
3. sampling: the category's prompts in a seeded shuffled order (seeded by `seed` and the category, over pair ids,
   so neither input order nor sharding changes the draw); walking them, a prompt's on rows are taken while the
   on quota lasts and its off rows while the off quota lasts, so the first prompts keep both modes and pairs
   break only where the ratio asks for it. Rows left over are dropped as `category_cap` or `on_off_ratio`.
Kept rows get the `used_in_training` and `version` tags. The stage needs a global view, so it reads its
inputs twice: once for the small per-record keys, once to write.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.progress import track

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.outputs import StageOutputs, clear_partial, completed_stats
from thinktoggle.core.stats import StageStats
from thinktoggle.schemas.io import atomic_write_text, discover_files, iter_records
from thinktoggle.schemas.record import Verdict

STAGE = "mix"
REPORT = "mix_report.json"
INCOMPLETE, CAP, RATIO = "incomplete_pair", "category_cap", "on_off_ratio"
ANY = "*"  # a caps / on_off_ratio key that applies to every category without its own entry


@dataclass(frozen=True)
class MixConfig:
    seed: int = 0
    complete_pairs: bool = True  # keep only prompts whose on and off samples both survived
    caps: dict[str, int] = field(default_factory=dict)  # category (or "*") -> most rows kept
    on_off_ratio: dict[str, float] = field(default_factory=dict)  # category (or "*") -> on rows per off row
    used_in_training: str = ""  # written on every kept row, e.g. "Ultra, Super, Nano" ("" keeps the record's)
    version: str = ""  # written on every kept row ("" keeps the record's)


@dataclass
class _Key:
    """What mixing needs to know of one record."""

    index: int
    pair_id: str
    category: str
    reasoning: str
    sample: int


def _setting(table: dict[str, Any], category: str) -> Any:
    return table.get(category, table.get(ANY))


def ratio_quotas(n_on: int, n_off: int, ratio: float | None) -> tuple[int, int]:
    """The most (on, off) rows with on / off == ratio (None: no constraint)."""
    if ratio is None:
        return n_on, n_off
    if ratio < 0:
        raise ValueError(f"mix.on_off_ratio: must be >= 0, got {ratio}")
    if n_on >= ratio * n_off:
        return math.floor(ratio * n_off + 1e-9), n_off
    return n_on, math.floor(n_on / ratio + 1e-9)


def cap_quotas(on: int, off: int, cap: int | None, ratio: float | None) -> tuple[int, int]:
    """Scale (on, off) down to at most `cap` rows, keeping the ratio (or the current proportion)."""
    if cap is None or on + off <= cap:
        return on, off
    if cap < 0:
        raise ValueError(f"mix.caps: must be >= 0, got {cap}")
    share = ratio / (1 + ratio) if ratio is not None else on / (on + off)
    q_on = min(on, round(cap * share))
    return q_on, min(off, cap - q_on)


def plan_mix(config: MixConfig, keys: list[_Key]) -> tuple[dict[int, str], dict[str, dict[str, Any]]]:
    """Which record indexes to drop (index -> reason), and a per-category report."""
    drops: dict[int, str] = {}
    modes: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        modes[key.pair_id].add(key.reasoning)
    by_category: dict[str, dict[str, list[_Key]]] = defaultdict(lambda: defaultdict(list))
    for key in keys:
        if config.complete_pairs and modes[key.pair_id] != {"on", "off"}:
            drops[key.index] = INCOMPLETE
        else:
            by_category[key.category][key.pair_id].append(key)

    report: dict[str, dict[str, Any]] = {}
    for category in sorted(by_category):
        pairs = by_category[category]
        n_on = sum(k.reasoning == "on" for ks in pairs.values() for k in ks)
        n_off = sum(k.reasoning == "off" for ks in pairs.values() for k in ks)
        ratio, cap = _setting(config.on_off_ratio, category), _setting(config.caps, category)
        by_ratio = ratio_quotas(n_on, n_off, ratio)
        quota = dict(zip(("on", "off"), cap_quotas(*by_ratio, cap, ratio), strict=True))
        ratio_quota = dict(zip(("on", "off"), by_ratio, strict=True))
        order = sorted(pairs)
        random.Random(f"{config.seed}:{category}").shuffle(order)
        seen = {"on": 0, "off": 0}
        for pair_id in order:
            for key in sorted(pairs[pair_id], key=lambda k: (k.reasoning != "on", k.sample, k.index)):
                position = seen[key.reasoning]
                seen[key.reasoning] += 1
                if position >= quota[key.reasoning]:
                    drops[key.index] = CAP if position < ratio_quota[key.reasoning] else RATIO
        report[category] = {
            "in_on": n_on,
            "in_off": n_off,
            "on_off_ratio": ratio,
            "cap": cap,
            "kept_on": quota["on"],
            "kept_off": quota["off"],
        }
    return drops, report


def run_mix(
    config: MixConfig, inputs: list[Path], out_dir: Path, executor: ExecutorConfig = ExecutorConfig()
) -> StageStats:
    """Mix the records under `inputs` into `out_dir` (kept rows tagged; dropped with the reason; mix_report.json).

    Runs in this process (it needs every record's key before it can decide); `executor` is accepted for the
    Stage API and not used.
    """
    out_dir = Path(out_dir)
    if (done := completed_stats(out_dir)) and (out_dir / REPORT).exists():
        return done
    inputs = discover_files(inputs)
    keys = [
        _Key(index, record.pair_id, record.category, record.reasoning, record.sample)
        for index, (_read, record) in enumerate(item for item in iter_records(inputs) if item[1] is not None)
    ]
    drops, report = plan_mix(config, keys)
    clear_partial(out_dir, "part")
    index = 0
    with StageOutputs(out_dir, STAGE) as outputs:
        for read, record in track(iter_records(inputs), description="mix: writing", transient=True):
            if record is None:
                outputs.fail_read(read)
                continue
            reason = drops.get(index)
            index += 1
            if reason is not None:
                outputs.write(
                    record, Verdict(STAGE, "fail", f"{reason}: {record.category}/{record.reasoning}"), read.where
                )
                continue
            tags = {"used_in_training": config.used_in_training, "version": config.version}
            outputs.keep(replace(record, **{name: value for name, value in tags.items() if value}))
    atomic_write_text(json.dumps({"seed": config.seed, "categories": report}, indent=2) + "\n", out_dir / REPORT)
    outputs.stats.write(out_dir / "stats.json")
    return outputs.stats
