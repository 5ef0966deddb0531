"""Prompt sources: where the generator's prompts come from, as Records with output "".

- `file`: jsonl / parquet files (or folders), a column mapping naming the question, expected answer, tests;
  unmapped, the question is the first of `question`, `prompt`, `problem`, else chat turns in `input` or
  `messages` (published rows, prompt records, chat datasets: system turns and a trailing answer left out).
- `hf`: a Hugging Face dataset through `schemas.hub.load_hub_dataset` (any split and config; failures are one
  HubError naming the dataset and the cause), or a folder written by `save_to_disk`, with the same column mapping.
- `published`: Llama-Nemotron published rows (or internal records): their `input` is reused, output ignored.
- `procedural`: a built-in task of `procedural.py` (`path` is the task name, `params` its parameters).

Rows that cannot be used come back as errors naming file, line and field; they are never silently skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from thinktoggle.schemas.hub import load_hub_dataset
from thinktoggle.schemas.io import RowRead, is_saved_hf_dataset, iter_records, iter_rows
from thinktoggle.schemas.record import CATEGORIES, Record

SourceType = Literal["file", "hf", "published", "procedural"]
DEFAULT_COLUMNS = {"question": "question", "expected_answer": "expected_answer", "tests": "tests"}
QUESTION_COLUMNS = ("question", "prompt", "problem")  # tried in order unless `columns` names the question's
CHAT_COLUMNS = ("input", "messages")  # chat turns, read when no question column is there


@dataclass(frozen=True)
class SourceConfig:
    """One prompt source (a recipe's `sources:` entry)."""

    type: SourceType = "file"
    path: str = ""  # file/folder, dataset id or local dataset folder, or the procedural task name
    split: str = "train"  # hf split; procedural: train | heldout
    config: str = ""  # hf config name
    columns: dict[str, str] = field(default_factory=dict)  # question / expected_answer / tests / category -> column
    category: str = "math"  # used when no category column is mapped
    license: str = "cc-by-4.0"
    limit: int = 0  # 0: every row
    seed: int = 0  # procedural draws
    params: dict[str, Any] = field(default_factory=dict)  # procedural task parameters
    # The user turn built from the question column: "{question}" stands for it, e.g. the published math
    # prompts' "Solve the following math problem. ... inside \\boxed{}.\n\n{question}". "": the question as is.
    prompt_template: str = ""

    def __post_init__(self) -> None:
        if self.type not in ("file", "hf", "published", "procedural"):
            raise ValueError(f"source type must be file, hf, published or procedural, got {self.type!r}")
        if not self.path:
            raise ValueError(f"{self.type} source: `path` is required")
        if self.category not in CATEGORIES:
            raise ValueError(f"source category must be one of {CATEGORIES}, got {self.category!r}")
        if self.prompt_template and "{question}" not in self.prompt_template:
            raise ValueError("prompt_template: must contain {question}")


SourceItem = tuple[RowRead, Record | None]  # (where, record) or (the error, None)


def stdio_from_lists(tests: dict[str, Any]) -> dict[str, Any]:
    """The Hub's list-of-cases layouts as `{stdio: [...]}`: TACO/APPS `input_output` ({inputs, outputs}) and
    CodeContests `public_tests` ({input, output}). Call-based cases (`fn_name`) have no stdin: refused."""
    for ins, outs in (("inputs", "outputs"), ("input", "output")):
        if isinstance(tests.get(ins), list) and isinstance(tests.get(outs), list):
            if tests.get("fn_name"):
                raise ValueError("call-based tests (fn_name) are not supported; only stdin/stdout cases")
            if len(tests[ins]) != len(tests[outs]):
                raise ValueError(f"{len(tests[ins])} {ins} but {len(tests[outs])} {outs}")
            cases = [{"input": str(i), "output": str(o)} for i, o in zip(tests[ins], tests[outs], strict=True)]
            return {"stdio": cases} if cases else {}
    return tests


def _parse_tests(value: Any) -> dict[str, Any] | None:
    from jsonschema import Draft202012Validator

    from thinktoggle.schemas.convert import clean_tests
    from thinktoggle.schemas.published import TESTS_SCHEMA

    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, list):  # a bare list of {input, output} cases, as some code sets ship them
        value = {"stdio": value}
    if not isinstance(value, dict):
        raise ValueError(f"expected an object or a list of cases, got {type(value).__name__}")
    value = clean_tests(stdio_from_lists(value))
    if value is None:
        return None
    errors = list(Draft202012Validator(TESTS_SCHEMA).iter_errors(value))
    if errors:
        raise ValueError("tests must be {entry_point, test} or {stdio: [{input, output}, ...]}")
    return value


def _prompt_turns(turns: list[Any], column: str) -> list[dict[str, str]]:
    """Chat turns as a prompt: system turns left out (each mode brings its own), a trailing answer too."""
    messages = []
    for turn in turns:
        if not (isinstance(turn, dict) and isinstance(turn.get("role"), str) and isinstance(turn.get("content"), str)):
            raise ValueError(f"{column}: expected chat turns [{{role, content}}, ...]")
        if turn["role"] != "system":
            messages.append({"role": turn["role"], "content": turn["content"]})
    while messages and messages[-1]["role"] == "assistant":
        messages.pop()
    if not any(m["role"] == "user" for m in messages):
        raise ValueError(f"{column}: no user turn")
    return messages


def row_to_prompt(row: dict[str, Any], config: SourceConfig) -> Record:
    """A prompt record from one row, by the column mapping. Raises KeyError/ValueError naming the field."""
    columns = {**DEFAULT_COLUMNS, **config.columns}
    category = row.get(columns["category"]) if "category" in columns else None
    category = category or config.category
    if category not in CATEGORIES:
        raise ValueError(f"category: {category!r} is not one of {CATEGORIES}")
    candidates = (config.columns["question"],) if "question" in config.columns else QUESTION_COLUMNS
    question_col = next((c for c in candidates if c in row), None)
    if question_col is not None and not isinstance(row[question_col], list):
        question = row[question_col]
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"{question_col}: expected a non-empty string")
        if config.prompt_template:
            question = config.prompt_template.replace("{question}", question)
        messages = [{"role": "user", "content": question}]
    else:  # chat turns: a list in the question column (a conversational prompt), or `input` / `messages`
        chat_col = question_col or next((c for c in CHAT_COLUMNS if isinstance(row.get(c), list)), None)
        if chat_col is None:
            raise KeyError(candidates[0])
        messages = _prompt_turns(row[chat_col], chat_col)
    expected = row.get(columns["expected_answer"])
    try:
        tests = _parse_tests(row.get(columns["tests"]))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{columns['tests']}: {exc}") from None
    return Record(
        input=messages,
        category=category,
        reasoning="on",
        expected_answer=None if expected is None else str(expected),
        tests=tests,
        license=row.get("license") or config.license,
    )


def _rows_to_prompts(rows: Iterator[RowRead], config: SourceConfig) -> Iterator[SourceItem]:
    for read in rows:
        if read.error is not None:
            yield read, None
            continue
        assert read.row is not None
        try:
            yield read, row_to_prompt(read.row, config)
        except KeyError as exc:
            yield RowRead(read.file, read.line, error="missing column", field=str(exc.args[0])), None
        except ValueError as exc:
            what, _, why = str(exc).partition(": ")
            yield RowRead(read.file, read.line, error=why or what, field=what if why else "(row)"), None


def _hf_rows(config: SourceConfig) -> Iterator[RowRead]:
    """Rows of a Hub dataset (or a local dataset folder) through `datasets`."""
    import datasets

    path = Path(config.path)
    if is_saved_hf_dataset(path) or (path / "dataset_dict.json").exists():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if config.split not in loaded:
                raise ValueError(f"{path}: no split {config.split!r} (has {sorted(loaded)})")
            loaded = loaded[config.split]
    else:
        loaded = load_hub_dataset(config.path, config.config or None, split=config.split)
    name = f"{config.path}[{config.split}]"
    for i, row in enumerate(loaded, start=1):
        yield RowRead(name, i, row=dict(row))


def iter_source(config: SourceConfig) -> Iterator[SourceItem]:
    """(where, prompt record) for every row of a source, or (error, None) for rows that cannot be used."""
    if config.type == "procedural":
        from thinktoggle.generators.procedural import procedural_records

        if config.limit <= 0:
            raise ValueError("procedural source: `limit` (how many prompts to draw) must be > 0")
        records = procedural_records(config.path, config.limit, seed=config.seed, split=config.split, **config.params)
        for i, record in enumerate(records, start=1):
            yield RowRead(f"procedural/{config.path}", i), record
        return
    if config.type == "published":
        items: Iterator[SourceItem] = (
            (read, as_prompt(record) if record is not None else None) for read, record in iter_records([config.path])
        )
    elif config.type == "hf":
        items = _rows_to_prompts(_hf_rows(config), config)
    else:
        items = _rows_to_prompts(iter_rows([config.path]), config)
    taken = 0
    for read, record in items:
        if record is not None:
            if config.limit and taken >= config.limit:
                return
            taken += 1
        yield read, record


def as_prompt(record: Record) -> Record:
    """The prompt of an answered record: same input, category, answer key, tests, license and metadata."""
    return Record(
        input=record.input,
        category=record.category,
        reasoning="on",
        expected_answer=record.expected_answer,
        tests=record.tests,
        license=record.license,
        metadata=record.metadata,
    )


def load_prompts(configs: list[SourceConfig]) -> tuple[list[Record], list[RowRead]]:
    """Every prompt of every source (first occurrence of each pair id wins), and the rows that failed."""
    prompts: dict[str, Record] = {}
    errors: list[RowRead] = []
    for config in configs:
        for read, record in iter_source(config):
            if record is None:
                errors.append(read)
            else:
                prompts.setdefault(record.pair_id, record)
    return list(prompts.values()), errors


def write_prompts(records: list[Record], path: str | Path) -> Path:
    """Prompt records as internal-record parquet (what `thinktoggle generate --prompts` reads)."""
    import pyarrow as pa

    from thinktoggle.schemas.arrow import RECORD_SCHEMA
    from thinktoggle.schemas.convert import record_to_arrow_row
    from thinktoggle.schemas.io import atomic_write_parquet

    table = pa.Table.from_pylist([record_to_arrow_row(r) for r in records], schema=RECORD_SCHEMA)
    return atomic_write_parquet(table, path)
