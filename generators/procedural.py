"""Built-in procedural tasks with exact answers, and the deterministic teacher that answers them.

Three tasks ship:
- `arithmetic`: a chain of integer operations ("Start with 7. Add 5, then multiply by 3 ..."), parameterised
  (steps, operand range, operators, optional modulus, trace style). Its teacher writes every intermediate
  step inside `<think>` in "on" mode and only `\\boxed{answer}` in "off" mode.
- `mod_chain`: the demo's fill-in-the-blank mod-10 chains, whose trace is the filled-in chain (small enough for
  a 0.3M-parameter model to learn the toggle from).
- `code`: small Python tasks with tests, in both test forms the filters run: functional (HumanEval-style
  `{"entry_point", "test"}`) and stdin/stdout (`{"stdio": [{"input", "output"}]}`).

Problems are drawn deterministically from a seed. The train / held-out split is a property of the *problem*
(a hash of its content), not of the seed or index, so a held-out set never overlaps any train set, whatever
seeds and counts either was drawn with.

Adding a task: write `make(count, seed, split, **params) -> list[Record]` (each record's
`metadata["procedural"]["problem"]` holds everything `solve` needs) and `solve(problem) -> (reasoning, answer)`,
then `register_task(ProceduralTask(name, category, make, solve))`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from thinktoggle.schemas.record import Record, content_hash

Split = Literal["train", "heldout"]
SPLITS = ("train", "heldout")
PROCEDURAL_LICENSE = "cc-by-4.0"


# --------------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ProceduralTask:
    """A task: how to draw prompt records, and how the procedural teacher answers one of them."""

    name: str
    category: str
    make: Callable[..., list[Record]]  # (count, seed=0, split="train", **params) -> prompt records
    solve: Callable[[dict[str, Any]], tuple[str, str]]  # problem -> (reasoning steps, final answer)


TASKS: dict[str, ProceduralTask] = {}


def register_task(task: ProceduralTask) -> ProceduralTask:
    TASKS[task.name] = task
    return task


def get_task(name: str) -> ProceduralTask:
    if name not in TASKS:
        raise ValueError(f"unknown procedural task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]


def procedural_records(task: str, count: int, seed: int = 0, split: Split = "train", **params: Any) -> list[Record]:
    """`count` distinct prompt records (output "") of a registered task."""
    return get_task(task).make(count, seed=seed, split=split, **params)


def procedural_problem(record: Record) -> tuple[ProceduralTask, dict[str, Any]]:
    """The task and problem a procedural prompt record was drawn from; ValueError if it is not one."""
    info = (record.metadata or {}).get("procedural")
    if not isinstance(info, dict) or "task" not in info or "problem" not in info:
        raise ValueError("not a procedural prompt (metadata.procedural.task/problem missing)")
    return get_task(info["task"]), info["problem"]


def split_of(problem_key: Any, heldout_fraction: float) -> Split:
    """Which split a problem belongs to: a pure function of its content, so the splits never overlap."""
    bucket = int(content_hash("split", problem_key), 16) % 10_000
    return "heldout" if bucket < heldout_fraction * 10_000 else "train"


def _draw_distinct(
    count: int,
    seed: int,
    split: Split,
    heldout_fraction: float,
    draw: Callable[[random.Random], Any],
    what: str,
    stream: str = "",
) -> list[Any]:
    """Draw `count` distinct problems of `split`, deterministically from `seed`. `what` names the problems (their
    split hash); `stream` (default `what`) the random draw, so a task can draw another task's problems afresh."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    rng = random.Random(f"{stream or what}/{seed}/{split}")
    seen: set[str] = set()
    problems: list[Any] = []
    max_attempts = 200 * count + 10_000
    for _ in range(max_attempts):
        if len(problems) >= count:
            break
        problem = draw(rng)
        key = content_hash(what, problem)
        if key in seen or split_of(key, heldout_fraction) != split:
            continue
        seen.add(key)
        problems.append(problem)
    if len(problems) < count:
        raise ValueError(
            f"{what}: only {len(problems)} distinct {split} problems found for count={count}; "
            "widen the parameters (more steps, a larger operand range) or ask for fewer"
        )
    return problems


def _prompt_record(task: str, category: str, prompt: str, problem: dict, split: Split, seed: int, **fields) -> Record:
    return Record(
        input=[{"role": "user", "content": prompt}],
        category=category,
        reasoning="on",  # a prompt; the generator asks for both modes
        license=PROCEDURAL_LICENSE,
        metadata={"procedural": {"task": task, "split": split, "seed": seed, "problem": problem}},
        **fields,
    )


# ------------------------------------------------------------------------------------------------- arithmetic

_OP_WORDS = {"+": "add", "-": "subtract", "*": "multiply by"}
_OP_VERBS = {"+": "plus", "-": "minus", "*": "times"}


@dataclass(frozen=True)
class ArithmeticSpec:
    """The shape of chained-arithmetic problems. Every field changes which problems are drawn."""

    min_steps: int = 2
    max_steps: int = 4
    operand_min: int = 1
    operand_max: int = 12
    ops: tuple[str, ...] = ("+", "-", "*")
    modulus: int | None = None  # reduce after every step (keeps long chains small)
    trace_style: Literal["equation", "words"] = "equation"
    heldout_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(f"need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        if self.operand_min > self.operand_max:
            raise ValueError(f"operand_min {self.operand_min} > operand_max {self.operand_max}")
        bad = [op for op in self.ops if op not in _OP_WORDS]
        if bad or not self.ops:
            raise ValueError(f"ops must be a non-empty subset of {sorted(_OP_WORDS)}, got {list(self.ops)}")
        if self.modulus is not None and self.modulus < 2:
            raise ValueError(f"modulus must be >= 2, got {self.modulus}")
        if self.trace_style not in ("equation", "words"):
            raise ValueError(f"trace_style must be 'equation' or 'words', got {self.trace_style!r}")


def apply_op(value: int, op: str, operand: int, modulus: int | None = None) -> int:
    result = value + operand if op == "+" else value - operand if op == "-" else value * operand
    return result % modulus if modulus else result


def arithmetic_values(problem: dict[str, Any]) -> list[int]:
    """The running value after the start and after every step (exact integers)."""
    values = [problem["start"]]
    for op, operand in problem["steps"]:
        values.append(apply_op(values[-1], op, operand, problem.get("modulus")))
    return values


def arithmetic_prompt(problem: dict[str, Any]) -> str:
    steps = ", then ".join(f"{_OP_WORDS[op]} {operand}" for op, operand in problem["steps"])
    modulus = problem.get("modulus")
    rule = f" Work modulo {modulus}: reduce after every step." if modulus else ""
    return (
        f"Start with {problem['start']}. {steps[0].upper()}{steps[1:]}.{rule} "
        "What is the result? Put the final answer in \\boxed{}."
    )


def arithmetic_trace(problem: dict[str, Any]) -> list[str]:
    """One line per step. Equation style: `7 + 5 = 12` (and `36 mod 11 = 3`); words: `Step 1: 7 plus 5 is 12.`"""
    modulus = problem.get("modulus")
    style = problem.get("trace_style", "equation")
    lines: list[str] = []
    value = problem["start"]
    for i, (op, operand) in enumerate(problem["steps"], start=1):
        raw = apply_op(value, op, operand)
        if style == "words":
            line = f"Step {i}: {value} {_OP_VERBS[op]} {operand} is {raw}."
            if modulus:
                line += f" {raw} modulo {modulus} is {raw % modulus}."
        else:
            line = f"{value} {op} {operand} = {raw}"
            if modulus:
                line += f"\n{raw} mod {modulus} = {raw % modulus}"
        lines.append(line)
        value = raw % modulus if modulus else raw
    return lines


def solve_arithmetic(problem: dict[str, Any]) -> tuple[str, str]:
    return "\n".join(arithmetic_trace(problem)), f"\\boxed{{{arithmetic_values(problem)[-1]}}}"


def arithmetic_problems(
    count: int, seed: int = 0, split: Split = "train", spec: ArithmeticSpec = ArithmeticSpec()
) -> list[dict[str, Any]]:
    """`count` distinct problems: {"start", "steps": [[op, operand], ...], "modulus", "trace_style"}."""

    def draw(rng: random.Random) -> dict[str, Any]:
        n_steps = rng.randint(spec.min_steps, spec.max_steps)
        return {
            "start": rng.randint(spec.operand_min, spec.operand_max),
            "steps": [[rng.choice(spec.ops), rng.randint(spec.operand_min, spec.operand_max)] for _ in range(n_steps)],
            "modulus": spec.modulus,
            "trace_style": spec.trace_style,
        }

    return _draw_distinct(count, seed, split, spec.heldout_fraction, draw, "arithmetic")


def arithmetic_records(count: int, seed: int = 0, split: Split = "train", **params: Any) -> list[Record]:
    """Prompt records for `arithmetic`; `params` are `ArithmeticSpec` fields (lists accepted for `ops`)."""
    if "ops" in params:
        params["ops"] = tuple(params["ops"])
    spec = ArithmeticSpec(**params)
    return [
        _prompt_record(
            "arithmetic",
            "math",
            arithmetic_prompt(p),
            p,
            split,
            seed,
            expected_answer=str(arithmetic_values(p)[-1]),
        )
        for p in arithmetic_problems(count, seed, split, spec)
    ]


register_task(ProceduralTask("arithmetic", "math", arithmetic_records, solve_arithmetic))


# ------------------------------------------------------------------------------------- mod_chain (the demo's)
# A fill-in-the-blanks chain of single digits worked left to right modulo 10: `6+6=_*4=_-7=_-4=_`. The on
# trace is the chain with its blanks filled (`6+6=2*4=8-7=1-4=7`), so every step's operator and operand sit at
# a fixed distance back in the prompt and each result depends only on the three tokens before it: a tiny model
# learns the on mode in about a thousand steps. The off mode must compute the whole chain in one token, which
# it cannot: the accuracy gap between the modes is what the demo's toggle validation shows.


@dataclass(frozen=True)
class ModChainSpec:
    """The shape of mod-chain problems. Every field changes which problems are drawn."""

    steps: int = 4
    modulus: int = 10
    ops: tuple[str, ...] = ("+", "-", "*")
    heldout_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not 2 <= self.modulus <= 10:
            raise ValueError(f"modulus must be in [2, 10] (single-digit operands), got {self.modulus}")
        bad = [op for op in self.ops if op not in _OP_WORDS]
        if bad or not self.ops:
            raise ValueError(f"ops must be a non-empty subset of {sorted(_OP_WORDS)}, got {list(self.ops)}")


def mod_chain_prompt(problem: dict[str, Any]) -> str:
    # Short on purpose: every prompt token is paid for at every training step of the demo's tiny model.
    chain = str(problem["start"]) + "".join(f"{op}{operand}=_" for op, operand in problem["steps"])
    return f"Fill in the blanks mod {problem['modulus']}: {chain}"


def solve_mod_chain(problem: dict[str, Any]) -> tuple[str, str]:
    values = arithmetic_values(problem)
    trace = str(problem["start"]) + "".join(
        f"{op}{operand}={value}" for (op, operand), value in zip(problem["steps"], values[1:], strict=True)
    )
    return trace, f"\\boxed{{{values[-1]}}}"


def _draw_mod_chain(rng: random.Random, spec: ModChainSpec) -> dict[str, Any]:
    """One chain (mod_chain's and mod_choice's: the same draw, so the same seed gives the same chains)."""
    return {
        "start": rng.randrange(spec.modulus),
        "steps": [[rng.choice(spec.ops), rng.randrange(spec.modulus)] for _ in range(spec.steps)],
        "modulus": spec.modulus,
    }


def _mod_chain_spec(params: dict[str, Any]) -> ModChainSpec:
    """`ModChainSpec` from a source's params (a recipe gives `ops` as a list)."""
    if "ops" in params:
        params = {**params, "ops": tuple(params["ops"])}
    return ModChainSpec(**params)


def mod_chain_problems(
    count: int, seed: int = 0, split: Split = "train", spec: ModChainSpec = ModChainSpec()
) -> list[dict[str, Any]]:
    """`count` distinct problems: {"start", "steps": [[op, operand], ...], "modulus"}, digits 0-(modulus-1)."""

    return _draw_distinct(count, seed, split, spec.heldout_fraction, partial(_draw_mod_chain, spec=spec), "mod_chain")


def mod_chain_records(count: int, seed: int = 0, split: Split = "train", **params: Any) -> list[Record]:
    """Prompt records for `mod_chain`; `params` are `ModChainSpec` fields (lists accepted for `ops`)."""
    spec = _mod_chain_spec(params)
    return [
        _prompt_record(
            "mod_chain", "math", mod_chain_prompt(p), p, split, seed, expected_answer=str(arithmetic_values(p)[-1])
        )
        for p in mod_chain_problems(count, seed, split, spec)
    ]


register_task(ProceduralTask("mod_chain", "math", mod_chain_records, solve_mod_chain))


# ------------------------------------------------------------------- mod_choice (the demo's second domain)
# The same chains asked as multiple choice: `Pick the last blank mod 10: A)3; B)7; C)1; D)9; 6+6=_*4=_-7=_-4=_`,
# one option the result. On: `<think>6+6=2*4=8-7=1-4=7; A37- B77B C17B D97B</think>` then `\boxed{B}`; off:
# `\boxed{B}` alone. After the filled chain, each option is written as its letter, its value, the result again,
# and the answer so far: its own letter when the value is the result, else the previous option's (`-`: none
# yet). Every step is then fixed-offset work for a tiny model, as the chain's steps are: an option is four
# tokens in the prompt and in the trace (the value is copied from a fixed distance), the result is carried from
# four tokens back, the answer so far compares two neighbours and copies from three or four tokens back, and the
# boxed letter is the trace's last token. (Tried and measured, docs/BENCHMARKS.md: a bare lookup "which option
# equals the result", y/n against the result at a distance growing with each option, and y/n marks with the
# boxed letter found by its `y`: the last lookup stayed the weak step, 0.27-0.78 across seeds.)
# The options come before the chain so that the chain ends the prompt in both tasks: the trace copies each step
# from the same distance as in mod_chain. Another answer format (a letter, scored by filters/choice.py) over the
# same skill. A chain's split is mod_chain's (the same hash), so no held-out chain of either task is ever
# trained on by the other.

CHOICE_LETTERS = "ABCD"


def mod_choice_problems(
    count: int, seed: int = 0, split: Split = "train", spec: ModChainSpec = ModChainSpec()
) -> list[dict[str, Any]]:
    """`count` distinct problems: a mod-chain problem plus "options" (four distinct values, the result among them)."""

    draw = partial(_draw_mod_chain, spec=spec)
    problems = _draw_distinct(count, seed, split, spec.heldout_fraction, draw, "mod_chain", stream="mod_choice")
    for problem in problems:
        result = arithmetic_values(problem)[-1]
        rng = random.Random(content_hash("mod_choice", problem))  # options depend on the chain only
        others = rng.sample([v for v in range(spec.modulus) if v != result], min(3, spec.modulus - 1))
        options = [result, *others]
        rng.shuffle(options)
        problem["options"] = options
    return problems


def mod_choice_prompt(problem: dict[str, Any]) -> str:
    options = " ".join(f"{letter}){value};" for letter, value in zip(CHOICE_LETTERS, problem["options"], strict=False))
    return f"Pick the last blank mod {problem['modulus']}: {options} {mod_chain_prompt(problem).split(': ', 1)[1]}"


def mod_choice_letter(problem: dict[str, Any]) -> str:
    return CHOICE_LETTERS[problem["options"].index(arithmetic_values(problem)[-1])]


def solve_mod_choice(problem: dict[str, Any]) -> tuple[str, str]:
    chain, _ = solve_mod_chain(problem)
    result = arithmetic_values(problem)[-1]
    checks, so_far = [], "-"
    for letter, value in zip(CHOICE_LETTERS, problem["options"], strict=False):
        so_far = letter if value == result else so_far
        checks.append(f"{letter}{value}{result}{so_far}")
    return f"{chain}; {' '.join(checks)}", f"\\boxed{{{mod_choice_letter(problem)}}}"


def mod_choice_records(count: int, seed: int = 0, split: Split = "train", **params: Any) -> list[Record]:
    """Prompt records for `mod_choice` (category science, as GPQA's); `params` are `ModChainSpec` fields."""
    spec = _mod_chain_spec(params)
    return [
        _prompt_record(
            "mod_choice", "science", mod_choice_prompt(p), p, split, seed, expected_answer=mod_choice_letter(p)
        )
        for p in mod_choice_problems(count, seed, split, spec)
    ]


register_task(ProceduralTask("mod_choice", "science", mod_choice_records, solve_mod_choice))


# ------------------------------------------------------------------------------------------------------- code

# Each template: (name, test form, params drawn from rng). The reference solution is plain Python that the
# teacher writes out; expected outputs are computed here with ordinary Python on our own inputs.


def _code_problem_text(problem: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    """(prompt, reasoning, solution code, tests) for a code problem."""
    name, p = problem["template"], problem["params"]
    if name == "scale_shift":
        a, b = p["a"], p["b"]

        def f(x: int) -> int:
            return x * a + b

        prompt = f"Write a Python function `scale_shift(x)` that returns x multiplied by {a}, plus {b}."
        code = f"def scale_shift(x):\n    return x * {a} + {b}"
        checks = [0, 1, 5, -3]
        test = "def check(candidate):\n" + "".join(f"    assert candidate({x}) == {f(x)}\n" for x in checks)
        reasoning = f"Multiply x by {a}, then add {b}.\nCheck: scale_shift(5) = 5 * {a} + {b} = {f(5)}."
        return prompt, reasoning, code, {"entry_point": "scale_shift", "test": test}
    if name == "count_multiples":
        k = p["k"]
        cases = [[1, 2, 3, 4, 5, 6], [k, 2 * k, 7], [], [0, -k, k + 1]]
        prompt = (
            f"Write a Python function `count_multiples(xs)` that returns how many integers in the list xs "
            f"are divisible by {k}."
        )
        code = f"def count_multiples(xs):\n    return sum(1 for x in xs if x % {k} == 0)"
        test = "def check(candidate):\n" + "".join(
            f"    assert candidate({xs}) == {sum(1 for x in xs if x % k == 0)}\n" for xs in cases
        )
        reasoning = f"Count the elements x with x % {k} == 0.\nCheck: [{k}, {2 * k}, 7] has 2 multiples of {k}."
        return prompt, reasoning, code, {"entry_point": "count_multiples", "test": test}
    if name == "sum_above":
        t = p["t"]
        inputs = ["1 2 3 4 5 6 7 8 9 10", f"{t} {t + 1} {t + 2}", "0", "-5 20 30"]
        prompt = (
            f"Write a Python program that reads integers separated by spaces from one line of standard input "
            f"and prints the sum of those greater than {t}."
        )
        code = f"xs = [int(v) for v in input().split()]\nprint(sum(x for x in xs if x > {t}))"
        stdio = [{"input": s + "\n", "output": f"{sum(int(v) for v in s.split() if int(v) > t)}\n"} for s in inputs]
        reasoning = f"Read the line, split it, keep the values greater than {t}, print their sum."
        return prompt, reasoning, code, {"stdio": stdio}
    if name == "linear_pair":
        k = p["k"]
        pairs = [(1, 2), (0, 0), (-3, 7), (10, -4)]
        prompt = (
            f"Write a Python program that reads two integers a and b from one line of standard input "
            f"and prints a * {k} + b."
        )
        code = f"a, b = map(int, input().split())\nprint(a * {k} + b)"
        stdio = [{"input": f"{a} {b}\n", "output": f"{a * k + b}\n"} for a, b in pairs]
        reasoning = f"Parse a and b, compute a * {k} + b.\nCheck: a=1, b=2 gives {k + 2}."
        return prompt, reasoning, code, {"stdio": stdio}
    raise ValueError(f"unknown code template {name!r}")


CODE_TEMPLATES = {
    "scale_shift": lambda rng: {"a": rng.randint(2, 20), "b": rng.randint(0, 30)},
    "count_multiples": lambda rng: {"k": rng.randint(2, 40)},
    "sum_above": lambda rng: {"t": rng.randint(-10, 60)},
    "linear_pair": lambda rng: {"k": rng.randint(2, 60)},
}


def code_problems(
    count: int,
    seed: int = 0,
    split: Split = "train",
    templates: tuple[str, ...] = tuple(CODE_TEMPLATES),
    heldout_fraction: float = 0.1,
) -> list[dict[str, Any]]:
    unknown = [t for t in templates if t not in CODE_TEMPLATES]
    if unknown or not templates:
        raise ValueError(f"templates must be a non-empty subset of {sorted(CODE_TEMPLATES)}, got {list(templates)}")

    def draw(rng: random.Random) -> dict[str, Any]:
        template = rng.choice(templates)
        return {"template": template, "params": CODE_TEMPLATES[template](rng)}

    return _draw_distinct(count, seed, split, heldout_fraction, draw, "code")


def solve_code(problem: dict[str, Any]) -> tuple[str, str]:
    _, reasoning, code, _ = _code_problem_text(problem)
    return reasoning, f"```python\n{code}\n```"


def code_records(count: int, seed: int = 0, split: Split = "train", **params: Any) -> list[Record]:
    """Prompt records for `code`; params: `templates` (names from CODE_TEMPLATES), `heldout_fraction`."""
    if "templates" in params:
        params["templates"] = tuple(params["templates"])
    records = []
    for problem in code_problems(count, seed, split, **params):
        prompt, _, _, tests = _code_problem_text(problem)
        records.append(_prompt_record("code", "code", prompt, problem, split, seed, tests=tests))
    return records


register_task(ProceduralTask("code", "code", code_records, solve_code))


def procedural_answer(record: Record, reasoning: str) -> tuple[str | None, str]:
    """The procedural teacher's (reasoning, answer) for a prompt record in a mode: reasoning is None when off."""
    task, problem = procedural_problem(record)
    steps, answer = task.solve(problem)
    return (steps if reasoning == "on" else None), answer


__all__ = [
    "TASKS",
    "ArithmeticSpec",
    "ModChainSpec",
    "ProceduralTask",
    "apply_op",
    "arithmetic_problems",
    "arithmetic_prompt",
    "arithmetic_records",
    "arithmetic_trace",
    "arithmetic_values",
    "code_problems",
    "code_records",
    "get_task",
    "mod_chain_problems",
    "mod_chain_prompt",
    "mod_chain_records",
    "mod_choice_problems",
    "mod_choice_records",
    "procedural_answer",
    "procedural_problem",
    "procedural_records",
    "register_task",
    "solve_arithmetic",
    "solve_code",
    "solve_mod_chain",
    "solve_mod_choice",
    "split_of",
]

# The tool_calling task lives in its own module; importing it here registers it wherever tasks are looked up.
from thinktoggle.generators import procedural_tools as _procedural_tools  # noqa: E402, F401
