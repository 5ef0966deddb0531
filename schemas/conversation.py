"""The conversational layouts: NVIDIA's Nemotron-Post-Training-Dataset-v1 and -v2, as JSON Schemas plus the
checks a schema cannot state (tool-call arguments, turn order, the mode against the system turn).

    nemotron-v1   uuid, license, generator, version, category, reasoning, messages, metadata
                  messages: [{role, content, tool_calls: [{id, type, function: {name, arguments}}]}]
    nemotron-v2   the same without `tool_calls` and `metadata`

One row is one conversation: an optional system turn, then user / assistant / tool turns ending with the
assistant turn that is the answer. The Arrow schemas are in `arrow.py`; row <-> Record in `convert.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any, Literal

from jsonschema import Draft202012Validator

from thinktoggle.schemas.published import Problem, row_problems
from thinktoggle.schemas.record import MULTILINGUAL, RECORD_CATEGORIES, ROLES

Layout = Literal["llama-nemotron", "nemotron-v1", "nemotron-v2"]
LAYOUTS: tuple[str, ...] = ("llama-nemotron", "nemotron-v1", "nemotron-v2")
CONVERSATIONAL = ("nemotron-v1", "nemotron-v2")
V1_COLUMNS = ("uuid", "license", "generator", "version", "category", "reasoning", "messages", "metadata")
V2_COLUMNS = V1_COLUMNS[:-1]

# What a system turn says about the mode: Llama-Nemotron's prompts and the /think, /no_think switches.
_MODE_SWITCHES = {"detailed thinking on": "on", "/think": "on", "detailed thinking off": "off", "/no_think": "off"}

_TOOL_CALL = {
    "type": "object",
    "properties": {
        "id": {"type": ["string", "null"]},
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 1}, "arguments": {"type": "string"}},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        },
    },
    "required": ["type", "function"],
    "additionalProperties": False,
}


def _row_schema(layout: str) -> dict[str, Any]:
    v1 = layout == "nemotron-v1"
    message: dict[str, Any] = {
        "type": "object",
        "properties": {"role": {"enum": list(ROLES)}, "content": {"type": ["string", "null"]}},
        "required": ["role", "content"],
        "additionalProperties": False,
    }
    if v1:
        message["properties"]["tool_calls"] = {"type": ["array", "null"], "items": _TOOL_CALL}
    properties: dict[str, Any] = {
        "uuid": {"type": "string", "minLength": 1},
        "license": {"type": "string", "minLength": 1},
        "generator": {"type": "string"},
        "version": {"type": "string", "minLength": 1},
        "category": {"anyOf": [{"enum": list(RECORD_CATEGORIES)}, {"type": "string", "pattern": MULTILINGUAL.pattern}]},
        "reasoning": {"enum": ["on", "off"]},
        "messages": {"type": "array", "minItems": 2, "items": message},
    }
    if v1:
        properties["metadata"] = {"type": ["string", "null"]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://thinktoggle.dev/schemas/{layout}-row.json",
        "title": f"Nemotron-Post-Training-Dataset-{layout[-2:]} row",
        "type": "object",
        "properties": properties,
        "required": list(V1_COLUMNS if v1 else V2_COLUMNS),
        "additionalProperties": False,
    }


NEMOTRON_V1_ROW_SCHEMA = _row_schema("nemotron-v1")
NEMOTRON_V2_ROW_SCHEMA = _row_schema("nemotron-v2")


@cache
def _validator(layout: str) -> Draft202012Validator:
    schema = NEMOTRON_V1_ROW_SCHEMA if layout == "nemotron-v1" else NEMOTRON_V2_ROW_SCHEMA
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def detect_layout(row: dict[str, Any]) -> str:
    """The layout a row is in, by its columns: `messages` is conversational, and v1 has `metadata` or tool calls."""
    messages = row.get("messages")
    if messages is None:
        return "llama-nemotron"
    if "metadata" in row:
        return "nemotron-v1"
    if isinstance(messages, list) and any(isinstance(m, dict) and "tool_calls" in m for m in messages):
        return "nemotron-v1"
    return "nemotron-v2"


def language_of_source(source: str) -> str | None:
    """The language of rows read from a Hub split named `multilingual_<lang>` (`hub:org/name/multilingual_ja`)."""
    split = source.rsplit("/", 1)[-1]
    return split.removeprefix("multilingual_") if MULTILINGUAL.fullmatch(split) else None


def mode_of_system_turn(content: str) -> str | None:
    """ "on"/"off" when the system turn switches the mode (a Nemotron prompt, /think, /no_think), else None."""
    text = content.strip()
    if text in _MODE_SWITCHES:
        return _MODE_SWITCHES[text]
    found = {mode for switch, mode in _MODE_SWITCHES.items() if switch.startswith("/") and switch in text.split()}
    return found.pop() if len(found) == 1 else None


def layout_problems(row: Any, layout: str) -> Iterator[Problem]:
    """Every way `row` breaks `layout` (any of LAYOUTS), in a stable order."""
    if layout == "llama-nemotron":
        yield from row_problems(row)
        return
    if not isinstance(row, dict):
        yield Problem("(row)", f"expected a JSON object, got {type(row).__name__}")
        return
    errors = sorted(_validator(layout).iter_errors(row), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    if errors:
        for error in errors:
            yield _problem_of(error, layout)
        return
    yield from _conversation_problems(row)


def _problem_of(error, layout: str) -> Problem:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return Problem(".".join(filter(None, [path, missing[0]])), "missing")
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        extra = sorted(str(k) for k in error.instance if k not in known)[0]
        return Problem(".".join(filter(None, [path, extra])), f"unknown {'key' if path else 'column'} in {layout}")
    if path == "category":
        return Problem(
            path, f"{error.instance!r} is not a category (one of {', '.join(RECORD_CATEGORIES)}, multilingual_<lang>)"
        )
    message = error.message
    return Problem(path or "(row)", message if len(message) <= 200 else message[:197] + "...")


# role -> the roles it may follow (None: the conversation's start, after an optional system turn)
_MAY_FOLLOW: dict[str, tuple[str | None, ...]] = {
    "user": (None, "assistant", "tool"),
    "assistant": ("user", "tool"),
    "tool": ("assistant", "tool"),
}


def _conversation_problems(row: dict[str, Any]) -> Iterator[Problem]:
    messages = row["messages"]
    previous: str | None = None
    calls_pending = False  # the last assistant turn called tools: tool turns may answer
    for i, message in enumerate(messages):
        role, content, calls = message["role"], message["content"] or "", message.get("tool_calls") or []
        where = f"messages.{i}"
        if role == "system":
            if i:
                yield Problem(f"{where}.role", "a system turn only comes first")
            continue
        if previous not in _MAY_FOLLOW[role] or (role == "tool" and not calls_pending):
            after = f"after {previous!r}" if previous else "at the start"
            yield Problem(f"{where}.role", f"{role!r} out of order ({after})")
        if calls and role != "assistant":
            yield Problem(f"{where}.tool_calls", "only assistant turns call tools")
        for j, call in enumerate(calls):
            if not _is_json_object(call["function"]["arguments"]):
                yield Problem(f"{where}.tool_calls.{j}.function.arguments", "not a JSON object string")
        if role == "assistant" and not content.strip() and not calls:
            yield Problem(f"{where}.content", "empty assistant turn")
        if role == "assistant":
            calls_pending = bool(calls)
        previous = role
    if previous != "assistant":
        yield Problem(f"messages.{len(messages) - 1}.role", "the last turn must be the assistant's answer")
    if messages[0]["role"] == "system":
        said = mode_of_system_turn(messages[0]["content"] or "")
        if said is not None and said != row["reasoning"]:
            yield Problem(
                "reasoning", f"{row['reasoning']!r} disagrees with the system turn ({messages[0]['content']!r})"
            )


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def is_valid_conversation_row(row: Any, layout: str) -> bool:
    return next(layout_problems(row, layout), None) is None
