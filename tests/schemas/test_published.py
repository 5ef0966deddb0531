"""Truth tables of the published-row JSON Schema: each column's good and bad values, and the fields reported.

Every case also checks that the fast path (`is_valid_row`, `row_problems` on plain rows) agrees with the
full jsonschema validator, which is the source of truth.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from published_rows import DROP, VALID_ROW, changed

from thinktoggle.schemas.convert import record_to_row, row_to_record
from thinktoggle.schemas.published import (
    OPTIONAL_COLUMNS,
    PUBLISHED_COLUMNS,
    PUBLISHED_ROW_SCHEMA,
    Problem,
    is_valid_row,
    row_problems,
    validator,
)
from thinktoggle.schemas.record import CATEGORIES, ROLES

USER = {"role": "user", "content": "hi"}
FUNCTIONAL = {"entry_point": "add", "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n"}
STDIO = {"stdio": [{"input": "1 2\n", "output": "3\n"}]}


def fields_of(row: Any) -> set[str]:
    return {p.field for p in row_problems(row)}


def assert_agrees_with_jsonschema(row: Any) -> None:
    full = isinstance(row, dict) and validator().is_valid(row)
    assert is_valid_row(row) == full
    assert (not list(row_problems(row))) == full


def test_schema_is_valid_draft_2020_12():
    assert PUBLISHED_ROW_SCHEMA["$schema"].endswith("/2020-12/schema")
    validator().check_schema(PUBLISHED_ROW_SCHEMA)
    assert is_valid_row(VALID_ROW) and list(row_problems(VALID_ROW)) == []


# (changes to VALID_ROW) -> valid. Each column's accepted values.
GOOD = [
    # input: a list of {role, content}, content a string, at least one user turn anywhere
    {"input": [USER]},
    {"input": [{"role": "user", "content": ""}]},
    {"input": [{"role": "system", "content": "be brief"}, USER]},
    {"input": [USER, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "2+2?"}]},
    {"input": [{"role": "assistant", "content": "calling"}, {"role": "tool", "content": "{}"}, USER]},
    {"input": [{"role": "user", "content": "ünïcödé ∑ 数学 🙂"}]},
    # output: any string, malformed think blocks included (the filters judge those, not the schema)
    {"output": ""},
    {"output": "<think>unclosed"},
    {"output": "42", "reasoning": "off", "system_prompt": "detailed thinking off"},
    # category: the six categories
    *[{"category": c} for c in CATEGORIES],
    # license: any non-empty string
    {"license": "odc-by"},
    {"license": "cc-by-sa-4.0 AND apache-2.0"},
    # reasoning: on/off, agreeing with a Nemotron prompt or with free text
    {"reasoning": "off", "system_prompt": "detailed thinking off"},
    {"reasoning": "on", "system_prompt": "detailed thinking on"},
    # generator: a comma list of model names, spaces around commas allowed
    {"generator": "DeepSeek-R1"},
    {"generator": "A,B"},
    {"generator": " A , B "},
    {"generator": "Qwen-2.5-72B-Instruct, DeepSeek-R1, Llama-3.3-70B-Instruct"},
    # used_in_training: any string, empty included
    {"used_in_training": ""},
    {"used_in_training": "Nano"},
    # version: any non-empty string
    {"version": "v1"},
    # system_prompt: free text in either mode, empty included
    {"system_prompt": "", "reasoning": "on"},
    {"system_prompt": "", "reasoning": "off"},
    {"system_prompt": "You are a helpful assistant.", "reasoning": "on"},
    {"system_prompt": "You are a helpful assistant.", "reasoning": "off"},
    {"system_prompt": "detailed thinking on ", "reasoning": "off"},  # not the Nemotron prompt: free text
    {"system_prompt": "Detailed thinking on", "reasoning": "off"},
    # optional verification columns
    {"expected_answer": "14"},
    {"expected_answer": ""},
    {"expected_answer": None},
    {"tests": None},
    {"tests": FUNCTIONAL},
    {"tests": STDIO},
    {"tests": {"stdio": [{"input": "", "output": ""}, {"input": "a", "output": "b"}]}},
    # the Arrow struct form: the other form's members come back as nulls
    {"tests": {**FUNCTIONAL, "stdio": None}},
    {"tests": {**STDIO, "entry_point": None, "test": None}},
    # the filters' bookkeeping columns
    {"id": "0123456789abcdef", "pair_id": "fedcba9876543210"},
    {"id": None, "pair_id": None, "verdicts": None},
    {"verdicts": []},
    {"verdicts": [{"filter": "math", "verdict": "pass", "reason": ""}]},
    {"verdicts": [{"filter": "code", "verdict": v, "reason": "r"} for v in ("fail", "unverifiable", "error")]},
]


@pytest.mark.parametrize("changes", GOOD, ids=lambda c: repr(c)[:60])
def test_good_values(changes):
    row = changed(**changes)
    assert list(row_problems(row)) == []
    assert_agrees_with_jsonschema(row)


# (changes to VALID_ROW, the exact set of fields reported, a piece of the first reason or None)
BAD = [
    # input
    ({"input": "hi"}, {"input"}, "not of type 'array'"),
    ({"input": None}, {"input"}, None),
    ({"input": {"role": "user", "content": "hi"}}, {"input"}, None),
    ({"input": []}, {"input"}, None),
    ({"input": DROP}, {"input"}, "missing"),
    ({"input": [{"role": "system", "content": "x"}]}, {"input"}, "at least one user turn"),
    ({"input": [{"role": "assistant", "content": "x"}]}, {"input"}, "at least one user turn"),
    ({"input": [USER, {"role": "bot", "content": "x"}]}, {"input.1.role"}, "is not one of"),
    ({"input": [USER, {"role": "User", "content": "x"}]}, {"input.1.role"}, None),
    ({"input": [{"role": "user", "content": 1}]}, {"input.0.content"}, "not of type 'string'"),
    ({"input": [{"role": "user", "content": None}]}, {"input.0.content"}, None),
    ({"input": [{"role": "user", "content": ["a", "b"]}]}, {"input.0.content"}, None),
    ({"input": [{"role": "user"}]}, {"input.0.content"}, "missing"),
    ({"input": [USER, {"content": "x"}]}, {"input.1.role"}, "missing"),
    ({"input": [{"role": "user", "content": "x", "name": "bob"}]}, {"input.0.name"}, "unknown key"),
    ({"input": [USER, "just text"]}, {"input.1"}, "not of type 'object'"),
    # output
    ({"output": None}, {"output"}, None),
    ({"output": 42}, {"output"}, None),
    ({"output": ["a"]}, {"output"}, None),
    ({"output": DROP}, {"output"}, "missing"),
    # category
    ({"category": "biology"}, {"category"}, "is not one of"),
    ({"category": "Math"}, {"category"}, None),
    ({"category": ""}, {"category"}, None),
    ({"category": None}, {"category"}, None),
    ({"category": DROP}, {"category"}, "missing"),
    # license
    ({"license": ""}, {"license"}, "non-empty"),
    ({"license": None}, {"license"}, None),
    ({"license": 4}, {"license"}, None),
    ({"license": DROP}, {"license"}, "missing"),
    # reasoning (VALID_ROW's system prompt is "detailed thinking on")
    ({"reasoning": "ON"}, {"reasoning"}, None),
    ({"reasoning": "yes", "system_prompt": ""}, {"reasoning"}, "is not one of"),
    ({"reasoning": True, "system_prompt": ""}, {"reasoning"}, None),
    ({"reasoning": None, "system_prompt": ""}, {"reasoning"}, None),
    ({"reasoning": DROP, "system_prompt": ""}, {"reasoning"}, "missing"),
    # generator: a comma list without empty entries
    ({"generator": ""}, {"generator"}, "comma-separated list"),
    ({"generator": "   "}, {"generator"}, None),
    ({"generator": "A,,B"}, {"generator"}, None),
    ({"generator": "A, ,B"}, {"generator"}, None),
    ({"generator": "A,"}, {"generator"}, None),
    ({"generator": "A, "}, {"generator"}, None),
    ({"generator": ",A"}, {"generator"}, None),
    ({"generator": ","}, {"generator"}, None),
    ({"generator": None}, {"generator"}, None),
    ({"generator": ["A", "B"]}, {"generator"}, None),
    ({"generator": DROP}, {"generator"}, "missing"),
    # used_in_training
    ({"used_in_training": None}, {"used_in_training"}, None),
    ({"used_in_training": ["Nano"]}, {"used_in_training"}, None),
    ({"used_in_training": DROP}, {"used_in_training"}, "missing"),
    # version
    ({"version": ""}, {"version"}, "non-empty"),
    ({"version": 1.1}, {"version"}, None),
    ({"version": DROP}, {"version"}, "missing"),
    # system_prompt: the two Nemotron prompts must agree with reasoning
    (
        {"system_prompt": "detailed thinking on", "reasoning": "off"},
        {"reasoning"},
        "'off' disagrees with system_prompt",
    ),
    ({"system_prompt": "detailed thinking off", "reasoning": "on"}, {"reasoning"}, "'on' disagrees with system_prompt"),
    ({"system_prompt": None}, {"system_prompt"}, None),
    ({"system_prompt": 0}, {"system_prompt"}, None),
    ({"system_prompt": DROP}, {"system_prompt"}, "missing"),
    # expected_answer
    ({"expected_answer": 14}, {"expected_answer"}, None),
    ({"expected_answer": ["14"]}, {"expected_answer"}, None),
    # tests: exactly one of the functional and stdio forms
    ({"tests": {}}, {"tests"}, None),
    ({"tests": "assert add(1, 2) == 3"}, {"tests"}, None),
    ({"tests": {"entry_point": "add"}}, {"tests"}, None),
    ({"tests": {"test": "def check(c): pass"}}, {"tests"}, None),
    ({"tests": {"entry_point": "", "test": "def check(c): pass"}}, {"tests"}, None),
    ({"tests": {**FUNCTIONAL, **STDIO}}, {"tests"}, None),
    ({"tests": {**FUNCTIONAL, "timeout": 5}}, {"tests"}, None),
    ({"tests": {"stdio": []}}, {"tests"}, None),
    ({"tests": {"stdio": [{"input": "1"}]}}, {"tests"}, None),
    ({"tests": {"stdio": [{"input": 1, "output": "2"}]}}, {"tests"}, None),
    ({"tests": {"stdio": [{"input": "1", "output": "2", "weight": 1}]}}, {"tests"}, None),
    ({"tests": {"stdio": {"input": "1", "output": "2"}}}, {"tests"}, None),
    # bookkeeping columns
    ({"id": 3}, {"id"}, None),
    ({"pair_id": ["x"]}, {"pair_id"}, None),
    ({"verdicts": [{"filter": "math", "verdict": "maybe", "reason": ""}]}, {"verdicts.0.verdict"}, "is not one of"),
    ({"verdicts": [{"filter": "math", "verdict": "pass"}]}, {"verdicts.0.reason"}, "missing"),
    ({"verdicts": "pass"}, {"verdicts"}, None),
    # unknown columns
    ({"foo": 1}, {"foo"}, "unknown column"),
    ({"foo": 1, "bar": 2, "it's": 3}, {"foo", "bar", "it's"}, "unknown column"),  # each one named
    ({"output": DROP, "version": DROP}, {"output", "version"}, "missing"),
    ({"messages": [USER]}, {"messages"}, "unknown column"),
    ({"Input": VALID_ROW["input"], "input": DROP}, {"Input", "input"}, None),
]


@pytest.mark.parametrize(("changes", "fields", "reason"), BAD, ids=lambda c: repr(c)[:60])
def test_bad_values(changes, fields, reason):
    row = changed(**changes)
    problems = list(row_problems(row))
    assert {p.field for p in problems} == fields, problems
    if reason is not None:
        assert reason in problems[0].reason, problems
    assert_agrees_with_jsonschema(row)


@pytest.mark.parametrize("row", [None, "a row", 3, [VALID_ROW], (1, 2)], ids=repr)
def test_a_row_that_is_not_an_object(row):
    assert list(row_problems(row)) == [Problem("(row)", f"expected a JSON object, got {type(row).__name__}")]
    assert not is_valid_row(row)


def test_every_problem_is_reported_in_a_stable_field_order():
    row = changed(category="bio", license="", generator="A,,B", foo=1, version=DROP)
    problems = list(row_problems(row))
    assert {p.field for p in problems} == {"category", "license", "generator", "foo", "version"}
    assert problems == list(row_problems(copy.deepcopy(row)))  # deterministic
    assert [str(p) for p in problems if p.field == "foo"] == ["foo: unknown column"]
    assert all(str(p) == f"{p.field}: {p.reason}" for p in problems)


def test_a_very_long_reason_is_shortened():
    row = changed(tests={"stdio": [{"input": "x" * 1000}]})
    (problem,) = row_problems(row)
    assert problem.field == "tests" and len(problem.reason) <= 200


# --- properties --------------------------------------------------------------------------------------------

_NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\- ]{0,20}", fullmatch=True)
_TEXT = st.text(max_size=40)


def _message(roles: tuple[str, ...]) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({"role": st.sampled_from(roles), "content": _TEXT})


@st.composite
def valid_rows(draw) -> dict[str, Any]:
    """Rows from the valid space. No leading system turn: that one moves to the system prompt (tested below)."""
    first = draw(_message(("user", "assistant", "tool")))
    rest = draw(st.lists(_message(ROLES), max_size=3))
    messages = [first, *rest]
    if not any(m["role"] == "user" for m in messages):
        messages.append(draw(_message(("user",))))
    reasoning = draw(st.sampled_from(["on", "off"]))
    nemotron = f"detailed thinking {reasoning}"
    free_text = _TEXT.filter(lambda s: s not in ("detailed thinking on", "detailed thinking off"))
    names = draw(st.lists(_NAME, min_size=1, max_size=3))
    return {
        "input": messages,
        "output": draw(_TEXT),
        "category": draw(st.sampled_from(CATEGORIES)),
        "license": draw(st.text(min_size=1, max_size=12)),
        "reasoning": reasoning,
        "generator": draw(st.sampled_from([",", ", ", " , "])).join(names),
        "used_in_training": draw(_TEXT),
        "version": draw(st.text(min_size=1, max_size=8)),
        "system_prompt": draw(st.one_of(st.just(nemotron), free_text)),
        "expected_answer": draw(st.one_of(st.none(), _TEXT)),
        "tests": draw(st.sampled_from([None, FUNCTIONAL, STDIO])),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_rows())
def test_valid_rows_validate_and_round_trip_through_record(row):
    assert list(row_problems(row)) == []
    assert_agrees_with_jsonschema(row)
    assert record_to_row(row_to_record(row)) == row


# A value of the wrong JSON type for each column (and for a message's members).
_WRONG_TYPE = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_rows(), st.sampled_from([*PUBLISHED_COLUMNS, "expected_answer", "input.content"]), _WRONG_TYPE)
def test_a_wrong_type_is_reported_against_its_field(row, column, value):
    if column == "input.content":
        row["input"][0]["content"] = value
        expected = "input.0.content"
    else:
        row[column] = value
        expected = column
    fields = fields_of(row)
    assert expected in fields, (column, value, fields)
    assert_agrees_with_jsonschema(row)


@settings(max_examples=60, deadline=None)
@given(
    valid_rows(), st.text(min_size=1, max_size=10).filter(lambda s: s not in (*PUBLISHED_COLUMNS, *OPTIONAL_COLUMNS))
)
def test_an_unknown_column_is_named(row, column):
    row[column] = "x"
    assert fields_of(row) == {column}
    assert_agrees_with_jsonschema(row)
