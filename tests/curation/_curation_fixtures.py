"""Helpers for the curation stage tests: build Records and write them as internal-record shards."""

from __future__ import annotations

from pathlib import Path

from thinktoggle.schemas.arrow import RECORD_SCHEMA
from thinktoggle.schemas.convert import record_to_arrow_row
from thinktoggle.schemas.io import ShardWriter, iter_records
from thinktoggle.schemas.record import Record
from thinktoggle.schemas.think import compose_output


def pair(prompt: str, category: str = "math", answer: str = "42", generator: str = "teacher-a") -> list[Record]:
    """An on/off pair of one prompt."""
    messages = [{"role": "user", "content": prompt}]
    on = Record(
        input=messages,
        category=category,
        reasoning="on",
        output=compose_output(f"Thinking about: {prompt}", answer),
        generator=generator,
    )
    off = Record(input=messages, category=category, reasoning="off", output=answer, generator=generator)
    return [on, off]


def write_records(records: list[Record], folder: Path, rows_per_shard: int = 100_000) -> Path:
    with ShardWriter(folder, RECORD_SCHEMA, rows_per_shard=rows_per_shard) as writer:
        for record in records:
            writer.write(record_to_arrow_row(record))
    return folder


def read_records(folder: Path) -> list[Record]:
    if not folder.exists():
        return []
    return [record for _read, record in iter_records([folder]) if record is not None]
