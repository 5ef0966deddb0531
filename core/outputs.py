"""The writers every stage uses: kept/, dropped/, failed/ and the stage's (or rank's) stats, nothing lost.

    out_dir/kept/*.parquet      kept records (RECORD_SCHEMA): the next stage's input
    out_dir/dropped/*.parquet   dropped records (REJECTED_SCHEMA: the record + stage, reason, detail, source)
    out_dir/failed/*.parquet    records a stage could not process, and unreadable input rows (REJECTED_SCHEMA)
    out_dir/ranks/<prefix>.json one rank's StageStats; `merge_rank_stats` adds them into out_dir/stats.json
    out_dir/stats.json          StageStats: in == kept + dropped + failed (checked on write)

A stage whose stats.json exists is complete; a rerun returns its stats without redoing the work.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from datatrove.pipeline.base import PipelineStep

from thinktoggle.core.executors import ExecutorConfig, make_executor
from thinktoggle.core.layout import DROPPED, FAILED, KEPT, STATS, logs_dir, ranks_dir
from thinktoggle.core.stats import StageStats
from thinktoggle.core.verdicts import KEEP_PASS, KeepPolicy, outcome_of, reason_key
from thinktoggle.schemas.arrow import RECORD_SCHEMA, REJECTED_SCHEMA
from thinktoggle.schemas.convert import record_to_arrow_row
from thinktoggle.schemas.io import RowRead, ShardWriter, discover_files, iter_records
from thinktoggle.schemas.record import Record, Verdict

UNREADABLE = "unreadable_row"
_EMPTY_RECORD = dict.fromkeys(RECORD_SCHEMA.names)


def completed_stats(out_dir: str | Path) -> StageStats | None:
    """The stats of a stage that already finished in `out_dir`, else None."""
    path = Path(out_dir) / STATS
    return StageStats.read(path) if path.exists() else None


def clear_partial(out_dir: str | Path, prefix: str) -> None:
    """Remove the shards, rank stats (and hidden temp files) named `prefix*` that an unfinished run or rank left:
    a rank killed while writing `ranks/<prefix>.json` leaves its temp file, which no later write replaces."""
    out_dir = Path(out_dir)
    for folder in (out_dir / KEPT, out_dir / DROPPED, out_dir / FAILED, ranks_dir(out_dir)):
        for stale in [*folder.glob(f"{prefix}*"), *folder.glob(f".{prefix}*")]:
            if stale.is_file():
                stale.unlink()


def rejected_row(record: Record | None, stage: str, reason: str, detail: str, source: str) -> dict[str, Any]:
    """A REJECTED_SCHEMA row: the record (null columns for an unreadable row) and why it left."""
    row = record_to_arrow_row(record) if record is not None else dict(_EMPTY_RECORD)
    return {**row, "stage": stage, "reason": reason, "detail": detail, "source": source}


class StageOutputs:
    """The kept/dropped/failed writers and the counts of one stage, or of one rank of it (`prefix`).

    `write(record, verdict)` routes a record by its verdict (core/verdicts.py); `fail_read` accounts for an
    input row that could not be read. On an exception the partial shards are discarded, never published.
    """

    def __init__(
        self,
        out_dir: str | Path,
        stage: str,
        prefix: str = "part",
        keep: KeepPolicy = KEEP_PASS,
        rows_per_shard: int = 100_000,
        write_kept: bool = True,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.stage = stage
        self.prefix = prefix
        self.keep_policy = keep
        self.write_kept = write_kept  # False: kept records are counted only (train: they are its input as it is)
        self.stats = StageStats(stage)
        self._writers = ExitStack()
        self._open = {
            name: self._writers.enter_context(
                ShardWriter(self.out_dir / name, schema, prefix=prefix, rows_per_shard=rows_per_shard)
            )
            for name, schema in ((KEPT, RECORD_SCHEMA), (DROPPED, REJECTED_SCHEMA), (FAILED, REJECTED_SCHEMA))
        }

    def __enter__(self) -> StageOutputs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # ShardWriter's own exit publishes on success and aborts its partial shard on an exception.
        self._writers.__exit__(exc_type, exc, tb)
        if exc_type is None:
            self.stats.check()

    def write(self, record: Record, verdict: Verdict | None = None, source: str = "") -> str:
        """Route `record` by `verdict` (None: kept); the verdict is added to its verdicts. Returns the outcome."""
        if verdict is not None:
            record = record.with_verdict(verdict)
        outcome = outcome_of(verdict, self.keep_policy)
        if outcome == "kept":
            self.keep(record)
        else:
            reason = reason_key(verdict.reason) or verdict.verdict
            self._reject(outcome, record, reason, verdict.reason, source)
        return outcome

    def keep(self, record: Record) -> None:
        self.stats.n_in += 1
        self.stats.keep()
        if self.write_kept:
            self._open[KEPT].write(record_to_arrow_row(record))

    def drop(self, record: Record, reason: str, detail: str = "", source: str = "") -> None:
        """Drop `record` for `reason` (a stable key counted in stats); `detail` says what matched."""
        self._reject("dropped", record, reason, detail, source)

    def fail(self, record: Record | None, reason: str, detail: str = "", source: str = "") -> None:
        self._reject("failed", record, reason, detail, source)

    def fail_read(self, read: RowRead) -> None:
        """An unreadable input row: failed, with its file:line, field and error."""
        self.fail(None, UNREADABLE, f"{read.field}: {read.error}", read.where)

    def _reject(self, outcome: str, record: Record | None, reason: str, detail: str, source: str) -> None:
        self.stats.n_in += 1
        (self.stats.drop if outcome == "dropped" else self.stats.fail)(reason)
        folder = DROPPED if outcome == "dropped" else FAILED
        self._open[folder].write(rejected_row(record, self.stage, reason, detail, source))

    def write_rank_stats(self) -> Path:
        """This rank's counts, for `merge_rank_stats`."""
        return self.stats.write(ranks_dir(self.out_dir) / f"{self.prefix}.json")


def merge_rank_stats(out_dir: str | Path, stage: str, expected: list[str] | None = None) -> StageStats:
    """Add every rank's stats (out_dir/ranks/*.json) into out_dir/stats.json, which marks the stage complete.

    `expected`: the rank file stems that must be there; a missing one is named in the error.
    """
    folder = ranks_dir(out_dir)
    if expected is not None:
        missing = [name for name in expected if not (folder / f"{name}.json").exists()]
        if missing:
            raise RuntimeError(f"{stage}: ranks {missing} did not finish; see {logs_dir(out_dir)} and rerun")
    total = StageStats(stage)
    for part in sorted(folder.glob("*.json")):
        total.merge(StageStats.read(part))
    total.write(Path(out_dir) / STATS)
    return total


class RecordStageStep(PipelineStep):
    """One rank of a record-by-record stage, as a datatrove PipelineStep (so Local/Slurm/Ray run it).

    Rank r reads input files r, r + world_size, …, routes each record by `judge` (core/verdicts.py), and
    writes shards named `rank{r}*` and its counts into `ranks/rank{r}.json`.
    """

    type = "🧹 - CURATION"
    name = "record stage"

    def __init__(self, inputs: list[str | Path], out_dir: str | Path, stage: str) -> None:
        super().__init__()
        self.inputs = [str(p) for p in inputs]
        self.out_dir = str(out_dir)
        self.stage = stage

    def judge(self, record: Record) -> Verdict | None:
        raise NotImplementedError

    def finish_rank(self, rank: int) -> None:
        """Called after the rank's records: write rank-level reports here."""

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        files = discover_files(self.inputs)[rank::world_size]
        prefix = rank_prefix(rank)
        clear_partial(self.out_dir, prefix)
        with StageOutputs(self.out_dir, self.stage, prefix=prefix) as outputs:
            for read, record in iter_records(files):
                if record is None:
                    outputs.fail_read(read)
                    self.stat_update("failed")
                    continue
                self.stat_update(outputs.write(record, self.judge(record), read.where))
        self.finish_rank(rank)
        outputs.write_rank_stats()


def rank_prefix(rank: int) -> str:
    """The name of a rank's shards and stats file."""
    return f"rank{rank:05d}"


def run_record_stage(step: RecordStageStep, executor: ExecutorConfig, job_name: str) -> StageStats:
    """Run `step` over its inputs with the configured executor (one task per input file at most)."""
    out_dir = Path(step.out_dir)
    n_files = len(discover_files(step.inputs))
    config = replace(executor, tasks=max(1, min(executor.tasks, n_files)))
    runner = make_executor(config, [step], logs_dir(out_dir), job_name=job_name)
    runner.run()
    return merge_rank_stats(out_dir, step.stage, [rank_prefix(r) for r in range(config.tasks)])
