"""Benchmarks for the evaluation: a prompt source (a recipe's `sources:` entry) and a scorer, known ones by name.

    validate:
      benchmarks:
        - {name: MATH-500}                                      # a known benchmark: its Hub source and scorer
        - {name: GPQA-Diamond, source: {type: file, path: gpqa.jsonl}}   # a local copy in the original columns
        - {name: heldout, source: {type: file, path: heldout.jsonl}, scorer: math}

Known benchmarks (`KNOWN`) carry the Hub id, split, config and columns of their dataset card, the prompt the
paper's evaluation (NeMo-Skills) uses, and a `layout` when rows need more than a column mapping to become
prompts: GPQA's four answer columns become a lettered question (choices shuffled by a hash of the question, so
every run shows the same order), HumanEval's `prompt`/`test`/`entry_point` and MBPP's `test_list` become
functional tests, LiveCodeBench's public + private cases become stdin/stdout tests (call-based LeetCode rows are
refused: the sandbox runs programs, not class methods). Rows that cannot be used come back as errors naming
file:line and field, as every source does.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import random
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from thinktoggle.filters.choice import choice_letters
from thinktoggle.generators.sources import SourceConfig, SourceItem, iter_source, row_to_prompt
from thinktoggle.schemas.io import RowRead, iter_rows
from thinktoggle.schemas.record import content_hash

Scorer = Literal["auto", "math", "code", "choice"]
Layout = Literal["", "gpqa", "humaneval", "mbpp", "livecodebench"]
SCORERS = ("math", "code", "choice")

MATH_PROMPT = (
    "Solve the following math problem. Make sure to put the answer (and only answer) inside \\boxed{}.\n\n{question}"
)
CHOICE_PROMPT = (
    "Answer the following multiple choice question. Think step by step if you need to, then put the letter of "
    "the correct choice (and only the letter) inside \\boxed{}.\n\n{question}"
)
HUMANEVAL_PROMPT = (
    "Complete the following Python function. Write the whole function, with its imports, in one ```python "
    "code block.\n\n```python\n{prompt}```"
)
MBPP_PROMPT = (
    "{text}\nWrite the Python function in one ```python code block. Your code should pass these tests:\n\n{tests}"
)
LCB_PROMPT = (
    "You will be given a question (problem specification) and will generate a correct Python program that matches "
    "the specification and passes all tests.\n\nQuestion: {question}\n\nRead the inputs from stdin, solve the "
    "problem and write the answer to stdout. Enclose your code within delimiters as follows.\n```python\n"
    "# YOUR CODE HERE\n```"
)


@dataclass(frozen=True)
class BenchmarkConfig:
    """One benchmark of the evaluation (an item of `validate.benchmarks`)."""

    name: str  # a known benchmark (MATH-500, AIME-2024, AIME-2025, GPQA-Diamond, HumanEval, MBPP, LiveCodeBench) or your own
    source: SourceConfig | None = (
        None  # its prompts, as a recipe's `sources:` entry; unset: the known benchmark's Hub source
    )
    scorer: Scorer = "auto"  # math | code | choice; auto: the known benchmark's, else code for code rows, else math
    layout: Layout = (
        ""  # rows in a known benchmark's own columns (gpqa, humaneval, mbpp, livecodebench); "": the source's
    )


@dataclass(frozen=True)
class Known:
    source: SourceConfig
    scorer: str
    layout: str = ""


def _hub(path: str, split: str, config: str = "", **kw: Any) -> SourceConfig:
    return SourceConfig(type="hf", path=path, split=split, config=config, **kw)


_MATH = {"columns": {"question": "problem", "expected_answer": "answer"}, "prompt_template": MATH_PROMPT}
KNOWN: dict[str, Known] = {
    "MATH-500": Known(_hub("HuggingFaceH4/MATH-500", "test", **_MATH), "math"),
    "AIME-2024": Known(_hub("HuggingFaceH4/aime_2024", "train", **_MATH), "math"),
    "AIME-2025": Known(_hub("MathArena/aime_2025", "train", **_MATH), "math"),
    "GPQA-Diamond": Known(_hub("Idavidrein/gpqa", "train", "gpqa_diamond", category="science"), "choice", "gpqa"),
    "HumanEval": Known(_hub("openai/openai_humaneval", "test", category="code"), "code", "humaneval"),
    "MBPP": Known(_hub("google-research-datasets/mbpp", "test", "full", category="code"), "code", "mbpp"),
    # A script dataset on the Hub: with datasets >= 4 point `source` at a parquet or jsonl copy (same columns).
    "LiveCodeBench": Known(
        _hub("livecodebench/code_generation_lite", "test", "release_v5", category="code"), "code", "livecodebench"
    ),
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_KEY = {_key(name): name for name in KNOWN}


def known_benchmark(name: str) -> Known | None:
    """The known benchmark called `name` (case, dashes and spaces ignored: `math500`, `aime_2024`), or None."""
    canonical = _BY_KEY.get(_key(name))
    return KNOWN[canonical] if canonical else None


@dataclass(frozen=True)
class Benchmark:
    """A benchmark resolved: the source to read, how to score it, and the row layout."""

    name: str
    source: SourceConfig
    scorer: str  # math | code | choice | auto (decided per prompt: code rows -> code, else math)
    layout: str


def resolve(config: BenchmarkConfig, limit: int = 0) -> Benchmark:
    """The benchmark to read: the config's source, or the known benchmark's; scorer and layout likewise."""
    known = known_benchmark(config.name)
    if config.source is None and known is None:
        raise ValueError(f"benchmark {config.name!r}: not a known benchmark ({', '.join(KNOWN)}); give its `source`")
    source = config.source or known.source  # type: ignore[union-attr]
    if limit and (not source.limit or source.limit > limit):
        source = replace(source, limit=limit)
    scorer = config.scorer if config.scorer != "auto" else (known.scorer if known else "auto")
    layout = config.layout or (known.layout if known else "")
    return Benchmark(config.name, source, scorer, layout)


# ---------------------------------------------------------------------------------------------- layouts


def gpqa_row(row: dict[str, Any]) -> dict[str, Any]:
    """GPQA (`Question`, `Correct Answer`, `Incorrect Answer 1-3`) as a lettered question with a gold letter."""
    question = _text(row, "Question")
    choices = [_text(row, "Correct Answer")] + [_text(row, f"Incorrect Answer {i}") for i in (1, 2, 3)]
    order = list(range(4))
    random.Random(content_hash("gpqa", question)).shuffle(order)  # the same order on every run
    letters = choice_letters(4)
    lines = "\n".join(f"{letters[i]}) {choices[j]}" for i, j in enumerate(order))
    return {
        "question": CHOICE_PROMPT.replace("{question}", f"{question}\n\n{lines}"),
        "expected_answer": letters[order.index(0)],
        "category": "science",
    }


def humaneval_row(row: dict[str, Any]) -> dict[str, Any]:
    """HumanEval (`prompt`, `test`, `entry_point`): the signature to complete, `check(candidate)` tests."""
    prompt = _text(row, "prompt")
    return {
        "question": HUMANEVAL_PROMPT.replace("{prompt}", prompt),
        "tests": {"entry_point": _text(row, "entry_point"), "test": _text(row, "test")},
        "category": "code",
    }


_CALLED = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def mbpp_row(row: dict[str, Any]) -> dict[str, Any]:
    """MBPP (`text`, `test_list`, `test_setup_code`, `code`): the asserts as a `check(candidate)` function; the
    entry point is the function the reference `code` defines that the asserts call."""
    text = _text(row, "text") if "text" in row else _text(row, "prompt")  # `full` or `sanitized` config
    asserts = row.get("test_list")
    if not isinstance(asserts, list) or not asserts or not all(isinstance(a, str) for a in asserts):
        raise ValueError("test_list: expected a non-empty list of assert statements")
    defined = re.findall(r"^def\s+([A-Za-z_]\w*)", str(row.get("code") or ""), re.MULTILINE)
    called = {name for a in asserts for name in _CALLED.findall(a)}
    entry = next((name for name in defined if name in called), None)
    if entry is None:
        raise ValueError("code: no function of the reference solution is called by test_list")
    setup = str(row.get("test_setup_code") or "").strip()
    body = [*setup.splitlines(), *asserts]
    test = "def check(candidate):\n" + "".join(f"    {line}\n" for line in body)
    return {
        "question": MBPP_PROMPT.replace("{text}", text).replace("{tests}", "\n".join(asserts)),
        "tests": {"entry_point": entry, "test": test},
        "category": "code",
    }


class _TextOnly(pickle.Unpickler):
    """An unpickler that builds no object at all: LiveCodeBench's private tests are a pickled string."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused: {module}.{name} (only plain strings are read)")


def lcb_cases(value: Any) -> list[dict[str, Any]]:
    """LiveCodeBench test cases: a JSON list, or base64(zlib(pickle(JSON))) as its private cases ship."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str) or not value.strip():
        return []
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raw = zlib.decompress(base64.b64decode(value.encode()))
        decoded = _TextOnly(io.BytesIO(raw)).load()
        return json.loads(decoded) if isinstance(decoded, str) else decoded


def livecodebench_row(row: dict[str, Any]) -> dict[str, Any]:
    """LiveCodeBench (`question_content`, `public_test_cases`, `private_test_cases`): stdin/stdout tests."""
    question = _text(row, "question_content")
    cases = []
    for column in ("public_test_cases", "private_test_cases"):
        try:
            cases += lcb_cases(row.get(column))
        except (ValueError, zlib.error, pickle.UnpicklingError, EOFError) as exc:
            raise ValueError(f"{column}: cannot decode ({exc})") from None
    if any(case.get("testtype") == "functional" for case in cases):
        raise ValueError("public_test_cases: call-based (LeetCode) tests are not supported; only stdin/stdout")
    if not cases:
        raise ValueError("public_test_cases: no test cases")
    return {
        "question": LCB_PROMPT.replace("{question}", question),
        "tests": {"stdio": [{"input": str(c["input"]), "output": str(c["output"])} for c in cases]},
        "category": "code",
    }


LAYOUTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "gpqa": gpqa_row,
    "humaneval": humaneval_row,
    "mbpp": mbpp_row,
    "livecodebench": livecodebench_row,
}


def _text(row: dict[str, Any], column: str) -> str:
    if column not in row:
        raise KeyError(column)
    value = row[column]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{column}: expected a non-empty string")
    return value.strip()


def _raw_rows(source: SourceConfig) -> Iterator[RowRead]:
    if source.type == "hf":
        from thinktoggle.generators.sources import _hf_rows  # the one Hub / saved-dataset row reader

        return _hf_rows(source)
    if source.type == "file":
        return iter_rows([source.path])
    raise ValueError(f"a benchmark layout reads file or hf sources, not {source.type!r}")


def iter_benchmark(benchmark: Benchmark) -> Iterator[SourceItem]:
    """(where, prompt record) for every row of the benchmark, or (the error, None) naming file:line and field."""
    if not benchmark.layout:
        yield from iter_source(benchmark.source)
        return
    adapt = LAYOUTS[benchmark.layout]
    plain = replace(benchmark.source, columns={}, prompt_template="")  # the layout wrote the standard columns
    taken = 0
    for read in _raw_rows(benchmark.source):
        if read.error is not None:
            yield read, None
            continue
        try:
            record = row_to_prompt(adapt(read.row or {}), plain)
        except KeyError as exc:
            yield RowRead(read.file, read.line, error="missing column", field=str(exc.args[0])), None
            continue
        except ValueError as exc:
            what, _, why = str(exc).partition(": ")
            yield RowRead(read.file, read.line, error=why or what, field=what if why else "(row)"), None
            continue
        if benchmark.source.limit and taken >= benchmark.source.limit:
            return
        taken += 1
        yield read, record
