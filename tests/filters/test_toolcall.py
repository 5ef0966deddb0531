"""The tool-call filter: each call names a declared function and its arguments validate against its JSON Schema;
the procedural tool_calling task's conversations pass it."""

from __future__ import annotations

import json

import pytest

from thinktoggle.filters.toolcall import toolcall_verdict
from thinktoggle.generators.procedural import procedural_answer, procedural_records
from thinktoggle.schemas.record import Record

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    },
    {"name": "now", "parameters": {"type": "object", "properties": {}}},  # the bare form
]


def record(arguments: str = '{"a": 1, "b": 2}', name: str = "add", tools=TOOLS, in_answer: bool = False) -> Record:
    call = {"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}
    turns = [{"role": "user", "content": "1 + 2?"}]
    if not in_answer:
        turns += [{"role": "assistant", "content": "", "tool_calls": [call]}, {"role": "tool", "content": "3"}]
    return Record(
        input=turns,
        category="tool_calling",
        reasoning="off",
        output="" if in_answer else "3.",
        tool_calls=[call] if in_answer else [],
        metadata={"tools": tools} if tools is not None else {},
    )


@pytest.mark.parametrize(
    ("rec", "verdict", "reason"),
    [
        (record(), "pass", ""),
        (record(in_answer=True), "pass", ""),
        (record("{}", name="now"), "pass", ""),
        (record(name="mul"), "fail", "undeclared_function: input.1.tool_calls.0: 'mul' (declared: add, now)"),
        (
            record('{"a": 1, "b": "2"}'),
            "fail",
            "invalid_arguments: input.1.tool_calls.0: add: b: '2' is not of type 'integer'",
        ),
        (
            record('{"a": 1}', in_answer=True),
            "fail",
            "invalid_arguments: tool_calls.0: add: (arguments): 'b' is a required property",
        ),
        (
            record("a=1"),
            "fail",
            "arguments_not_json: input.1.tool_calls.0: add: Expecting value: line 1 column 1 (char 0)",
        ),
        (record("[1, 2]"), "fail", "arguments_not_object: input.1.tool_calls.0: add: got list"),
        (record(tools=None), "unverifiable", "no_tools_declared"),
    ],
)
def test_verdicts(rec, verdict, reason):
    assert toolcall_verdict(rec) is not None
    assert (toolcall_verdict(rec).verdict, toolcall_verdict(rec).reason) == (verdict, reason)


def test_a_record_without_tool_calls_is_not_its_business():
    plain = Record(input=[{"role": "user", "content": "hi"}], category="chat", reasoning="off", output="hello")
    assert toolcall_verdict(plain) is None


def test_procedural_tool_calling_conversations_pass_and_answer_from_the_tool():
    records = procedural_records("tool_calling", 6, seed=3)
    assert records == procedural_records("tool_calling", 6, seed=3)  # deterministic
    assert len({r.pair_id for r in records}) == 6
    for r in records:
        assert [m["role"] for m in r.input] == ["user", "assistant", "tool"]
        assert toolcall_verdict(r).verdict == "pass"
        result = json.loads(r.input[2]["content"])["result"]
        reasoning, answer = procedural_answer(r, "on")
        assert answer == f"The answer is {result}." and str(result) in reasoning
        assert procedural_answer(r, "off")[0] is None
    broken = records[0]
    broken.input[1]["tool_calls"][0]["function"]["arguments"] = json.dumps({"unexpected": True})
    assert toolcall_verdict(broken).verdict == "fail"


def test_heldout_split_never_overlaps_train():
    train = {r.pair_id for r in procedural_records("tool_calling", 20, seed=0)}
    heldout = {r.pair_id for r in procedural_records("tool_calling", 5, seed=0, split="heldout")}
    assert train.isdisjoint(heldout)
