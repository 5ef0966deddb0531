"""What a curation stage writes into its folder, so that nothing is lost.

    out_dir/*.parquet           kept records (RECORD_SCHEMA): the next stage's input (readers walking the
                                folder skip the side folders below and .json files, see schemas/io.py)
    out_dir/dropped/*.parquet   dropped records (RECORD_SCHEMA), each with a failing Verdict naming the reason
    out_dir/failed/*.jsonl      rows that could not be read: {"where": "file:line", "field": ..., "error": ...}
    out_dir/stats.json          StageStats: in == kept + dropped + failed (checked on write)

A stage whose stats.json exists is complete; a rerun returns its stats without redoing the work.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from datatrove.pipeline.base import PipelineStep

from thinktoggle.core.executors import ExecutorConfig, make_executor
from thinktoggle.schemas.arrow import RECORD_SCHEMA
from thinktoggle.schemas.convert import record_to_arrow_row
from thinktoggle.schemas.io import RowRead, ShardWriter, atomic_write_text, discover_files, iter_records
from thinktoggle.schemas.record import Record, Verdict
from thinktoggle.core.stats import StageStats

DROPPED, FAILED, STATS = "dropped", "failed", "stats.json"
UNREADABLE = "unreadable_row"


def kept_dir(out_dir: str | Path) -> Path:
    """Where a stage's kept records are: pass this folder to the next stage."""
    return Path(out_dir)


def completed_stats(out_dir: str | Path) -> StageStats | None:
    """The stats of a stage that already finished in `out_dir`, else None."""
    path = Path(out_dir) / STATS
    return StageStats.read(path) if path.exists() else None


def clear_partial(out_dir: str | Path, prefix: str = "part") -> None:
    """Remove the kept/dropped/failed files (named `prefix*`) that an unfinished run left."""
    out_dir = Path(out_dir)
    for folder in (out_dir, out_dir / DROPPED, out_dir / FAILED):
        if folder.exists():
            for path in folder.glob(f"{prefix}*"):
                if path.is_file():
                    path.unlink()


def dropped_record(record: Record, stage: str, reason: str, detail: str, **metadata: Any) -> Record:
    """The record as it is written to dropped/: a failing verdict `reason: detail` and the details in metadata."""
    record = record.with_verdict(
        Verdict(filter=stage, verdict="fail", reason=f"{reason}: {detail}" if detail else reason)
    )
    record.metadata = {**record.metadata, stage: {"reason": reason, **metadata}}
    return record


class StageOutputs:
    """The kept/dropped/failed writers and the counts of one stage (or one rank of it)."""

    def __init__(self, out_dir: str | Path, stage: str, prefix: str = "part", rows_per_shard: int = 100_000) -> None:
        self.out_dir = Path(out_dir)
        self.stage = stage
        self.prefix = prefix
        self.stats = StageStats(stage)
        self._kept = ShardWriter(self.out_dir, RECORD_SCHEMA, prefix=prefix, rows_per_shard=rows_per_shard)
        self._dropped = ShardWriter(self.out_dir / DROPPED, RECORD_SCHEMA, prefix=prefix, rows_per_shard=rows_per_shard)
        self._failed: list[str] = []

    def __enter__(self) -> StageOutputs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._kept.abort()
            self._dropped.abort()

    def keep(self, record: Record) -> None:
        self.stats.n_in += 1
        self.stats.keep()
        self._kept.write(record_to_arrow_row(record))

    def drop(self, record: Record, reason: str, detail: str = "", **metadata: Any) -> None:
        """Drop `record` for `reason` (a stable key counted in stats); `detail` and `metadata` say what matched."""
        self.stats.n_in += 1
        self.stats.drop(reason)
        self._dropped.write(record_to_arrow_row(dropped_record(record, self.stage, reason, detail, **metadata)))

    def fail(self, read: RowRead) -> None:
        """An unreadable row: counted as failed, and listed with its file:line, field and error."""
        self.stats.n_in += 1
        self.stats.fail(UNREADABLE)
        self._failed.append(json.dumps({"where": read.where, "field": read.field, "error": read.error}))

    def close(self) -> StageStats:
        self._kept.close()
        self._dropped.close()
        if self._failed:
            atomic_write_text("\n".join(self._failed) + "\n", self.out_dir / FAILED / f"{self.prefix}.jsonl")
        self.stats.check()
        return self.stats


def merge_rank_stats(out_dir: str | Path, stage: str) -> StageStats:
    """Merge the per-rank stats parts (out_dir/ranks/*.json) into out_dir/stats.json."""
    total = StageStats(stage)
    for part in sorted((Path(out_dir) / "ranks").glob("*.json")):
        total.merge(StageStats.read(part))
    total.write(Path(out_dir) / STATS)
    return total


class RecordStageStep(PipelineStep):
    """One rank of a record-by-record stage, as a datatrove PipelineStep (so Local/Slurm/Ray run it).

    Rank r reads input files r, r + world_size, …; writes `kept/`, `dropped/` and `failed/` files named
    `part-r{rank}*`, and its counts into `ranks/part-r{rank}.json`. Subclasses implement `judge`.
    """

    type = "🧹 - CURATION"
    name = "record stage"

    def __init__(self, inputs: list[str | Path], out_dir: str | Path, stage: str) -> None:
        super().__init__()
        self.inputs = [str(p) for p in inputs]
        self.out_dir = str(out_dir)
        self.stage = stage

    def judge(self, record: Record) -> tuple[str, str, dict[str, Any]] | None:
        """None to keep the record, else (reason, detail, metadata) to drop it."""
        raise NotImplementedError

    def finish_rank(self, rank: int) -> None:
        """Called after the rank's records: write rank-level reports here."""

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        files = discover_files(self.inputs)[rank::world_size]
        prefix = f"part-r{rank:05d}"
        clear_partial(self.out_dir, prefix)
        with StageOutputs(self.out_dir, self.stage, prefix=prefix) as outputs:
            for read, record in iter_records(files):
                if record is None:
                    outputs.fail(read)
                    self.stat_update("failed")
                    continue
                verdict = self.judge(record)
                if verdict is None:
                    outputs.keep(record)
                    self.stat_update("kept")
                else:
                    reason, detail, metadata = verdict
                    outputs.drop(record, reason, detail, **metadata)
                    self.stat_update("dropped", reason)
        self.finish_rank(rank)
        outputs.stats.write(Path(self.out_dir) / "ranks" / f"{prefix}.json")


def refuse_slurm(executor: ExecutorConfig, stage: str) -> None:
    """Stages merge their ranks' results in the calling process, which a Slurm array would leave behind."""
    if executor.type == "slurm":
        raise ValueError(
            f"{stage}: merges its ranks' results in this process: run it inside a Slurm allocation with a local "
            "executor (`thinktoggle run` does this: one Slurm job per stage)"
        )


def run_record_stage(step: RecordStageStep, executor: ExecutorConfig, job_name: str) -> StageStats:
    """Run `step` over its inputs with the configured executor (one task per input file at most)."""
    out_dir = Path(step.out_dir)
    refuse_slurm(executor, job_name)
    n_files = len(discover_files(step.inputs))
    config = replace(executor, tasks=max(1, min(executor.tasks, n_files)))
    runner = make_executor(config, [step], out_dir / "logs", job_name=job_name)
    runner.run()
    incomplete = runner.get_incomplete_ranks(range(config.tasks))
    if incomplete:
        raise RuntimeError(f"{job_name}: ranks {incomplete} did not complete (logs in {out_dir / 'logs'})")
    return merge_rank_stats(out_dir, step.stage)
