"""The filter stage's datatrove steps: a record reader, one step per filter, and the stage writer.

Documents follow the project's convention (`schemas.convert.record_to_document`): text = output, id =
record id, metadata = the rest of the record. Two stage keys ride along in the metadata:
- `source`: `file:line` the record was read from;
- `outcome`: None while the record is kept; else `{"status": "dropped"|"failed", "filter", "reason",
  "detail"}` — set by the first filter that rejects it.

A rejected document is *marked and forwarded*, not removed: later filters skip it, and the stage writer at
the end of the pipeline routes every document to kept/, dropped/ or failed/ and counts it. One step sees
every record, so `in == kept + dropped + failed` holds by construction. (`filter()` still follows
datatrove's BaseFilter contract, for use of a step in a plain datatrove pipeline.)
"""

from __future__ import annotations

import json
import time
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.batching import batched

from thinktoggle.schemas.arrow import PUBLISHED_WITH_VERDICTS_SCHEMA, RECORD_SCHEMA
from thinktoggle.schemas.convert import document_to_record, record_to_arrow_row, record_to_document, record_to_row
from thinktoggle.schemas.io import ShardWriter, atomic_write_text, iter_records
from thinktoggle.schemas.record import Record, Verdict
from thinktoggle.core.stats import StageStats

SOURCE = "source"
OUTCOME = "outcome"
READ_FILTER = "read"
UNREADABLE = "unreadable_row"
FILTER_ERROR = "filter_error"
VERDICT_VALUES = ("pass", "fail", "unverifiable")

# dropped/ and failed/: the published row (+ids, verdicts) and why it left. Unreadable input rows have only
# `source` and `detail` (file:line: field: error); their published columns are null.
REJECTED_SCHEMA = pa.schema(
    [
        *PUBLISHED_WITH_VERDICTS_SCHEMA,
        ("filter", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source", pa.string()),
    ]
)


def reason_key(reason: str) -> str:
    """A verdict reason is `identifier[: detail]`; stats count the identifier."""
    return reason.split(":", 1)[0].strip()


def rank_of(pair_id: str, world_size: int) -> int:
    """The rank that handles a prompt: every sample of one prompt lands in one rank (majority vote needs them)."""
    return zlib.crc32(pair_id.encode()) % world_size


def is_rejected(doc: Document) -> bool:
    return doc.metadata.get(OUTCOME) is not None


@dataclass(frozen=True)
class KeepPolicy:
    """Which verdicts keep a record: entries `verdict`, `verdict:reason`, `filter:verdict[:reason]`.

    Default: pass only. `unverifiable:no_gold` keeps rows that had no gold answer; `math:unverifiable` keeps
    every unverifiable math row. `error` verdicts are never kept (the row counts as failed).
    """

    entries: tuple[str, ...] = ("pass",)

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("keep: the policy keeps nothing (give at least 'pass')")
        for entry in self.entries:
            self._parse(entry)

    @staticmethod
    def _parse(entry: str) -> tuple[str | None, str, str | None]:
        parts = entry.split(":")
        filter_name = None
        if parts[0] not in VERDICT_VALUES:
            filter_name, parts = parts[0], parts[1:]
        if not parts or parts[0] not in VERDICT_VALUES or len(parts) > 2:
            raise ValueError(f"keep: {entry!r} is not verdict[:reason] or filter:verdict[:reason] ({VERDICT_VALUES})")
        return filter_name, parts[0], parts[1] if len(parts) == 2 else None

    def keeps(self, verdict: Verdict) -> bool:
        for entry in self.entries:
            filter_name, value, reason = self._parse(entry)
            if filter_name not in (None, verdict.filter) or value != verdict.verdict:
                continue
            if reason is None or reason == reason_key(verdict.reason):
                return True
        return False


class RecordReader(PipelineStep):
    """Records from internal-record parquet or published rows (jsonl/parquet), this rank's share of prompts.

    Every rank reads the whole input and keeps the prompts `rank_of(pair_id)` gives it, so that all samples
    of a prompt meet in one rank. An unreadable row becomes a failed document naming file:line and field.
    """

    name = "📖 thinktoggle records"
    type = "📖 - READER"

    def __init__(self, inputs: list[str]) -> None:
        super().__init__()
        self.inputs = [str(p) for p in inputs]

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for index, (read, record) in enumerate(iter_records(self.inputs)):
            if record is None:
                if index % world_size != rank:
                    continue
                self.stat_update(UNREADABLE)
                detail = f"{read.where}: {read.field}: {read.error}"
                outcome = {"status": "failed", "filter": READ_FILTER, "reason": UNREADABLE, "detail": detail}
                yield Document(text="", id=f"unreadable:{read.where}", metadata={SOURCE: read.where, OUTCOME: outcome})
                continue
            if rank_of(record.pair_id, world_size) != rank:
                continue
            self.stat_update("records")
            doc = record_to_document(record)
            doc.metadata[SOURCE] = read.where
            doc.metadata[OUTCOME] = None
            yield doc


class RecordFilter(BaseFilter):
    """One filter: judges a record into a Verdict (None: does not apply), and marks rejected documents."""

    filter_name = "?"
    type = "🔻 - FILTER"

    def __init__(self, keep: KeepPolicy = KeepPolicy(), batch_size: int = 1) -> None:
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
        if verdict.verdict == "error":
            status = "failed"
        elif self.keep.keeps(verdict):
            return True
        else:
            status = "dropped"
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
    """The end of the pipeline: kept/, dropped/, failed/ shards and this rank's stats (and progress)."""

    name = "💽 thinktoggle filter outputs"
    type = "💽 - WRITER"

    def __init__(self, out_dir: str, filters: list[str], write_records: bool = False) -> None:
        super().__init__()
        self.out_dir = str(out_dir)
        self.filters = list(filters)
        self.write_records = write_records

    def _clear_rank(self, root: Path, prefix: str) -> None:
        """A rank that died half-way left shards: a rerun of the rank rewrites them from scratch."""
        for folder in ("kept", "dropped", "failed", "records"):
            # ... and the hidden temp file of a shard it was writing when killed (never read, but disk)
            for stale in [*(root / folder).glob(f"{prefix}-*.parquet"), *(root / folder).glob(f".{prefix}-*.tmp-*")]:
                stale.unlink(missing_ok=True)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        root = Path(self.out_dir)
        prefix = f"rank{rank:05d}"
        self._clear_rank(root, prefix)
        stats = StageStats(stage="filter")
        stats.by_filter = {name: {"kept": 0, "dropped": {}, "failed": {}} for name in self.filters}
        progress_path = root / "progress" / f"{prefix}.json"
        last_progress = 0.0
        schemas = {"kept": PUBLISHED_WITH_VERDICTS_SCHEMA, "dropped": REJECTED_SCHEMA, "failed": REJECTED_SCHEMA}
        if self.write_records:
            schemas["records"] = RECORD_SCHEMA
        # Each writer publishes its shards when the block ends, or drops its partial shard on an error.
        with ExitStack() as open_writers:
            writers = {
                folder: open_writers.enter_context(ShardWriter(root / folder, schema, prefix=prefix))
                for folder, schema in schemas.items()
            }
            for doc in data:
                stats.n_in += 1
                self._route(doc, stats, writers)
                if time.monotonic() - last_progress > 1.0:
                    atomic_write_text(json.dumps({"done": stats.n_in}), progress_path)
                    last_progress = time.monotonic()
        atomic_write_text(json.dumps({"done": stats.n_in}), progress_path)
        stats.write(root / "stats" / f"{prefix}.json")
        yield from ()

    def _route(self, doc: Document, stats: StageStats, writers: dict[str, ShardWriter]) -> None:
        outcome = doc.metadata.get(OUTCOME)
        unread = outcome is not None and outcome["filter"] == READ_FILTER
        for name in [] if unread else self.filters:  # the filters it passed, up to the one that rejected it
            if outcome is not None and outcome["filter"] == name:
                counts = stats.by_filter[name][outcome["status"]]
                counts[outcome["reason"]] = counts.get(outcome["reason"], 0) + 1
                break
            stats.by_filter[name]["kept"] += 1
        if outcome is None:
            stats.keep()
            record = document_to_record(doc)
            writers["kept"].write(record_to_row(record, with_verdicts=True))
            if "records" in writers:
                writers["records"].write(record_to_arrow_row(record))
            self.stat_update("kept")
            return
        if outcome["status"] == "dropped":
            stats.drop(outcome["reason"])
        else:
            stats.fail(outcome["reason"])
        self.stat_update(outcome["status"])
        writers[outcome["status"]].write(rejected_row(doc))


def rejected_row(doc: Document) -> dict[str, Any]:
    """A dropped or failed document as a REJECTED_SCHEMA row."""
    outcome = doc.metadata[OUTCOME]
    if outcome["filter"] == READ_FILTER:
        row: dict[str, Any] = {}
    else:
        row = record_to_row(document_to_record(doc), with_verdicts=True)
    row.update(
        filter=outcome["filter"], reason=outcome["reason"], detail=outcome["detail"], source=doc.metadata.get(SOURCE)
    )
    return row
