"""The code verifier: run the final answer's program against the record's tests, in the sandbox.

- The program is the LAST ```python block of the FINAL answer (`schemas.think.final_answer`: the text after
  `</think>`); a block that appears only inside the reasoning does not count.
- Its syntax is checked with `ast.parse` on the host (parsing executes nothing).
- Two test forms (`record.tests`, a dict or its JSON string):
  - functional, as in HumanEval: `{"entry_point": "f", "test": "def check(candidate): ..."}` — passes when
    `check(f)` returns. The harness proves that it returned: only then does it read a per-run random nonce
    from a pipe the zygote filled before the fork, and report it; the host passes the run only if that exact
    nonce comes back. A program that exits before the tests complete (`sys.exit(0)`, `os._exit(0)`, a signal,
    `exec`) therefore fails. What this does NOT stop: the tests run inside the program's own process (as in
    HumanEval), so a deliberately adversarial program can still read the nonce pipe or patch `check` itself.
  - stdio, as in APPS/CodeContests: `{"stdio": [{"input": "...", "output": "..."}, ...]}` — one sandboxed run
    per case, stopping at the first failure; outputs are compared on the host as whitespace-separated
    tokens, and the expected outputs never enter the sandbox.

Verdicts (`filter="code"`):
  pass; fail with syntax_error | no_code | code_too_long | wrong_answer | runtime_error | exited_early |
  timeout | memory_limit | output_limit; unverifiable with no_tests | bad_tests; error with sandbox_error.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from thinktoggle.filters.sandbox import ExecResult, Program, Sandbox, SandboxLimits
from thinktoggle.schemas.record import Record, Verdict
from thinktoggle.schemas.think import final_answer

FILTER = "code"
MAX_CODE_CHARS = 100_000  # longer "programs" are degenerate generations, not solutions
CODE_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)
REASONS = (
    "syntax_error",
    "no_code",
    "code_too_long",
    "wrong_answer",
    "runtime_error",
    "exited_early",
    "timeout",
    "memory_limit",
    "output_limit",
    "no_tests",
    "bad_tests",
    "sandbox_error",
)


def extract_code(output: str) -> str | None:
    """The last ```python block of the final answer, or None."""
    blocks = CODE_BLOCK.findall(final_answer(output))
    return blocks[-1] if blocks else None


@dataclass(frozen=True, slots=True)
class FunctionalTests:
    entry_point: str
    test: str


@dataclass(frozen=True, slots=True)
class StdioTests:
    cases: tuple[tuple[str, str], ...]  # (input, expected output)


class BadTests(ValueError):
    """`record.tests` is in neither supported form."""


def parse_tests(tests: Any) -> FunctionalTests | StdioTests | None:
    """The record's tests in one of the two forms; None when there are none. Raises BadTests otherwise."""
    if tests is None or tests == "" or tests == {}:
        return None
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except json.JSONDecodeError as exc:
            raise BadTests(f"tests is a string but not JSON: {exc}") from exc
    if not isinstance(tests, dict):
        raise BadTests(f"tests must be an object, got {type(tests).__name__}")
    if "stdio" in tests:
        cases = tests["stdio"]
        if not isinstance(cases, list):
            raise BadTests("tests.stdio must be a list of {input, output}")
        parsed = []
        for i, case in enumerate(cases):
            if not (
                isinstance(case, dict) and isinstance(case.get("input"), str) and isinstance(case.get("output"), str)
            ):
                raise BadTests(f"tests.stdio[{i}] must be {{'input': str, 'output': str}}")
            parsed.append((case["input"], case["output"]))
        return StdioTests(tuple(parsed)) if parsed else None
    if "test" in tests or "entry_point" in tests:
        entry_point, test = tests.get("entry_point"), tests.get("test")
        if not (isinstance(entry_point, str) and entry_point.isidentifier()):
            raise BadTests(f"tests.entry_point must be a Python identifier, got {entry_point!r}")
        if not isinstance(test, str) or not test.strip():
            raise BadTests("tests.test must be the source of a `check(candidate)` function")
        return FunctionalTests(entry_point, test)
    raise BadTests(f"tests has neither 'stdio' nor 'entry_point'/'test' (keys: {sorted(tests)})")


def _verdict(verdict: str, reason: str = "") -> Verdict:
    return Verdict(FILTER, verdict, reason)  # type: ignore[arg-type]


def _failure(result: ExecResult) -> Verdict | None:
    """The verdict for a run that did not finish normally, or None when it did."""
    if result.status in ("timeout", "memory_limit", "output_limit"):
        return _verdict("fail", result.status)
    if result.status == "crashed":  # the program killed or broke its sandbox's zygote
        return _verdict("fail", "runtime_error")
    if result.status == "sandbox_error":
        return _verdict("error", "sandbox_error")
    return None


def _functional_verdict(result: ExecResult) -> Verdict:
    if (failure := _failure(result)) is not None:
        return failure
    if result.passed:
        return _verdict("pass")
    harness = result.harness
    if harness.startswith("wrong_answer"):
        return _verdict("fail", "wrong_answer")
    if harness.startswith("memory_limit"):
        return _verdict("fail", "memory_limit")
    if harness.startswith("exited_early"):  # SystemExit raised before check() returned
        return _verdict("fail", "exited_early")
    if harness.startswith("error:") or result.exit_code:
        return _verdict("fail", "runtime_error")
    return _verdict("fail", "exited_early")  # exit 0 (or exited_early:*) without the harness's nonce


def same_output(actual: str, expected: str) -> bool:
    """Whitespace-normalised: the same whitespace-separated tokens in the same order."""
    return actual.split() == expected.split()


def _stdio_verdict(result: ExecResult, expected: str) -> Verdict | None:
    """The verdict of one case: None when it passed."""
    if (failure := _failure(result)) is not None:
        return failure
    if result.harness.startswith("memory_limit"):
        return _verdict("fail", "memory_limit")
    if result.exit_code != 0:
        return _verdict("fail", "runtime_error")
    if not same_output(result.stdout.decode("utf-8", "replace"), expected):
        return _verdict("fail", "wrong_answer")
    return None


def _static_verdict(record: Record) -> Verdict | tuple[str, FunctionalTests | StdioTests]:
    """Everything decided without running anything: the code and the tests, or the verdict."""
    try:
        tests = parse_tests(record.tests)
    except BadTests:
        return _verdict("unverifiable", "bad_tests")
    code = extract_code(record.output)
    if code is None or not code.strip():
        return _verdict("fail", "no_code")
    if len(code) > MAX_CODE_CHARS:
        return _verdict("fail", "code_too_long")
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: NUL bytes
        return _verdict("fail", "syntax_error")
    if tests is None:
        return _verdict("unverifiable", "no_tests")
    return code, tests


def verify_code(record: Record, sandbox: Sandbox | None = None) -> Verdict:
    """Verify one record's code. Without a `sandbox`, one is made for this call (slow: prefer passing one).

    Raises SandboxUnavailable when bubblewrap is missing and unsafe execution was not allowed.
    """
    decided = _static_verdict(record)
    if isinstance(decided, Verdict):
        return decided
    if sandbox is None:
        with Sandbox() as own:
            return _run_tests(decided, own)
    return _run_tests(decided, sandbox)


def _run_tests(planned: tuple[str, FunctionalTests | StdioTests], sandbox: Sandbox) -> Verdict:
    code, tests = planned
    if isinstance(tests, FunctionalTests):
        program = Program(code, mode="functional", test=tests.test, entry_point=tests.entry_point)
        return _functional_verdict(sandbox.run(program))
    for stdin, expected in tests.cases:
        if (verdict := _stdio_verdict(sandbox.run(Program(code, stdin=stdin)), expected)) is not None:
            return verdict
    return _verdict("pass")


def verify_code_batch(
    records: Sequence[Record],
    workers: int = 2,
    sandbox: Sandbox | None = None,
    limits: SandboxLimits | None = None,
    allow_unsafe: bool = False,
) -> list[Verdict]:
    """Verdicts in input order, `workers` records at once over one warm sandbox pool.

    Records that need no execution (no code, syntax error, no tests) never touch the sandbox.
    """
    decided = [_static_verdict(r) for r in records]
    if all(isinstance(d, Verdict) for d in decided):
        return list(decided)  # type: ignore[arg-type]
    own = sandbox is None
    pool = sandbox or Sandbox(limits or SandboxLimits(), warm=True, workers=workers, allow_unsafe=allow_unsafe)
    try:

        def one(item: Verdict | tuple[str, FunctionalTests | StdioTests]) -> Verdict:
            return item if isinstance(item, Verdict) else _run_tests(item, pool)

        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="verify-code") as threads:
            return list(threads.map(one, decided))
    finally:
        if own:
            pool.close()
