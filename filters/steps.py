"""The filter stage's datatrove steps: a record reader, one step per filter, and the stage writer.

Documents follow the project's convention (`schemas.convert.record_to_document`): text = output, id =
record id, metadata = the rest of the record. Two stage keys ride along in the metadata:
- `source`: `file:line` the record was read from;
- `outcome`: None while the record is kept; else `{"status": "dropped"|"failed", "filter", "reason",
  "detail"}` — set by the first filter that rejects it.

A rejected document is *marked and forwarded*, not removed: later filters skip it, and the stage writer at
the end of the pipeline routes every document to kept/, dropped/ or failed/ (core/outputs.py) and counts it. One step sees
every record, so `in == kept + dropped + failed` holds by construction. (`filter()` still follows
datatrove's BaseFilter contract, for use of a step in a plain datatrove pipeline.)
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.batching import batched

from thinktoggle.core.layout import ranks_dir
from thinktoggle.core.outputs import UNREADABLE, StageOutputs, clear_partial, rank_prefix
from thinktoggle.core.verdicts import KEEP_PASS, KeepPolicy, outcome_of, reason_key
from thinktoggle.schemas.arrow import RECORD_SCHEMA
from thinktoggle.schemas.convert import arrow_row_to_record, document_to_record, record_to_arrow_row, record_to_document
from thinktoggle.schemas.io import ShardWriter, atomic_write_text, discover_files, iter_records
from thinktoggle.schemas.record import Record, Verdict

SOURCE = "source"
OUTCOME = "outcome"
READ_FILTER = "read"
FILTER_ERROR = "filter_error"
PARTITION = ".partition"  # hidden: readers of the stage folder never see the buckets
BUCKET_SCHEMA = pa.schema([*RECORD_SCHEMA, ("source", pa.string())])  # a record and the file:line it came from


def rank_of(pair_id: str, world_size: int) -> int:
    """The rank that handles a prompt: every sample of one prompt lands in one rank (majority vote needs them)."""
    return zlib.crc32(pair_id.encode()) % world_size


def is_rejected(doc: Document) -> bool:
    return doc.metadata.get(OUTCOME) is not None


def bucket_dir(out_dir: str | Path, bucket: int) -> Path:
    """Where the partition ranks write the records of filter rank `bucket`."""
    return Path(out_dir) / PARTITION / f"bucket{bucket:05d}"


def _unreadable_document(where: str, detail: str) -> Document:
    outcome = {"status": "failed", "filter": READ_FILTER, "reason": UNREADABLE, "detail": detail}
    return Document(text="", id=f"unreadable:{where}", metadata={SOURCE: where, OUTCOME: outcome})


class PartitionStep(PipelineStep):
    """Phase 1 of a filter run on several ranks: every input row is read once, by one rank.

    Rank r reads input files r, r + world_size, … and streams each record into bucket `rank_of(pair_id)`
    (all samples of a prompt meet in one bucket, for the majority vote), the way datatrove buckets
    signatures for dedup. Unreadable rows are accounted here, in this rank's failed/ shards and stats.
    """

    name = "🪣 thinktoggle partition"
    type = "📖 - READER"

    def __init__(self, inputs: list[str], out_dir: str) -> None:
        super().__init__()
        self.inputs = [str(p) for p in inputs]
        self.out_dir = str(out_dir)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        buckets = int(json.loads((Path(self.out_dir) / PARTITION / "buckets.json").read_text())["buckets"])
        prefix = f"partition{rank:05d}"
        clear_partial(self.out_dir, prefix)
        for bucket in range(buckets):  # what an interrupted try of this rank left
            for stale in bucket_dir(self.out_dir, bucket).glob(f"*{prefix}*"):
                stale.unlink()
        files = discover_files(self.inputs)[rank::world_size]
        with ExitStack() as stack:
            unreadable = stack.enter_context(StageOutputs(self.out_dir, "filter", prefix=prefix))
            writers = [
                stack.enter_context(ShardWriter(bucket_dir(self.out_dir, bucket), BUCKET_SCHEMA, prefix=prefix))
                for bucket in range(buckets)
            ]
            for read, record in iter_records(files):
                self.stat_update("rows_read")
                if record is None:
                    unreadable.fail_read(read)
                    continue
                writers[rank_of(record.pair_id, buckets)].write({**record_to_arrow_row(record), SOURCE: read.where})
        unreadable.write_rank_stats()
        yield from ()


def iter_bucket(paths: list[Path]) -> Iterator[Document]:
    """The documents of a rank's buckets, in order, each with the file:line its record was read from."""
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                source = row.pop(SOURCE)
                doc = record_to_document(arrow_row_to_record(row))
                doc.metadata[SOURCE] = source
                doc.metadata[OUTCOME] = None
                yield doc


class RecordReader(PipelineStep):
    """The records of this rank: the whole input on one rank, else this rank's bucket of every partition rank.

    An unreadable row becomes a failed document naming file:line and field (on several ranks, PartitionStep
    has accounted for them already).
    """

    name = "📖 thinktoggle records"
    type = "📖 - READER"

    def __init__(self, inputs: list[str], out_dir: str, partitioned: bool) -> None:
        super().__init__()
        self.inputs = [str(p) for p in inputs]
        self.out_dir = str(out_dir)
        self.partitioned = partitioned

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if self.partitioned:
            paths = sorted(bucket_dir(self.out_dir, rank).glob("*.parquet"))
            for doc in iter_bucket(paths):
                self.stat_update("records")
                yield doc
            return
        for read, record in iter_records(self.inputs):
            self.stat_update("rows_read")
            if record is None:
                yield _unreadable_document(read.where, f"{read.field}: {read.error}")
                continue
            doc = record_to_document(record)
            doc.metadata[SOURCE] = read.where
            doc.metadata[OUTCOME] = None
            yield doc


class RecordFilter(BaseFilter):
    """One filter as a datatrove step: a RecordJudge (core/verdicts.py) whose verdict marks rejected documents."""

    filter_name = "?"
    type = "🔻 - FILTER"

    def __init__(self, keep: KeepPolicy = KEEP_PASS, batch_size: int = 1) -> None:
        self.name = f"thinktoggle {self.filter_name}"  # before BaseFilter's init, which names its stats
        super().__init__(exclusion_writer=None, batch_size=batch_size)
        self.keep = keep

    # -- what a filter implements ------------------------------------------------------------------------
    def judge(self, record: Record) -> Verdict | None:
        raise NotImplementedError

    def judge_batch(self, records: list[Record]) -> list[Verdict | None]:
        return [self._judge_safely(r) for r in records]

    # -- machinery -------------------------------------------------------------------------------------
    def _judge_safely(self, record: Record) -> Verdict | None:
        try:
            return self.judge(record)
        except Exception as exc:  # noqa: BLE001 - a bug or a bad row must not kill the rank: the row fails
            return Verdict(self.filter_name, "error", f"{FILTER_ERROR}: {type(exc).__name__}: {exc}"[:500])

    def apply(self, doc: Document, verdict: Verdict | None) -> bool:
        """Record the verdict on the document and mark it when rejected; True when it stays."""
        self.stat_update("judged" if verdict else "not_applicable")
        if verdict is None:
            return True
        verdicts = [v for v in doc.metadata.get("verdicts") or [] if v["filter"] != verdict.filter]
        doc.metadata["verdicts"] = [*verdicts, verdict.to_dict()]  # a rerun replaces, never duplicates
        status = outcome_of(verdict, self.keep)
        if status == "kept":
            return True
        reason = reason_key(verdict.reason) or verdict.verdict
        doc.metadata[OUTCOME] = {
            "status": status,
            "filter": self.filter_name,
            "reason": reason,
            "detail": verdict.reason,
        }
        self.stat_update(f"{status}_{reason}")
        return False

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """datatrove's BaseFilter contract: True to keep, (False, reason) to drop."""
        verdict = self._judge_safely(document_to_record(doc))
        if self.apply(doc, verdict):
            return True
        return False, doc.metadata[OUTCOME]["reason"]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        return [self.filter(doc) for doc in batch]

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for batch in batched(data, self.batch_size):
            live = [d for d in batch if not is_rejected(d)]
            records = [document_to_record(d) for d in live]
            with self.track_time("batch" if self.batch_size > 1 else None):
                verdicts = self.judge_batch(records)
            for doc, verdict in zip(live, verdicts, strict=True):
                self.apply(doc, verdict)
            yield from batch


class FilterStageWriter(PipelineStep):
    """The end of the pipeline: routes every document to kept/, dropped/ or failed/, counts it per filter, and
    writes this rank's stats and progress under ranks/."""

    name = "💽 thinktoggle filter outputs"
    type = "💽 - WRITER"

    def __init__(self, out_dir: str, filters: list[str]) -> None:
        super().__init__()
        self.out_dir = str(out_dir)
        self.filters = list(filters)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        prefix = rank_prefix(rank)
        clear_partial(self.out_dir, prefix)  # a rank that died half-way is redone from scratch
        by_filter = {name: {"kept": 0, "dropped": {}, "failed": {}} for name in self.filters}
        progress_path = ranks_dir(self.out_dir) / f"{prefix}.progress"
        last_progress = 0.0
        with StageOutputs(self.out_dir, "filter", prefix=prefix) as outputs:
            for doc in data:
                self._route(doc, outputs, by_filter)
                if time.monotonic() - last_progress > 1.0:
                    atomic_write_text(json.dumps({"done": outputs.stats.n_in}), progress_path)
                    last_progress = time.monotonic()
        atomic_write_text(json.dumps({"done": outputs.stats.n_in}), progress_path)
        outputs.stats.by_filter = by_filter
        outputs.write_rank_stats()
        yield from ()

    def _route(self, doc: Document, outputs: StageOutputs, by_filter: dict[str, dict[str, Any]]) -> None:
        outcome = doc.metadata.get(OUTCOME)
        source = doc.metadata.get(SOURCE) or ""
        if outcome is not None and outcome["filter"] == READ_FILTER:
            outputs.fail(None, outcome["reason"], outcome["detail"], source)
            self.stat_update("failed")
            return
        for name in self.filters:  # the filters it passed, up to the one that rejected it
            if outcome is not None and outcome["filter"] == name:
                counts = by_filter[name][outcome["status"]]
                counts[outcome["reason"]] = counts.get(outcome["reason"], 0) + 1
                break
            by_filter[name]["kept"] += 1
        record = document_to_record(doc)
        if outcome is None:
            outputs.keep(record)
            self.stat_update("kept")
        elif outcome["status"] == "dropped":
            outputs.drop(record, outcome["reason"], outcome["detail"], source)
            self.stat_update("dropped")
        else:
            outputs.fail(record, outcome["reason"], outcome["detail"], source)
            self.stat_update("failed")
