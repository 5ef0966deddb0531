"""Write N synthetic published rows (v1.1 layout) as parquet shards, streaming: memory does not grow with N.

    .venv/bin/python bench/make_synthetic_rows.py --out /tmp/rows --rows 1000000 [--rows-per-file 100000]

The rows are what the filter and export stages see in a real run: prompts answered in both modes, math rows
with a gold answer (right or wrong), chat and science rows, a few mode-breaking outputs (an off answer that
thinks, an unclosed think block) and a few repetitive ones, so that every cheap filter keeps some rows and
drops others. Code rows are left out by default (`--code-share`): a sandbox run per row is measured in
bench/filters_code.py, not here. Every row is checked against the published JSON Schema when `--check` is given.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from thinktoggle.schemas.arrow import PUBLISHED_SCHEMA
from thinktoggle.schemas.think import SYSTEM_PROMPT_OFF, SYSTEM_PROMPT_ON, compose_output

WORDS = [
    "the",
    "of",
    "a",
    "model",
    "answer",
    "proof",
    "step",
    "value",
    "sum",
    "integer",
    "prime",
    "even",
    "odd",
    "factor",
    "root",
    "area",
    "angle",
    "ratio",
]


def _prose(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def synthetic_row(index: int, rng: random.Random, code_share: float = 0.0) -> dict[str, Any]:
    """Row `index`: the on and off answers of a prompt are neighbours (index // 2 is the prompt)."""
    prompt_no, mode = divmod(index, 2)
    reasoning = "on" if mode == 0 else "off"
    draw = rng.random()
    a, b = prompt_no % 997 + 2, prompt_no % 89 + 3
    row: dict[str, Any] = {
        "license": "cc-by-4.0",
        "reasoning": reasoning,
        "generator": "synthetic-teacher",
        "used_in_training": "bench",
        "version": "v1.1",
        "system_prompt": SYSTEM_PROMPT_ON if reasoning == "on" else SYSTEM_PROMPT_OFF,
        "expected_answer": None,
        "tests": None,
    }
    if draw < code_share:
        row["category"] = "code"
        question = f"Write add(a, b) returning a + b. Case {prompt_no}."
        answer = "```python\ndef add(a, b):\n    return a + b\n```"
        row["tests"] = {
            "entry_point": "add",
            "test": f"def check(f):\n    assert f({a}, {b}) == {a + b}",
            "stdio": None,
        }
    elif draw < code_share + 0.4:
        row["category"] = "math"
        question = f"What is {a} * {b} + {prompt_no}? Put the final answer in \\boxed{{}}."
        right = a * b + prompt_no
        given = right if rng.random() < 0.8 else right + 1  # some wrong answers: the math filter drops them
        answer = f"The result is \\boxed{{{given}}}."
        row["expected_answer"] = str(right)
    else:
        row["category"] = "chat" if draw < 0.8 else "science"
        question = f"Explain {_prose(rng, 6)} (question {prompt_no})."
        answer = _prose(rng, rng.randint(20, 120))
    reasoning_text = f"Let me work it out. {_prose(rng, rng.randint(10, 60))}"
    if reasoning == "on":
        output = compose_output(reasoning_text, answer)
        if rng.random() < 0.02:
            output = f"<think>\n{reasoning_text}\n\n{answer}"  # unclosed think block: format drops it
    else:
        output = answer if rng.random() >= 0.02 else compose_output(reasoning_text, answer)  # off that thinks
    if rng.random() < 0.01:
        output = output + (" loop again" * 400)  # repetitive tail: the repetition filter drops it
    row["input"] = [{"role": "user", "content": question}]
    row["output"] = output
    return row


def iter_synthetic_rows(n: int, seed: int = 0, code_share: float = 0.0) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for index in range(n):
        yield synthetic_row(index, rng, code_share)


def write_synthetic_rows(
    out_dir: Path, n: int, rows_per_file: int = 100_000, seed: int = 0, code_share: float = 0.0, check: bool = False
) -> list[Path]:
    """Stream `n` rows into `out_dir/rows-00000.parquet`, ... (at most `rows_per_file` each; batches of 5,000)."""
    from thinktoggle.schemas.published import row_problems

    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    writer: pq.ParquetWriter | None = None
    batch: list[dict[str, Any]] = []
    in_file = 0

    def flush() -> None:
        nonlocal batch
        if batch and writer is not None:
            writer.write_table(pa.Table.from_pylist(batch, schema=PUBLISHED_SCHEMA))
        batch = []

    for index, row in enumerate(iter_synthetic_rows(n, seed, code_share)):
        if check and (problems := list(row_problems(row))):
            raise ValueError(f"synthetic row {index}: {problems[0].field}: {problems[0].reason}")
        if writer is None or in_file >= rows_per_file:
            flush()
            if writer is not None:
                writer.close()
            files.append(out_dir / f"rows-{len(files):05d}.parquet")
            writer, in_file = pq.ParquetWriter(files[-1], PUBLISHED_SCHEMA), 0
        batch.append(row)
        in_file += 1
        if len(batch) >= 5_000:
            flush()
    flush()
    if writer is not None:
        writer.close()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-file", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--code-share", type=float, default=0.0, help="share of code rows (sandboxed by the filter)")
    parser.add_argument("--check", action="store_true", help="validate every row against the published schema")
    args = parser.parse_args(argv)
    files = write_synthetic_rows(args.out, args.rows, args.rows_per_file, args.seed, args.code_share, args.check)
    print(f"wrote {args.rows} rows in {len(files)} file(s) to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
