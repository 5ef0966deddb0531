"""The `tool_calling` procedural task: a user asks, the assistant calls one of a few small functions, the tool
answers, and the teacher answers the user from the tool's result.

Each prompt is a conversation (user -> assistant tool call -> tool result) with the functions declared in
`metadata["tools"]` (OpenAI form, JSON-Schema `parameters`), as the tool-call filter and the Nemotron v1
layout read them; the answer is the last turn. Registered on import (generators/procedural.py imports this).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thinktoggle.generators.procedural import (
    ProceduralTask,
    Split,
    _draw_distinct,
    _prompt_record,
    register_task,
)
from thinktoggle.schemas.record import Record

TASK = "tool_calling"


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object
    run: Callable[..., Any]
    ask: Callable[[dict[str, Any]], str]  # the user's request for these arguments
    draw: Callable[[random.Random], dict[str, Any]]

    def declaration(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": sorted(properties), "additionalProperties": False}


TOOLS = (
    Tool(
        "add",
        "Add two integers.",
        _object({"a": {"type": "integer"}, "b": {"type": "integer"}}),
        lambda a, b: a + b,
        lambda x: f"What is {x['a']} plus {x['b']}? Use the calculator.",
        lambda rng: {"a": rng.randint(-999, 999), "b": rng.randint(-999, 999)},
    ),
    Tool(
        "convert_temperature",
        "Convert a temperature in degrees Celsius.",
        _object({"celsius": {"type": "number"}, "to": {"enum": ["fahrenheit", "kelvin"]}}),
        lambda celsius, to: round(celsius * 9 / 5 + 32 if to == "fahrenheit" else celsius + 273.15, 2),
        lambda x: f"How much is {x['celsius']} degrees Celsius in {x['to']}?",
        lambda rng: {"celsius": rng.randint(-40, 120), "to": rng.choice(["fahrenheit", "kelvin"])},
    ),
    Tool(
        "count_words",
        "Count the words of a text.",
        _object({"text": {"type": "string", "minLength": 1}}),
        lambda text: len(text.split()),
        lambda x: f'How many words are in "{x["text"]}"?',
        lambda rng: {
            "text": " ".join(
                rng.choice(["red", "fox", "jumps", "over", "the", "dog"]) for _ in range(rng.randint(2, 9))
            )
        },
    ),
)
BY_NAME = {tool.name: tool for tool in TOOLS}


def _draw(rng: random.Random) -> dict[str, Any]:
    tool = rng.choice(TOOLS)
    return {"function": tool.name, "arguments": tool.draw(rng)}


def tool_result(problem: dict[str, Any]) -> Any:
    return BY_NAME[problem["function"]].run(**problem["arguments"])


def tool_conversation(problem: dict[str, Any]) -> list[dict[str, Any]]:
    """The prompt turns: the request, the assistant's call, the tool's result."""
    call = {
        "id": "call_0",
        "type": "function",
        "function": {"name": problem["function"], "arguments": json.dumps(problem["arguments"], sort_keys=True)},
    }
    return [
        {"role": "user", "content": BY_NAME[problem["function"]].ask(problem["arguments"])},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": json.dumps({"result": tool_result(problem)})},
    ]


def solve_tool_calling(problem: dict[str, Any]) -> tuple[str, str]:
    result = tool_result(problem)
    arguments = json.dumps(problem["arguments"], sort_keys=True)
    reasoning = f"I called {problem['function']} with {arguments}.\nThe tool returned {result}."
    return reasoning, f"The answer is {result}."


def tool_calling_records(
    count: int, seed: int = 0, split: Split = "train", heldout_fraction: float = 0.1, **params: Any
) -> list[Record]:
    """Prompt records for `tool_calling`: every tool declared on every record."""
    if params:
        raise ValueError(f"tool_calling: unknown parameter(s) {sorted(params)}")
    declared = [tool.declaration() for tool in TOOLS]
    records = []
    for problem in _draw_distinct(count, seed, split, heldout_fraction, _draw, TASK):
        record = _prompt_record(TASK, "tool_calling", "", problem, split, seed)
        record.input = tool_conversation(problem)
        record.metadata["tools"] = declared
        records.append(Record(**{**record.to_dict(), "pair_id": "", "id": ""}))  # ids of the whole conversation
    return records


register_task(ProceduralTask(TASK, "tool_calling", tool_calling_records, solve_tool_calling))
