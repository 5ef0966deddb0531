"""Tool calls: every call names a declared function, and its arguments validate against that function's
JSON Schema (`parameters`).

Declared tools are the record's `metadata["tools"]`, in OpenAI's form (`[{"type": "function", "function":
{"name", "description", "parameters"}}]`, or the bare `{"name", "parameters"}`): the procedural tool-calling
source writes them there, and ingest lifts them from a Nemotron v1 row's `metadata` JSON string. The calls
checked are those of every assistant turn of the prompt and of the answer. A record without tool calls is
not this filter's business (None); one with calls but no declared tools is `unverifiable`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from thinktoggle.schemas.record import Record, Verdict, canonical_json

FILTER_NAME = "toolcall"


@dataclass(frozen=True)
class ToolCallConfig:
    require_declared_tools: bool = True  # calls without declared tools: unverifiable (true) or passed (false)


def declared_tools(record: Record) -> dict[str, dict[str, Any]]:
    """Function name -> its parameters' JSON Schema ({} when it declares none)."""
    tools: dict[str, dict[str, Any]] = {}
    for tool in record.metadata.get("tools") or []:
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            tools[function["name"]] = function.get("parameters") or {}
    return tools


def tool_calls_of(record: Record) -> list[tuple[str, dict[str, Any]]]:
    """(where, call) for every tool call: `input.<i>.tool_calls.<j>` and the answer's `tool_calls.<j>`."""
    calls = [
        (f"input.{i}.tool_calls.{j}", call)
        for i, message in enumerate(record.input)
        for j, call in enumerate(message.get("tool_calls") or [])
    ]
    return calls + [(f"tool_calls.{j}", call) for j, call in enumerate(record.tool_calls)]


@lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Draft202012Validator:
    schema = json.loads(schema_json)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def call_problem(call: dict[str, Any], tools: dict[str, dict[str, Any]]) -> str | None:
    """Why one call is wrong (`reason_key: detail`), or None."""
    function = call.get("function") or {}
    name = function.get("name")
    if name not in tools:
        return f"undeclared_function: {name!r} (declared: {', '.join(sorted(tools))})"
    try:
        arguments = json.loads(function.get("arguments") or "")
    except ValueError as exc:
        return f"arguments_not_json: {name}: {exc}"
    if not isinstance(arguments, dict):
        return f"arguments_not_object: {name}: got {type(arguments).__name__}"
    try:
        validator = _validator(canonical_json(tools[name]))
    except SchemaError as exc:
        return f"bad_tool_schema: {name}: {exc.message}"
    error = next(iter(sorted(validator.iter_errors(arguments), key=lambda e: list(map(str, e.absolute_path)))), None)
    if error is not None:
        path = ".".join(str(p) for p in error.absolute_path) or "(arguments)"
        return f"invalid_arguments: {name}: {path}: {error.message[:200]}"
    return None


def toolcall_verdict(record: Record, config: ToolCallConfig = ToolCallConfig()) -> Verdict | None:
    calls = tool_calls_of(record)
    if not calls:
        return None
    tools = declared_tools(record)
    if not tools:
        if config.require_declared_tools:
            return Verdict(FILTER_NAME, "unverifiable", "no_tools_declared")
        return Verdict(FILTER_NAME, "pass")
    for where, call in calls:
        if problem := call_problem(call, tools):
            key, _, detail = problem.partition(": ")
            return Verdict(FILTER_NAME, "fail", f"{key}: {where}: {detail}")
    return Verdict(FILTER_NAME, "pass")
