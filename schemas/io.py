"""Reading rows from files, and writing parquet shards atomically.

Readers stream: jsonl line by line, parquet by record batch, so memory stays bounded on multi-gigabyte
inputs. Every row comes back with where it came from; a row that cannot be read comes back as an error that
names the file, the 1-based line (or row) and the reason, instead of raising.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
MAX_LINE_BYTES = 64 * 2**20  # a line longer than this is reported, not loaded


@dataclass(frozen=True, slots=True)
class RowRead:
    """One row read from a file: either `row` (a dict) or `error` (with the field it concerns)."""

    file: str
    line: int  # 1-based line (jsonl) or row number (parquet, arrow)
    row: dict[str, Any] | None = None
    error: str | None = None
    field: str = "(row)"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


class InputError(Exception):
    """A path that is not readable input at all (missing, unknown format)."""


def _suffix_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(".arrow"):
        return "arrow"
    return None


def is_saved_hf_dataset(path: Path) -> bool:
    """A folder written by `datasets.Dataset.save_to_disk` (or a DatasetDict's split folder)."""
    return path.is_dir() and (path / "state.json").exists() and (path / "dataset_info.json").exists()


# Sub-folders where a stage keeps what is *not* its output (rows it rejected, dropped or failed, executor
# logs). Walking a stage's folder skips them, so the next stage never reads dropped records as input;
# name such a folder explicitly to read it.
SIDE_FOLDERS = frozenset({"rejected", "dropped", "failed", "logs"})
REJECTION_COLUMNS = ("stage", "reason", "detail", "source")  # schemas/arrow.py REJECTED_SCHEMA beyond the record
KEPT_FOLDER = "kept"  # a stage folder (core/layout.py) is read through its kept records only


def _is_data_file_in_folder(path: Path) -> bool:
    """Inside a folder, `.json` files are bookkeeping (stats.json, a saved dataset's state.json and
    dataset_info.json), not rows: only .jsonl/.ndjson/.parquet/.arrow files are read there."""
    name = path.name.lower()
    hidden = name.startswith(".") or ".tmp" in name
    return not hidden and _suffix_kind(path) is not None and not name.endswith((".json", ".json.gz"))


def discover_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into the data files they hold.

    A file named explicitly is read if its format is known (`.json` included). In a folder, temporary files of
    an unfinished atomic write (`*.tmp*`), hidden files, `.json` bookkeeping files and the SIDE_FOLDERS are
    skipped, as is everything in hidden folders; a saved HF dataset is read through its `.arrow` files; a
    stage's folder (one with `kept/`) is read through `kept/` alone.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_file():
            if _suffix_kind(path) is None:
                raise InputError(f"{path}: unknown format (expected .jsonl, .json, .parquet or .arrow)")
            found.append(path)
            continue
        if (path / KEPT_FOLDER).is_dir():  # a stage's folder: its kept records are what the next stage reads
            path = path / KEPT_FOLDER
        for child in sorted(path.rglob("*")):
            inside = child.relative_to(path).parts[:-1]
            skipped_folder = any(part in SIDE_FOLDERS or part.startswith(".") for part in inside)
            if not skipped_folder and child.is_file() and _is_data_file_in_folder(child):
                found.append(child)
    return found


def _iter_jsonl(path: Path, max_line_bytes: int) -> Iterator[RowRead]:
    opener = gzip.open if path.name.endswith(".gz") else open
    name = str(path)
    with opener(path, "rb") as handle:
        line_no = 0
        rows_seen = 0  # rows and row errors; a file of blank lines has none and is reported as empty
        while True:
            raw = handle.readline(max_line_bytes + 1)
            if not raw:
                break
            line_no += 1
            rows_seen += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                while (more := handle.readline(max_line_bytes)) and not more.endswith(b"\n"):
                    pass  # skip the rest of the oversized line without holding it
                yield RowRead(name, line_no, error=f"line longer than {max_line_bytes} bytes")
                continue
            truncated = not raw.endswith(b"\n")
            if not raw.strip():
                rows_seen -= 1
                continue  # blank lines are allowed between rows
            try:
                # A byte-order mark (files saved by Windows editors) is not part of the first row.
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield RowRead(name, line_no, error=f"invalid UTF-8 at byte {exc.start}")
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                what = "truncated last line" if truncated else "malformed JSON"
                yield RowRead(name, line_no, error=f"{what}: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(row, dict):
                yield RowRead(name, line_no, error=f"expected a JSON object, got {type(row).__name__}")
                continue
            yield RowRead(name, line_no, row=row)
        if rows_seen == 0:
            yield RowRead(name, 1, error="empty file (no rows)" if line_no else "empty file")


def _iter_table_batches(path: Path, batches: Iterable[pa.RecordBatch]) -> Iterator[RowRead]:
    name = str(path)
    row_no = 0
    for batch in batches:
        for row in batch.to_pylist():
            row_no += 1
            yield RowRead(name, row_no, row=row)
    if row_no == 0:
        yield RowRead(name, 1, error="empty file (no rows)")


def _iter_parquet(path: Path, batch_size: int) -> Iterator[RowRead]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        yield RowRead(str(path), 1, error=f"not a readable parquet file: {exc}")
        return
    try:
        yield from _iter_table_batches(path, parquet.iter_batches(batch_size=batch_size))
    except (pa.ArrowException, OSError) as exc:
        yield RowRead(str(path), 1, error=f"parquet read failed: {exc}")


def _iter_arrow(path: Path) -> Iterator[RowRead]:
    try:
        with pa.memory_map(str(path)) as source:
            try:
                reader = pa.ipc.open_stream(source)
            except pa.ArrowInvalid:
                reader = pa.ipc.open_file(source)
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            else:
                batches = iter(reader)
            yield from _iter_table_batches(path, batches)
    except (pa.ArrowException, OSError) as exc:
        yield RowRead(str(path), 1, error=f"not a readable arrow file: {exc}")


def iter_rows(
    paths: Iterable[str | Path], batch_size: int = 1024, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[RowRead]:
    """Every row of every data file under `paths`, in a stable order, errors included."""
    for path in discover_files(paths):
        kind = _suffix_kind(path)
        if kind == "jsonl":
            yield from _iter_jsonl(path, max_line_bytes)
        elif kind == "parquet":
            yield from _iter_parquet(path, batch_size)
        else:
            yield from _iter_arrow(path)


def atomic_write_parquet(table: pa.Table, path: str | Path) -> Path:
    """Write a whole table to `path` so that readers see either nothing or the complete file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    pq.write_table(table, tmp)
    os.replace(tmp, target)
    return target


def atomic_write_text(text: str, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, target)
    return target


class ShardWriter:
    """Streams rows into parquet shards of at most `rows_per_shard` rows, each published atomically.

    Rows are buffered `batch_rows` at a time and written as row groups into a hidden temporary file; the
    shard appears under its final name (`{prefix}-00000.parquet`, …) only when it is complete.
    """

    def __init__(
        self,
        folder: str | Path,
        schema: pa.Schema,
        prefix: str = "part",
        rows_per_shard: int = 100_000,
        batch_rows: int = 2_000,
    ) -> None:
        self.folder = Path(folder)
        self.schema = schema
        self.prefix = prefix
        self.rows_per_shard = rows_per_shard
        self.batch_rows = batch_rows
        self.shards: list[Path] = []
        self.rows_written = 0
        self._buffer: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._rows_in_shard = 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _shard_path(self) -> Path:
        return self.folder / f"{self.prefix}-{len(self.shards):05d}.parquet"

    def write(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.batch_rows or self._rows_in_shard + len(self._buffer) >= self.rows_per_shard:
            self._flush()

    def _flush(self) -> None:
        while self._buffer:
            room = self.rows_per_shard - self._rows_in_shard
            chunk, self._buffer = self._buffer[:room], self._buffer[room:]
            if self._writer is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._tmp = self.folder / f".{self._shard_path().name}.tmp-{uuid.uuid4().hex[:8]}"
                self._writer = pq.ParquetWriter(self._tmp, self.schema)
            self._writer.write_table(pa.Table.from_pylist(chunk, schema=self.schema))
            self._rows_in_shard += len(chunk)
            self.rows_written += len(chunk)
            if self._rows_in_shard >= self.rows_per_shard:
                self._finish_shard()

    def _finish_shard(self) -> None:
        if self._writer is None or self._tmp is None:
            return
        self._writer.close()
        final = self._shard_path()
        os.replace(self._tmp, final)
        self.shards.append(final)
        self._writer, self._tmp, self._rows_in_shard = None, None, 0

    def close(self) -> list[Path]:
        self._flush()
        self._finish_shard()
        return self.shards

    def abort(self) -> None:
        """Drop the shard in progress; completed shards stay."""
        if self._writer is not None:
            self._writer.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._writer, self._tmp, self._buffer = None, None, []


def iter_records(paths: Iterable[str | Path], batch_size: int = 1024) -> Iterator[tuple[RowRead, Any]]:
    """Every record under `paths`: internal-record parquet (RECORD_SCHEMA) or published rows.

    Yields (where it came from, Record) or (the unreadable RowRead, None) — with `.error` set — for rows
    that are not valid records; a published row is schema-checked first, so the error names the field.
    """
    return iter_records_of(iter_rows(paths, batch_size=batch_size))


def iter_records_of(reads: Iterable[RowRead]) -> Iterator[tuple[RowRead, Any]]:
    """`iter_records` over rows already read."""
    from thinktoggle.schemas.conversation import detect_layout, language_of_source, layout_problems
    from thinktoggle.schemas.convert import arrow_row_to_record, conversation_row_to_record, row_to_record

    for read in reads:
        if read.error is not None:
            yield read, None
            continue
        row = read.row
        assert row is not None
        if "sampling" in row and "pair_id" in row:  # internal record (a dropped/failed one: why it left aside)
            try:
                if "stage" in row:  # only dropped/failed rows pay for the copy: kept records are the hot path
                    row = {k: v for k, v in row.items() if k not in REJECTION_COLUMNS}
                yield read, arrow_row_to_record(row)
            except (TypeError, ValueError, KeyError) as exc:
                field = getattr(exc, "field", "(row)")  # RecordFieldError names it
                yield RowRead(read.file, read.line, error=f"not a valid record: {exc}", field=field), None
            continue
        layout = detect_layout(row)  # a published row: Llama-Nemotron's, or a conversation (Nemotron v1 / v2)
        problems = list(layout_problems(row, layout))
        if problems:
            first = problems[0]
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            yield RowRead(read.file, read.line, error=first.reason + more, field=first.field), None
            continue
        if layout == "llama-nemotron":
            yield read, row_to_record(row)
        else:
            yield read, conversation_row_to_record(row, language_of_source(read.file))
