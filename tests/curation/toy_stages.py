"""Two small, real stages for the runner's tests, written to the Stage API (docs/ARCHITECTURE.md).

`make` writes procedural arithmetic records (no inputs); `keep_even` keeps records whose number is even,
through a real datatrove pipeline run by `make_executor`, so Local, Slurm and Ray executors all apply.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.stats import StageStats


@dataclass(frozen=True)
class Teacher:
    model: str  # required: a recipe without it is an error
    temperature: float = 0.6
    mode: Literal["on", "off", "both"] = "both"


@dataclass(frozen=True)
class MakeConfig:
    teacher: Teacher
    count: int = 10
    seed: int = 0
    delay_s: float = 0.0  # slow the stage down so that a test can kill it midway
    tags: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    note: str | None = None


@dataclass(frozen=True)
class KeepEvenConfig:
    drop_multiples_of: int = 0  # also drop multiples of this (0: none)
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.drop_multiples_of < 0:
            raise ValueError("drop_multiples_of: must be >= 0")


def _record(i: int, teacher: str):
    from thinktoggle.schemas.record import Record

    return Record(
        input=[{"role": "user", "content": f"What is {i} + {i}?"}],
        category="math",
        reasoning="off",
        output=f"\\boxed{{{2 * i}}}",
        expected_answer=str(2 * i),
        generator=teacher,
        metadata={"n": i},
    )


def run_make(config: MakeConfig, inputs: list[Path], out_dir: Path, executor: ExecutorConfig = ExecutorConfig()):
    """One shard per 5 records, each written atomically; existing shards are kept (record-level resume)."""
    from thinktoggle.schemas.arrow import RECORD_SCHEMA
    from thinktoggle.schemas.convert import record_to_arrow_row
    from thinktoggle.schemas.io import ShardWriter

    if config.teacher.model == "FAIL":
        raise RuntimeError("teacher 'FAIL' always fails (a stage failure for the tests)")
    stats = StageStats("make")
    for start in range(0, config.count, 5):
        shard = out_dir / "kept" / f"part-{start // 5:05d}-00000.parquet"
        numbers = range(start, min(start + 5, config.count))
        if not shard.exists():
            time.sleep(config.delay_s)
            with ShardWriter(out_dir / "kept", RECORD_SCHEMA, prefix=f"part-{start // 5:05d}") as writer:
                for i in numbers:
                    writer.write(record_to_arrow_row(_record(i + config.seed, config.teacher.model)))
        for _ in numbers:
            stats.n_in += 1
            stats.keep()
    stats.write(out_dir / "stats.json")
    return stats


class _KeepEven:
    """A datatrove step: reads this rank's share of the input files, routes each through StageOutputs."""

    name = "keep_even"
    type = "filter"

    def __init__(self, inputs: list[str], out_dir: str, config: KeepEvenConfig) -> None:
        self.inputs, self.out_dir, self.config = inputs, out_dir, config

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        from thinktoggle.core.outputs import StageOutputs, rank_prefix
        from thinktoggle.schemas.io import discover_files, iter_records

        files = discover_files(self.inputs)[rank::world_size]
        with StageOutputs(self.out_dir, "keep_even", prefix=rank_prefix(rank)) as outputs:
            for read, record in iter_records(files):
                time.sleep(self.config.delay_s)
                n = record.metadata["n"]
                if n % 2:
                    outputs.drop(record, "odd", source=read.where)
                elif self.config.drop_multiples_of and n % self.config.drop_multiples_of == 0:
                    outputs.drop(record, f"multiple_of_{self.config.drop_multiples_of}", source=read.where)
                else:
                    outputs.keep(record)
        outputs.write_rank_stats()
        yield from ()


def run_keep_even(
    config: KeepEvenConfig, inputs: list[Path], out_dir: Path, executor: ExecutorConfig = ExecutorConfig()
):
    from thinktoggle.core.executors import make_executor
    from thinktoggle.core.outputs import merge_rank_stats

    out_dir.mkdir(parents=True, exist_ok=True)
    step = _KeepEven([str(p) for p in inputs], str(out_dir), config)
    make_executor(executor, [step], out_dir / "logs", job_name="keep_even").run()
    return merge_rank_stats(out_dir, "keep_even")


def toy_stages():
    """A stage table for the tests: `generate` makes records, `filter` keeps the even ones."""
    from thinktoggle.core.registry import StageSpec

    return {
        "generate": StageSpec("generate", __name__, "MakeConfig", "run_make", takes_inputs=False, resumable=True),
        "filter": StageSpec("filter", __name__, "KeepEvenConfig", "run_keep_even", resumable=True),
    }
