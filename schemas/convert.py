"""Conversions between the internal record, the published row, the Arrow row and datatrove's Document.

These are the only places where the forms meet: stages work on Records; rows exist at the edges.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from datatrove.data import Document

from thinktoggle.schemas.record import Record, Verdict


def clean_tests(tests: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop the null members that Arrow's struct adds (a functional test has no `stdio`, and vice versa)."""
    if not tests:
        return None
    cleaned = {k: v for k, v in tests.items() if v is not None}
    return cleaned or None


def record_to_row(record: Record) -> dict[str, Any]:
    """The published row of a record."""
    row: dict[str, Any] = {
        "input": [{"role": m["role"], "content": m["content"]} for m in record.input],
        "output": record.output,
        "category": record.category,
        "license": record.license,
        "reasoning": record.reasoning,
        "generator": record.generator,
        "used_in_training": record.used_in_training,
        "version": record.version,
        "system_prompt": record.system_prompt,
        "expected_answer": record.expected_answer,
        "tests": record.tests,
    }
    return row


def lift_system_turn(messages: list[dict[str, str]], system_prompt: str) -> tuple[list[dict[str, str]], str]:
    """Move a leading system turn of `messages` into the system prompt, when that loses nothing.

    It moves when the row's own system prompt is empty or says the same; a different system turn (e.g. tool
    definitions beside "detailed thinking on") stays in the messages rather than being dropped.
    """
    if messages and messages[0]["role"] == "system" and system_prompt in ("", messages[0]["content"]):
        return messages[1:], messages[0]["content"]
    return messages, system_prompt


def row_to_record(row: dict[str, Any]) -> Record:
    """A record from a published row (assumed valid: check it with `row_problems` first).

    A leading system turn inside `input` becomes the system prompt (see `lift_system_turn`).
    """
    messages = [{"role": m["role"], "content": m["content"]} for m in row["input"]]
    messages, system_prompt = lift_system_turn(messages, row.get("system_prompt") or "")
    # A row that has no system prompt keeps none (Record fills in the Nemotron prompt only when given None).
    verdicts = [Verdict(**v) for v in row.get("verdicts") or []]
    return Record(
        input=messages,
        category=row["category"],
        reasoning=row["reasoning"],
        output=row["output"],
        system_prompt=system_prompt,
        expected_answer=row.get("expected_answer"),
        tests=clean_tests(row.get("tests")),
        generator=row["generator"],
        license=row["license"],
        used_in_training=row.get("used_in_training") or "",
        version=row["version"],
        verdicts=verdicts,
        pair_id=row.get("pair_id") or "",
        id=row.get("id") or "",
    )


def record_to_arrow_row(record: Record) -> dict[str, Any]:
    """The record as a row of `RECORD_SCHEMA` (free-form dicts as JSON strings).

    Built field by field: `dataclasses.asdict`'s recursive deep copy was over half of a curation stage's time.
    The containers Arrow reads are copied, so editing the record before the row is written changes nothing.
    """
    return {
        "input": [dict(m) for m in record.input],
        "category": record.category,
        "reasoning": record.reasoning,
        "output": record.output,
        "system_prompt": record.system_prompt,
        "expected_answer": record.expected_answer,
        "tests": copy.deepcopy(record.tests) if record.tests else record.tests,
        "generator": record.generator,
        "license": record.license,
        "used_in_training": record.used_in_training,
        "version": record.version,
        "sample": record.sample,
        "sampling": json.dumps(record.sampling, sort_keys=True),
        "verdicts": [v.to_dict() for v in record.verdicts],
        "metadata": json.dumps(record.metadata, sort_keys=True),
        "pair_id": record.pair_id,
        "id": record.id,
    }


class RecordFieldError(ValueError):
    """An internal-record row whose `field` has the wrong type: the reader reports it, naming the field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"{field}: {reason}")


_STRING_FIELDS = ("output", "generator", "license", "used_in_training", "version")
_OPTIONAL_STRING_FIELDS = ("system_prompt", "expected_answer", "pair_id", "id")


def _check_record_types(data: dict[str, Any]) -> None:
    """The types the stages rely on (a parquet column may hold nulls, a jsonl row anything): fail here, at the
    reader, naming the field, rather than deep inside a stage."""
    from thinktoggle.schemas.record import CATEGORIES, ROLES

    messages = data.get("input")
    if not isinstance(messages, list) or not messages:
        raise RecordFieldError("input", "expected a non-empty list of messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise RecordFieldError(f"input.{i}", "expected {role: one of " + ", ".join(ROLES) + ", content: string}")
    if data.get("category") not in CATEGORIES:
        raise RecordFieldError("category", f"expected one of {', '.join(CATEGORIES)}, got {data.get('category')!r}")
    if data.get("reasoning") not in ("on", "off"):
        raise RecordFieldError("reasoning", f"expected 'on' or 'off', got {data.get('reasoning')!r}")
    for name in _STRING_FIELDS:
        if name in data and not isinstance(data[name], str):
            raise RecordFieldError(name, f"expected a string, got {type(data[name]).__name__}")
    for name in _OPTIONAL_STRING_FIELDS:
        if data.get(name) is not None and not isinstance(data[name], str):
            raise RecordFieldError(name, f"expected a string or null, got {type(data[name]).__name__}")
    sample = data.get("sample", 0)
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
        raise RecordFieldError("sample", f"expected an integer >= 0, got {sample!r}")
    if data.get("tests") is not None and not isinstance(data["tests"], dict):
        raise RecordFieldError("tests", f"expected an object or null, got {type(data['tests']).__name__}")
    verdicts = data.get("verdicts") or []
    if not isinstance(verdicts, list):
        raise RecordFieldError("verdicts", f"expected a list, got {type(verdicts).__name__}")
    for i, v in enumerate(verdicts):
        if (
            not isinstance(v, dict)
            or set(v) != {"filter", "verdict", "reason"}
            or not all(isinstance(x, str) for x in v.values())
        ):
            raise RecordFieldError(f"verdicts.{i}", "expected {filter, verdict, reason} strings")


def _json_object(data: dict[str, Any], name: str) -> dict[str, Any]:
    text = data.get(name) or "{}"
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError as exc:
        raise RecordFieldError(name, f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RecordFieldError(name, f"expected a JSON object, got {type(value).__name__}")
    return value


def arrow_row_to_record(row: dict[str, Any]) -> Record:
    """A RECORD_SCHEMA row as a Record; raises RecordFieldError (a ValueError) naming a mistyped field."""
    data = dict(row)
    data["sampling"] = _json_object(data, "sampling")
    data["metadata"] = _json_object(data, "metadata")
    _check_record_types(data)
    data["tests"] = clean_tests(data.get("tests"))
    return Record.from_dict(data)


def record_to_document(record: Record) -> Document:
    """A datatrove Document: the output is the text, the rest of the record rides in metadata."""
    metadata = record.to_dict()
    text = metadata.pop("output")
    doc_id = metadata.pop("id")
    return Document(text=text, id=doc_id, metadata=metadata)


def document_to_record(doc: Document) -> Record:
    """The record of a Document made by `record_to_document`; keys other steps added to metadata are ignored.

    (To read record parquet back, use `schemas.io.iter_records`: datatrove's ParquetReader skips documents
    with an empty text and merges a `metadata` column into the Document's own metadata.)
    """
    data = {k: v for k, v in doc.metadata.items() if k in Record.__dataclass_fields__}
    data["output"] = doc.text
    data["id"] = doc.id
    return Record.from_dict(data)
