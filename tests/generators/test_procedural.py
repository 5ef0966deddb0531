"""Procedural tasks: exact answers, traces that recompute, deterministic draws, disjoint splits."""

import re
import subprocess
import sys

import pytest

from thinktoggle.generators.procedural import (
    ArithmeticSpec,
    arithmetic_problems,
    procedural_answer,
    procedural_records,
    split_of,
)
from thinktoggle.schemas.record import content_hash

EQUATION = re.compile(r"^(-?\d+) ([+\-*]) (-?\d+) = (-?\d+)$")
MOD_LINE = re.compile(r"^(-?\d+) mod (\d+) = (-?\d+)$")
WORDS = re.compile(
    r"^Step (\d+): (-?\d+) (plus|minus|times) (-?\d+) is (-?\d+)\.(?: (-?\d+) modulo (\d+) is (-?\d+)\.)?$"
)
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
VERBS = {"plus": "+", "minus": "-", "times": "*"}


def recompute_equation_trace(trace: str, start: int) -> int:
    """Check every line of an equation-style trace by recomputing it; return the final value."""
    value = start
    for line in trace.splitlines():
        if m := MOD_LINE.match(line):
            raw, modulus, reduced = int(m[1]), int(m[2]), int(m[3])
            assert raw == value and raw % modulus == reduced, line
            value = reduced
            continue
        m = EQUATION.match(line)
        assert m, f"not a step: {line!r}"
        left, op, right, result = int(m[1]), m[2], int(m[3]), int(m[4])
        assert left == value, f"chain broken at {line!r}"
        assert OPS[op](left, right) == result, f"wrong arithmetic: {line!r}"
        value = result
    return value


def parse_prompt(prompt: str) -> tuple[int, list[tuple[str, int]], int | None]:
    start = int(re.match(r"Start with (-?\d+)\.", prompt)[1])
    words = {"add": "+", "subtract": "-", "multiply by": "*"}
    steps = [
        (words[w.lower()], int(n))
        for w, n in re.findall(r"(Add|add|Subtract|subtract|Multiply by|multiply by) (-?\d+)", prompt)
    ]
    modulus = re.search(r"Work modulo (\d+)", prompt)
    return start, steps, int(modulus[1]) if modulus else None


@pytest.mark.parametrize("modulus", [None, 7, 97])
def test_arithmetic_traces_recompute_exactly(modulus):
    records = procedural_records("arithmetic", 60, seed=3, modulus=modulus, min_steps=1, max_steps=6)
    for record in records:
        start, steps, mod = parse_prompt(record.prompt)
        assert mod == modulus
        expected = start
        for op, operand in steps:  # an independent evaluation of the prompt text
            expected = OPS[op](expected, operand)
            expected = expected % mod if mod else expected
        reasoning, answer = procedural_answer(record, "on")
        assert recompute_equation_trace(reasoning, start) == expected
        assert answer == f"\\boxed{{{expected}}}"
        assert record.expected_answer == str(expected)
        assert len([ln for ln in reasoning.splitlines() if EQUATION.match(ln)]) == len(steps)
        assert procedural_answer(record, "off") == (None, answer)


def test_words_trace_recomputes():
    for record in procedural_records("arithmetic", 30, seed=1, trace_style="words", modulus=11):
        start, steps, _ = parse_prompt(record.prompt)
        value = start
        reasoning, answer = procedural_answer(record, "on")
        lines = reasoning.splitlines()
        assert len(lines) == len(steps)
        for i, line in enumerate(lines, start=1):
            m = WORDS.match(line)
            assert m and int(m[1]) == i and int(m[2]) == value, line
            raw = OPS[VERBS[m[3]]](value, int(m[4]))
            assert raw == int(m[5]) and int(m[6]) == raw and raw % 11 == int(m[8]), line
            value = int(m[8])
        assert answer == f"\\boxed{{{value}}}"


def test_draws_are_deterministic_distinct_and_parameterised():
    a = procedural_records("arithmetic", 50, seed=5)
    b = procedural_records("arithmetic", 50, seed=5)
    assert [r.prompt for r in a] == [r.prompt for r in b]
    assert len({r.pair_id for r in a}) == 50
    assert [r.prompt for r in procedural_records("arithmetic", 50, seed=6)] != [r.prompt for r in a]
    spec = ArithmeticSpec(min_steps=5, max_steps=5, operand_min=2, operand_max=3, ops=("*",))
    for problem in arithmetic_problems(10, seed=0, spec=spec):
        assert len(problem["steps"]) == 5 and all(op == "*" and 2 <= x <= 3 for op, x in problem["steps"])


def test_heldout_never_overlaps_train_whatever_the_seeds():
    train = {r.prompt for seed in range(3) for r in procedural_records("arithmetic", 300, seed=seed)}
    heldout = [r for seed in range(3) for r in procedural_records("arithmetic", 40, seed=seed, split="heldout")]
    assert heldout and not train & {r.prompt for r in heldout}
    assert all(r.metadata["procedural"]["split"] == "heldout" for r in heldout)
    code_train = {r.prompt for r in procedural_records("code", 150, seed=0)}
    code_held = {r.prompt for r in procedural_records("code", 10, seed=9, split="heldout")}
    assert not code_train & code_held
    # the split is a function of the problem alone
    key = content_hash("arithmetic", {"start": 1})
    assert split_of(key, 0.1) == split_of(key, 0.1)


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="ops"):
        procedural_records("arithmetic", 3, ops=["/"])
    with pytest.raises(ValueError, match="min_steps"):
        procedural_records("arithmetic", 3, min_steps=3, max_steps=2)
    with pytest.raises(ValueError, match="only .* distinct"):
        procedural_records("arithmetic", 500, min_steps=1, max_steps=1, operand_min=1, operand_max=2)
    with pytest.raises(ValueError, match="unknown procedural task"):
        procedural_records("nope", 3)


def test_code_tasks_reference_solutions_pass_their_tests():
    """The teacher's code passes its own tests (run here: the code is ours, generated from templates)."""
    records = procedural_records("code", 24, seed=2)
    forms = {"functional": 0, "stdio": 0}
    for record in records:
        _, answer = procedural_answer(record, "on")
        code = re.search(r"```python\n(.*)\n```", answer, re.S)[1]
        tests = record.tests
        if "entry_point" in tests:
            forms["functional"] += 1
            scope: dict = {}
            exec(code + "\n" + tests["test"], scope)  # noqa: S102 - our own template code
            scope["check"](scope[tests["entry_point"]])
        else:
            forms["stdio"] += 1
            for case in tests["stdio"]:
                run = subprocess.run([sys.executable, "-c", code], input=case["input"], capture_output=True, text=True)
                assert run.stdout == case["output"], (record.prompt, case)
    assert forms["functional"] and forms["stdio"]
