"""Published-row validation (rows/s) against the anchor, the plain jsonschema validator, on the same rows.

    .venv/bin/python bench/schemas_validate.py [--rows 20000]

`row_problems` answers most rows with a conservative fast path and falls back to jsonschema for anything
unusual; the anchor validates every row with `Draft202012Validator.iter_errors`. Both must agree on every row.
The mix is what ingest sees: mostly plain valid rows, some code rows with tests, a few invalid rows.
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from thinktoggle.schemas.published import row_problems, validator


def make_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        row = {
            "input": [{"role": "user", "content": f"What is {i} + {i}? " + "x" * 200}],
            "output": f"<think>\n{i} + {i} = {2 * i}\n</think>\n\n{2 * i}",
            "category": "math",
            "license": "cc-by-4.0",
            "reasoning": "on",
            "generator": "DeepSeek-R1, Qwen-2.5-Math-7B-Instruct",
            "used_in_training": "Ultra, Super, Nano",
            "version": "v1.1",
            "system_prompt": "detailed thinking on",
            "expected_answer": str(2 * i),
            "tests": None,
        }
        if i % 10 == 0:  # a code row with functional tests: always the full validator
            row.update(category="code", tests={"entry_point": "f", "test": "def check(c): pass"})
        if i % 50 == 0:  # an invalid row
            row["category"] = "biology"
        rows.append(row)
    return rows


def timed(fn, rows: list[dict]) -> tuple[float, list[bool]]:
    start = time.perf_counter()
    verdicts = [fn(row) for row in rows]
    return time.perf_counter() - start, verdicts


def main(rows: int = 20_000) -> dict[str, float]:
    data = make_rows(rows)
    anchor = validator()
    list(row_problems(data[0]))  # build the validator before timing
    ours_s, ours = timed(lambda r: not any(True for _ in row_problems(r)), data)
    anchor_s, theirs = timed(lambda r: not any(True for _ in anchor.iter_errors(r)), data)
    assert ours == theirs, "row_problems and jsonschema disagree"
    return {"rows": rows, "ours_rows_s": rows / ours_s, "anchor_rows_s": rows / anchor_s, "speedup": anchor_s / ours_s}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    figures = main(parser.parse_args().rows)
    table = Table(title=f"published-row validation, {figures['rows']} rows")
    for column in ("row_problems rows/s", "jsonschema rows/s", "ratio"):
        table.add_column(column, justify="right")
    table.add_row(f"{figures['ours_rows_s']:,.0f}", f"{figures['anchor_rows_s']:,.0f}", f"{figures['speedup']:.1f}x")
    Console().print(table)
