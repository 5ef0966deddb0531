"""`thinktoggle ingest`: read the published datasets (files or a Hub id) into the stage layout.

Three layouts, recognised row by row from the columns (schemas/conversation.py): Llama-Nemotron's (v1 or
v1.1 rows: `input` turns, `output`), and the conversational Nemotron-Post-Training-Dataset-v1 and -v2
(`messages`, v1 with tool calls and `metadata`), read by `schemas.convert.conversation_row_to_record`.

Llama-Nemotron v1 rows carry the Llama-3 chat template baked into one `input` string and an `output` ending with
`<|eot_id|>`; they are split back into messages and the special tokens removed. Everything streams.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinktoggle.core.layout import kept_dir, stats_path
from thinktoggle.core.outputs import StageOutputs
from thinktoggle.schemas.conversation import detect_layout, language_of_source, layout_problems
from thinktoggle.schemas.convert import conversation_row_to_record, lift_system_turn, row_to_record
from thinktoggle.schemas.hub import load_hub_dataset
from thinktoggle.schemas.io import InputError, RowRead, discover_files, iter_rows
from thinktoggle.schemas.published import row_problems
from thinktoggle.schemas.record import Record

_HEADER = re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n")
_LLAMA3_SPECIALS = re.compile(r"<\|(begin_of_text|end_of_text|eot_id|eom_id|start_header_id|end_header_id)\|>")


def parse_llama3_prompt(text: str) -> tuple[str, list[dict[str, str]]]:
    """Split a baked Llama-3 chat prompt into (system prompt, turns). The trailing empty assistant header
    (the generation prompt) is dropped. Raises ValueError when no header is found."""
    headers = list(_HEADER.finditer(text))
    if not headers:
        raise ValueError("no <|start_header_id|>role<|end_header_id|> header found")
    system = ""
    turns: list[dict[str, str]] = []
    for i, match in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        content = _LLAMA3_SPECIALS.sub("", text[match.end() : end]).strip()
        role = match.group(1)
        if role == "ipython":
            role = "tool"
        if i == 0 and role == "system":
            system = content
        elif i == len(headers) - 1 and role == "assistant" and not content:
            continue
        else:
            turns.append({"role": role, "content": content})
    return system, turns


def normalise_row(row: dict[str, Any]) -> dict[str, Any]:
    """A v1.1 row from a v1 or v1.1 row. Unknown columns are kept so that the schema check reports them.

    v1.1 rows pass through unchanged (their output byte for byte), except that a leading system turn in
    `input` moves to `system_prompt` when that loses nothing.
    """
    out = dict(row)
    if isinstance(row.get("input"), str):  # v1: the whole chat template in one string
        system, turns = parse_llama3_prompt(row["input"])
        out["input"] = turns
        if not out.get("system_prompt"):
            out["system_prompt"] = system
        if isinstance(out.get("output"), str):
            out["output"] = _LLAMA3_SPECIALS.sub("", out["output"]).rstrip()
    messages = out.get("input")
    if isinstance(messages, list) and messages and all(isinstance(m, dict) and "role" in m for m in messages):
        first = messages[0]
        if first["role"] == "system" and isinstance(first.get("content"), str):
            system_prompt = out.get("system_prompt") or ""
            if isinstance(system_prompt, str):
                out["input"], out["system_prompt"] = lift_system_turn(messages, system_prompt)
    out.setdefault("system_prompt", "")
    for column in ("expected_answer", "tests"):
        out.setdefault(column, None)
    return out


@dataclass
class Selection:
    """Which valid rows to keep; the rest are counted as skipped."""

    category: str | None = None
    reasoning: str | None = None
    used_in_training: str | None = None

    def accepts(self, record: Record) -> bool:
        if self.category and record.category != self.category:
            return False
        if self.reasoning and record.reasoning != self.reasoning:
            return False
        if self.used_in_training:
            used = {part.strip().lower() for part in record.used_in_training.split(",")}
            if self.used_in_training.lower() not in used:
                return False
        return True

    def describe(self) -> str:
        """The selection as `key=value` pairs, for the detail of a row it drops."""
        chosen = {"category": self.category, "reasoning": self.reasoning, "used_in_training": self.used_in_training}
        return ", ".join(f"{key}={value}" for key, value in chosen.items() if value)


@dataclass
class IngestSummary:
    rows: int = 0
    written: int = 0
    skipped: int = 0
    rejected: int = 0
    shards: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.rows} rows, {self.written} written, {self.skipped} skipped, {self.rejected} rejected"


def iter_hub_rows(dataset_id: str, split: str | None = None, config: str | None = None) -> Iterator[RowRead]:
    """Stream a Hub dataset's rows (every split unless one is named) without downloading it whole. The
    dataset is opened now, so a HubError (offline, gated, misspelled, no such config or split) comes before
    any row is read."""
    streams = load_hub_dataset(dataset_id, config, split, streaming=True)
    return _hub_split_rows(dataset_id, {split: streams} if split else dict(streams))


def _hub_split_rows(dataset_id: str, named: dict[str, Any]) -> Iterator[RowRead]:
    for split_name, stream in named.items():
        name, index = f"hub:{dataset_id}/{split_name}", 0
        try:
            for index, row in enumerate(stream, start=1):
                yield RowRead(name, index, row=row)
        except Exception as exc:  # e.g. files of one split that `datasets` cannot cast to one schema
            # The rest of this split cannot be read: report where it stopped and go on with the next split.
            yield RowRead(name, index + 1, error=f"stream failed: {type(exc).__name__}: {str(exc)[:300]}")


def _source_rows(source: str, split: str | None, config: str | None) -> Iterator[RowRead]:
    """The rows of one source. Local files are discovered now, so a bad path fails before anything is written."""
    if Path(source).exists():
        return iter_rows(discover_files([source]))
    if re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        return iter_hub_rows(source, split=split, config=config)
    raise FileNotFoundError(f"{source}: no such file or folder, and not a Hub dataset id (org/name)")


def _record_or_problems(read: RowRead) -> tuple[Record | None, list[tuple[str, str]]]:
    """The record of one read, or the (field, reason) problems that make it unusable."""
    if read.error is not None:
        return None, [(read.field, read.error)]
    layout = detect_layout(read.row)
    if layout != "llama-nemotron":
        problems = [(p.field, p.reason) for p in layout_problems(read.row, layout)]
        if problems:
            return None, problems
        return conversation_row_to_record(read.row, language_of_source(read.file)), []
    row, problems = _normalised_or_problems(read)
    return (row_to_record(row) if row is not None else None), problems


def _normalised_or_problems(read: RowRead) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """The v1.1 row of one read, or the (field, reason) problems that make it unusable."""
    try:
        row = normalise_row(read.row)
    except ValueError as exc:
        return None, [("input", str(exc))]
    problems = [(p.field, p.reason) for p in row_problems(row)]
    return (None, problems) if problems else (row, [])


def ingest(
    sources: list[str],
    out_dir: str | Path,
    selection: Selection | None = None,
    split: str | None = None,
    config: str | None = None,
    rows_per_shard: int = 100_000,
    report=None,
) -> IngestSummary:
    """Ingest `sources` into the stage layout: records in kept/, unselected rows in dropped/, invalid rows in
    failed/ (source file:line, the field and the reason), stats.json."""
    out = Path(out_dir)
    if stats_path(out).exists() or any(kept_dir(out).glob("*.parquet")):
        raise InputError(f"{out}: already holds an ingest; use an empty folder")
    streams = [_source_rows(source, split, config) for source in sources]
    selection = selection or Selection()
    summary = IngestSummary()
    with StageOutputs(out, "ingest", rows_per_shard=rows_per_shard) as outputs:
        for stream in streams:
            for read in stream:
                summary.rows += 1
                record, problems = _record_or_problems(read)
                if problems:
                    summary.rejected += 1
                    for field_name, reason in problems:
                        if report:
                            report(f"{read.where}: {field_name}: {reason}")
                    detail = "; ".join(f"{f}: {r}" for f, r in problems)
                    outputs.fail(None, f"invalid_row:{problems[0][0]}", detail, read.where)
                    continue
                assert record is not None
                if not selection.accepts(record):
                    summary.skipped += 1
                    outputs.drop(record, "not_selected", selection.describe(), read.where)
                    continue
                outputs.keep(record)
                summary.written += 1
    summary.shards = [str(p) for p in sorted(kept_dir(out).glob("*.parquet"))]
    outputs.stats.write(stats_path(out))
    return summary
