"""Conversions between the internal record, the published row, the Arrow row and datatrove's Document.

These are the only places where the forms meet: stages work on Records; rows exist at the edges.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from datatrove.data import Document

from thinktoggle.schemas.record import Record, Verdict, canonical_json


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
        "tool_calls": copy.deepcopy(record.tool_calls),
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
    from thinktoggle.schemas.record import RECORD_CATEGORIES, ROLES, is_record_category

    messages = data.get("input")
    if not isinstance(messages, list) or not messages:
        raise RecordFieldError("input", "expected a non-empty list of messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise RecordFieldError(f"input.{i}", "expected {role: one of " + ", ".join(ROLES) + ", content: string}")
    if not is_record_category(data.get("category")):
        expected = ", ".join(RECORD_CATEGORIES) + " or multilingual_<lang>"
        raise RecordFieldError("category", f"expected one of {expected}, got {data.get('category')!r}")
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


def _without_null_tool_calls(messages: Any) -> Any:
    """Turns as the record holds them: Arrow gives every turn a `tool_calls` member (null when it has none);
    a record's turn has the key only when it calls tools."""
    if not isinstance(messages, list):
        return messages
    return [{k: v for k, v in m.items() if k != "tool_calls" or v} if isinstance(m, dict) else m for m in messages]


def arrow_row_to_record(row: dict[str, Any]) -> Record:
    """A RECORD_SCHEMA row as a Record; raises RecordFieldError (a ValueError) naming a mistyped field."""
    data = dict(row)
    data["input"] = _without_null_tool_calls(data.get("input"))
    data["tool_calls"] = data.get("tool_calls") or []  # files written before tool calls have no column
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


# -- the conversational layouts (schemas/conversation.py): Nemotron-Post-Training-Dataset-v1 / -v2 rows -----------
ROW_METADATA = "row_metadata"  # record.metadata key: a v1 row's own `metadata` string, kept verbatim
UUID = "uuid"  # record.metadata key: the row's uuid
LANGUAGE = "language"  # record.metadata key: the language of a multilingual record (from its Hub split)
NO_SYSTEM_TURN = "no_system_turn"  # record.metadata key: the conversation had no system turn at all
_CARRIED = ("expected_answer", "tests", "used_in_training", "tools")  # what a v1 `metadata` string may carry
_UUID_NAMESPACE = uuid.UUID("6f1f0c3e-9a8e-4d55-8a3b-2d1f6f7e5c10")


def _turn(message: dict[str, Any]) -> dict[str, Any]:
    turn: dict[str, Any] = {"role": message["role"], "content": message.get("content") or ""}
    if message.get("tool_calls"):
        turn["tool_calls"] = [_tool_call(c) for c in message["tool_calls"]]
    return turn


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call["function"]
    return {
        "id": call.get("id"),
        "type": call.get("type") or "function",
        "function": {"name": function["name"], "arguments": function["arguments"]},
    }


def conversation_row_to_record(row: dict[str, Any], language: str | None = None) -> Record:
    """A record from a nemotron-v1 or -v2 row (assumed valid: check it with `conversation.layout_problems`).

    The last turn is the answer (`output`, `tool_calls`); the turns before it, past the system turn, are the
    prompt. `uuid`, the v1 `metadata` string (verbatim) and the language ride in `record.metadata`; gold
    answers or tool declarations in a v1 metadata object are also lifted onto the record for the filters.
    """
    messages = row["messages"]
    system = messages[0] if messages[0]["role"] == "system" else None
    turns = [_turn(m) for m in messages[1 if system else 0 :]]
    answer = turns.pop()
    metadata: dict[str, Any] = {UUID: row["uuid"]}
    if row.get("metadata"):
        metadata[ROW_METADATA] = row["metadata"]
    if system is None:
        metadata[NO_SYSTEM_TURN] = True
    if language:
        metadata[LANGUAGE] = language
    carried = _carried(row.get("metadata"))
    if "tools" in carried:
        metadata["tools"] = carried["tools"]
    return Record(
        input=turns,
        category=row["category"],
        reasoning=row["reasoning"],
        output=answer["content"],
        tool_calls=answer.get("tool_calls", []),
        system_prompt=(system["content"] or "") if system else "",
        expected_answer=carried.get("expected_answer"),
        tests=clean_tests(carried.get("tests")),
        generator=row["generator"],
        license=row["license"],
        used_in_training=carried.get("used_in_training") or "",
        version=row["version"],
        metadata=metadata,
    )


def _carried(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}  # free text: kept verbatim in ROW_METADATA, nothing to lift
    return {k: value[k] for k in _CARRIED if k in value} if isinstance(value, dict) else {}


def split_of(record: Record) -> str:
    """The split a record is published in: its category, or `multilingual_<lang>` for a non-English record."""
    language = record.metadata.get(LANGUAGE)
    if language and language != "en" and not record.category.startswith("multilingual_"):
        return f"multilingual_{language}"
    return record.category


def unwritable_reason(record: Record, layout: str) -> str | None:
    """Why `record` cannot be written in `layout` without losing something, or None when it can."""
    from thinktoggle.schemas.record import CATEGORIES

    calls = bool(record.tool_calls) or any(m.get("tool_calls") for m in record.input)
    if layout == "llama-nemotron":
        if calls:
            return "tool calls have no place in the llama-nemotron layout (input turns are {role, content})"
        if record.category not in CATEGORIES:
            return f"category {record.category!r} is not one of the llama-nemotron layout's"
        if record.metadata.get(ROW_METADATA):
            return "the row's metadata string has no column in the llama-nemotron layout"
        if record.metadata.get(LANGUAGE) not in (None, "", "en"):
            return f"language {record.metadata[LANGUAGE]!r} has no split in the llama-nemotron layout"
        return None
    if layout == "nemotron-v2":
        if calls:
            return "tool calls have no place in nemotron-v2 (messages are {role, content})"
        lost = [name for name in ("expected_answer", "tests") if getattr(record, name)]
        lost += ["used_in_training"] if record.used_in_training else []
        lost += ["metadata"] if record.metadata.get(ROW_METADATA) or record.metadata.get("tools") else []
        if lost:
            return f"{', '.join(lost)} has no column in nemotron-v2"
    return None


def record_to_layout_row(record: Record, layout: str) -> dict[str, Any]:
    """The row of `record` in `layout` (check `unwritable_reason` first: this does not)."""
    if layout == "llama-nemotron":
        return record_to_row(record)
    v1 = layout == "nemotron-v1"
    turns = [*record.input, {"role": "assistant", "content": record.output, "tool_calls": record.tool_calls}]
    if not record.metadata.get(NO_SYSTEM_TURN):
        turns.insert(0, {"role": "system", "content": record.system_prompt or ""})
    messages = []
    for turn in turns:
        message: dict[str, Any] = {"role": turn["role"], "content": turn["content"]}
        if v1:
            message["tool_calls"] = [_tool_call(c) for c in turn.get("tool_calls") or []] or None
        messages.append(message)
    row: dict[str, Any] = {
        "uuid": record.metadata.get(UUID) or str(uuid.uuid5(_UUID_NAMESPACE, record.id)),
        "license": record.license,
        "generator": record.generator,
        "version": record.version,
        "category": record.category,
        "reasoning": record.reasoning,
        "messages": messages,
    }
    if v1:
        row["metadata"] = record.metadata.get(ROW_METADATA) or _metadata_string(record)
    return row


def _metadata_string(record: Record) -> str:
    """A v1 `metadata` string for a record that came without one: what the row would otherwise lose."""
    carried = {
        "expected_answer": record.expected_answer,
        "tests": record.tests,
        "used_in_training": record.used_in_training,
        "tools": record.metadata.get("tools"),
    }
    kept = {k: v for k, v in carried.items() if v}
    return canonical_json(kept) if kept else ""
