"""The code verifier: every verdict reason, from real sandboxed runs."""

from __future__ import annotations

import json

import pytest

from thinktoggle.filters.code import (
    REASONS,
    BadTests,
    FunctionalTests,
    StdioTests,
    extract_code,
    parse_tests,
    same_output,
    verify_code,
    verify_code_batch,
)
from thinktoggle.filters.sandbox import Sandbox, SandboxLimits
from thinktoggle.schemas.record import Record, Verdict
from thinktoggle.schemas.think import compose_output

LIMITS = SandboxLimits(wall_s=3.0, cpu_s=1, memory_mb=512, output_bytes=64 * 1024, processes=16)
ADD_CHECK = {"entry_point": "add", "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}
SUM_STDIO = {"stdio": [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -4\n", "output": "6"}]}
# The usual competitive-programming trick for deep recursion: the work runs in a big-stack thread.
THREADED_SUM = """import sys, threading
sys.setrecursionlimit(1 << 16)
threading.stack_size(1 << 26)
def total(xs):
    return xs[0] if len(xs) == 1 else xs[0] + total(xs[1:])
def main():
    print(total(list(map(int, input().split()))))
threading.Thread(target=main).start()"""


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    with Sandbox(LIMITS, warm=True, workers=2) as sb:
        yield sb


def fenced(code: str) -> str:
    return f"Here is my solution.\n\n```python\n{code}\n```\n"


def record(answer: str, tests=None, reasoning: str | None = "Let me think.") -> Record:
    output = compose_output(reasoning, answer)
    mode = "on" if reasoning is not None else "off"
    return Record(
        input=[{"role": "user", "content": "Solve it."}], category="code", reasoning=mode, output=output, tests=tests
    )


def verdict(value: str, reason: str = "") -> Verdict:
    return Verdict("code", value, reason)


CASES = [
    # (answer, tests, expected verdict)
    (fenced("def add(a, b):\n    return a + b"), ADD_CHECK, verdict("pass")),
    (fenced("a, b = map(int, input().split())\nprint(a + b)"), SUM_STDIO, verdict("pass")),
    (fenced(THREADED_SUM), SUM_STDIO, verdict("pass")),  # output from a worker thread, as after a normal exit
    (fenced("def add(a, b):\n    return a - b"), ADD_CHECK, verdict("fail", "wrong_answer")),
    (fenced("a, b = map(int, input().split())\nprint(a * b)"), SUM_STDIO, verdict("fail", "wrong_answer")),
    (fenced("def add(a, b):\n    return a +"), ADD_CHECK, verdict("fail", "syntax_error")),
    ("The answer is to add the numbers.", ADD_CHECK, verdict("fail", "no_code")),
    (fenced("x = 1\n" * 20_000), ADD_CHECK, verdict("fail", "code_too_long")),
    (fenced("def add(a, b):\n    return a / 0"), ADD_CHECK, verdict("fail", "runtime_error")),
    (fenced("def ad(a, b):\n    return a + b"), ADD_CHECK, verdict("fail", "runtime_error")),  # no entry point
    (fenced("import sys\nsys.exit(3)"), SUM_STDIO, verdict("fail", "runtime_error")),
    (fenced("import sys\nsys.exit(0)\ndef add(a, b):\n    return a + b"), ADD_CHECK, verdict("fail", "exited_early")),
    (fenced("import os\nos._exit(0)"), ADD_CHECK, verdict("fail", "exited_early")),
    (fenced("def add(a, b):\n    while True:\n        pass"), ADD_CHECK, verdict("fail", "timeout")),
    (fenced("import time\ntime.sleep(60)"), SUM_STDIO, verdict("fail", "timeout")),
    (fenced("def add(a, b):\n    return len(bytearray(4 << 30))"), ADD_CHECK, verdict("fail", "memory_limit")),
    (fenced("x = [0] * (1 << 31)"), SUM_STDIO, verdict("fail", "memory_limit")),
    (fenced("while True:\n    print('spam' * 1000)"), SUM_STDIO, verdict("fail", "output_limit")),
    (fenced("def add(a, b):\n    return a + b"), None, verdict("unverifiable", "no_tests")),
    (fenced("def add(a, b):\n    return a + b"), {"stdio": []}, verdict("unverifiable", "no_tests")),
    (fenced("def add(a, b):\n    return a + b"), {"cases": [1, 2]}, verdict("unverifiable", "bad_tests")),
]


@pytest.mark.parametrize("answer,tests,expected", CASES, ids=[f"{c[2].verdict}-{c[2].reason}" for c in CASES])
def test_verdict_truth_table(sandbox: Sandbox, answer: str, tests, expected: Verdict) -> None:
    assert verify_code(record(answer, tests), sandbox=sandbox) == expected


def test_every_reason_is_covered() -> None:
    covered = {c[2].reason for c in CASES} | {"sandbox_error"}  # sandbox_error: its own test below
    assert covered - {""} == set(REASONS)


def test_a_broken_sandbox_is_an_error_not_a_fail() -> None:
    # A real start-up failure: bwrap rejects a negative tmpfs size, so the zygote never greets.
    with Sandbox(SandboxLimits(tmpfs_mb=-1), warm=True) as broken:
        assert verify_code(record(fenced("print(3)"), SUM_STDIO), sandbox=broken) == verdict("error", "sandbox_error")


def test_only_the_final_answer_counts() -> None:
    block = fenced("def add(a, b):\n    return a + b")
    in_reasoning = record("I would add them.", ADD_CHECK, reasoning="Try:\n" + block)
    assert extract_code(in_reasoning.output) is None
    assert verify_code(in_reasoning) == verdict("fail", "no_code")  # decided before any sandbox is needed
    unclosed = Record(
        input=[{"role": "user", "content": "x"}], category="code", reasoning="on", output="<think>" + fenced("print(1)")
    )
    assert extract_code(unclosed.output) is None
    two_blocks = fenced("print('first')") + "\nBetter:\n```py\nprint('second')\n```"
    assert extract_code(compose_output("thinking", two_blocks)) == "print('second')\n"
    assert extract_code("```python\nprint(1)\n") is None  # an unterminated block is not code


def test_off_mode_records_are_verified_too(sandbox: Sandbox) -> None:
    off = record(fenced("def add(a, b):\n    return a + b"), json.dumps(ADD_CHECK), reasoning=None)
    assert off.reasoning == "off"
    assert verify_code(off, sandbox=sandbox) == verdict("pass")  # tests given as a JSON string


@pytest.mark.parametrize(
    "actual,expected,same",
    [
        ("3\n", "3", True),
        ("1 2  3\r\n", "1 2 3\n", True),
        ("1\n2\n", "1 2", True),  # token-wise: line breaks are whitespace
        ("12", "1 2", False),
        ("3.0", "3", False),
        ("", "", True),
        ("", "0", False),
    ],
)
def test_whitespace_normalised_comparison(actual: str, expected: str, same: bool) -> None:
    assert same_output(actual, expected) is same


def test_parse_tests_forms_and_errors() -> None:
    assert parse_tests(ADD_CHECK) == FunctionalTests("add", ADD_CHECK["test"])
    assert parse_tests(json.dumps(SUM_STDIO)) == StdioTests((("1 2\n", "3\n"), ("10 -4\n", "6")))
    assert parse_tests(None) is None and parse_tests({}) is None
    for bad, message in [
        ("not json", "not JSON"),
        ([1], "must be an object"),
        ({"stdio": "1 2"}, "must be a list"),
        ({"stdio": [{"input": "1"}]}, r"stdio\[0\]"),
        ({"entry_point": "not an identifier", "test": "def check(c): pass"}, "identifier"),
        ({"entry_point": "f"}, "check"),
    ]:
        with pytest.raises(BadTests, match=message):
            parse_tests(bad)


def test_batch_matches_one_by_one_in_order(sandbox: Sandbox) -> None:
    records = [record(answer, tests) for answer, tests, _ in CASES if _.reason not in ("timeout", "code_too_long")]
    batch = verify_code_batch(records, workers=2, sandbox=sandbox)
    assert batch == [verify_code(r, sandbox=sandbox) for r in records]
    assert verify_code_batch(records[:2], workers=2, limits=LIMITS) == [verdict("pass"), verdict("pass")]
