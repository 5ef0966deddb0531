"""The published row: the Llama-Nemotron-Post-Training-Dataset (v1.1) layout, as a JSON Schema.

One row = one prompt (`input` messages), one response (`output`) and its mode (`reasoning`). The optional
verification columns (`expected_answer`, `tests`) and the filters' bookkeeping (`id`, `pair_id`, `verdicts`)
may ride along; nothing else may.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from thinktoggle.schemas.record import CATEGORIES, ROLES
from thinktoggle.schemas.think import SYSTEM_PROMPT_OFF, SYSTEM_PROMPT_ON

PUBLISHED_COLUMNS = (
    "input",
    "output",
    "category",
    "license",
    "reasoning",
    "generator",
    "used_in_training",
    "version",
    "system_prompt",
)
OPTIONAL_COLUMNS = ("expected_answer", "tests", "id", "pair_id", "verdicts")

_NON_EMPTY = {"type": "string", "minLength": 1}
_STDIO_CASE = {
    "type": "object",
    "properties": {"input": {"type": "string"}, "output": {"type": "string"}},
    "required": ["input", "output"],
    "additionalProperties": False,
}
TESTS_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "description": "functional tests, as in HumanEval: check(candidate) must return",
            "properties": {"entry_point": _NON_EMPTY, "test": _NON_EMPTY, "stdio": {"type": "null"}},
            "required": ["entry_point", "test"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "description": "stdin/stdout cases, as in APPS / CodeContests",
            "properties": {
                "stdio": {"type": "array", "items": _STDIO_CASE, "minItems": 1},
                "entry_point": {"type": "null"},
                "test": {"type": "null"},
            },
            "required": ["stdio"],
            "additionalProperties": False,
        },
    ]
}

PUBLISHED_ROW_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://thinktoggle.dev/schemas/published-row.json",
    "title": "Llama-Nemotron-Post-Training-Dataset row (v1.1 layout)",
    "type": "object",
    "properties": {
        "input": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {"role": {"enum": list(ROLES)}, "content": {"type": "string"}},
                "required": ["role", "content"],
                "additionalProperties": False,
            },
            "contains": {"type": "object", "properties": {"role": {"const": "user"}}, "required": ["role"]},
        },
        "output": {"type": "string"},
        "category": {"enum": list(CATEGORIES)},
        "license": _NON_EMPTY,
        "reasoning": {"enum": ["on", "off"]},
        # A comma-separated list of model names, no empty entries: "DeepSeek-R1, Qwen-2.5-72B-Instruct".
        "generator": {"type": "string", "pattern": r"^\s*[^,\s][^,]*(,\s*[^,\s][^,]*)*$"},
        "used_in_training": {"type": "string"},
        "version": _NON_EMPTY,
        "system_prompt": {"type": "string"},
        "expected_answer": {"type": ["string", "null"]},
        "tests": {"anyOf": [{"type": "null"}, TESTS_SCHEMA]},
        "id": {"type": ["string", "null"]},
        "pair_id": {"type": ["string", "null"]},
        "verdicts": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {
                    "filter": {"type": "string"},
                    "verdict": {"enum": ["pass", "fail", "unverifiable", "error"]},
                    "reason": {"type": "string"},
                },
                "required": ["filter", "verdict", "reason"],
                "additionalProperties": False,
            },
        },
    },
    "required": list(PUBLISHED_COLUMNS),
    "additionalProperties": False,
    # The Nemotron system prompts must agree with the row's mode.
    "allOf": [
        {
            "if": {
                "properties": {"system_prompt": {"const": SYSTEM_PROMPT_ON}},
                "required": ["system_prompt"],
            },
            "then": {"properties": {"reasoning": {"const": "on"}}},
        },
        {
            "if": {
                "properties": {"system_prompt": {"const": SYSTEM_PROMPT_OFF}},
                "required": ["system_prompt"],
            },
            "then": {"properties": {"reasoning": {"const": "off"}}},
        },
    ],
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One schema violation: which field and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@cache
def validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(PUBLISHED_ROW_SCHEMA)
    return Draft202012Validator(PUBLISHED_ROW_SCHEMA)


def _join(path: list[str], key: str | None = None) -> str:
    parts = [*path, key] if key is not None else path
    return ".".join(parts)


def _field_of(error) -> str:
    path = _join([str(p) for p in error.absolute_path])
    if error.validator in ("if", "then", "const") and not path:
        return "reasoning"
    return path or "(row)"


def _keyed_problems(error) -> list[Problem]:
    """One problem per missing or unknown key, named from the data itself (jsonschema's messages quote names
    with repr, which mangles names that hold quotes or control characters)."""
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        return [Problem(_join(path, key), "missing") for key in error.validator_value if key not in error.instance]
    known = error.schema.get("properties", {})
    extras = sorted(str(key) for key in error.instance if key not in known)
    reason = "unknown key" if path else "unknown column"
    return [Problem(_join(path, key), reason) for key in extras]


def _reason_of(error) -> str:
    if error.validator == "contains":
        return "needs at least one user turn"
    if error.validator == "const" and list(error.absolute_path) == ["reasoning"]:
        return f"{error.instance!r} disagrees with system_prompt"
    if error.validator == "pattern" and list(error.absolute_path) == ["generator"]:
        return f"{error.instance!r} is not a comma-separated list of model names"
    message = error.message
    return message if len(message) <= 200 else message[:197] + "..."


_REQUIRED = frozenset(PUBLISHED_COLUMNS)
_ALLOWED = _REQUIRED | frozenset(OPTIONAL_COLUMNS)
_ROLES = frozenset(ROLES)
_CATEGORIES = frozenset(CATEGORIES)
_GENERATOR = re.compile(PUBLISHED_ROW_SCHEMA["properties"]["generator"]["pattern"])
_MODE_OF_PROMPT = {SYSTEM_PROMPT_ON: "on", SYSTEM_PROMPT_OFF: "off"}


def _plainly_valid(row: dict[str, Any]) -> bool:
    """A fast, conservative check of the common row (jsonschema costs ~75 µs a row, this ~5 µs).

    True only for rows the JSON Schema accepts; anything unusual (tests, verdicts, any doubt) returns False
    and goes to the full validator, which stays the single source of truth for what is valid and why.
    """
    if not _REQUIRED <= row.keys() <= _ALLOWED:
        return False
    messages = row["input"]
    if not isinstance(messages, list) or not messages:
        return False
    has_user = False
    for message in messages:
        if not isinstance(message, dict) or len(message) != 2:
            return False
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or role not in _ROLES or not isinstance(content, str):
            return False
        has_user = has_user or role == "user"
    for column in ("output", "used_in_training", "system_prompt", "generator"):
        if not isinstance(row[column], str):
            return False
    for column in ("license", "version"):
        if not isinstance(row[column], str) or not row[column]:
            return False
    for column in ("expected_answer", "id", "pair_id"):
        if not isinstance(row.get(column, ""), str | None):
            return False
    reasoning, category = row["reasoning"], row["category"]
    return (
        has_user
        and isinstance(category, str)
        and category in _CATEGORIES
        and isinstance(reasoning, str)
        and reasoning in ("on", "off")
        and _MODE_OF_PROMPT.get(row["system_prompt"], reasoning) == reasoning
        and row.get("tests") is None
        and row.get("verdicts") is None
        and _GENERATOR.search(row["generator"]) is not None
    )


def row_problems(row: Any) -> Iterator[Problem]:
    """Every way `row` breaks the published schema, in a stable order (by field)."""
    if not isinstance(row, dict):
        yield Problem("(row)", f"expected a JSON object, got {type(row).__name__}")
        return
    if _plainly_valid(row):
        return
    errors = sorted(validator().iter_errors(row), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    seen: set[Problem] = set()
    for error in errors:
        if error.validator == "allOf":
            continue  # its failing branch is reported on its own
        if error.validator in ("required", "additionalProperties"):
            keyed = _keyed_problems(error)
        else:
            keyed = [Problem(_field_of(error), _reason_of(error))]
        for problem in keyed:
            if problem not in seen:  # each `required` error would otherwise repeat every missing key
                seen.add(problem)
                yield problem


def is_valid_row(row: Any) -> bool:
    return isinstance(row, dict) and (_plainly_valid(row) or validator().is_valid(row))
