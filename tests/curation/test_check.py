"""`thinktoggle check`: one `file:line: field: reason` line per problem, a summary, and the exit status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from thinktoggle.cli.main import app
from thinktoggle.curation.check import check_paths
from thinktoggle.schemas.arrow import PUBLISHED_SCHEMA

ROW = {
    "input": [{"role": "user", "content": "What is 6 * 7?"}],
    "output": "<think>\n6 * 7 = 42\n</think>\n\n42",
    "category": "math",
    "license": "cc-by-4.0",
    "reasoning": "on",
    "generator": "DeepSeek-R1",
    "used_in_training": "Nano",
    "version": "v1.1",
    "system_prompt": "detailed thinking on",
}
PROBLEM_LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+): (?P<field>[^:]+): (?P<reason>.+)$")
SUMMARY = re.compile(r"^(\d+) rows, (\d+) valid, (\d+) invalid$")

runner = CliRunner()


def run_check(*paths: Path):
    result = runner.invoke(app, ["check", *map(str, paths)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def problems(output: str) -> list[tuple[str, int, str, str]]:
    found = []
    for line in output.splitlines():
        if match := PROBLEM_LINE.match(line):
            found.append((match["file"], int(match["line"]), match["field"], match["reason"]))
    return found


def summary(output: str) -> tuple[int, int, int]:
    match = SUMMARY.match(output.strip().splitlines()[-1])
    assert match, output
    return tuple(map(int, match.groups()))


def write_jsonl(path: Path, *rows: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_valid_files_exit_0_with_a_summary(tmp_path):
    rows = [ROW, {**ROW, "reasoning": "off", "system_prompt": "detailed thinking off", "output": "42"}]
    jsonl = write_jsonl(tmp_path / "rows.jsonl", *rows)
    parquet = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=PUBLISHED_SCHEMA), parquet)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    for paths, n in [((jsonl,), 2), ((parquet,), 2), ((tmp_path / "saved",), 2), ((tmp_path,), 6)]:
        result = run_check(*paths)
        assert result.exit_code == 0, result.output
        assert result.output.strip() == f"{n} rows, {n} valid, 0 invalid"


def test_malformed_jsonl_gets_one_line_per_problem(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [
        json.dumps(ROW),  # 1 valid
        json.dumps({**ROW, "category": "biology", "license": ""}),  # 2 two problems
        "",  # 3 blank: allowed
        "{not json",  # 4
        json.dumps({**ROW, "reasoning": "off"}),  # 5 disagrees with the system prompt
        json.dumps({**ROW, "colour": "blue"}),  # 6
        '{"input": "\xff"}',  # 7 bad UTF-8 (see _encode)
        json.dumps(ROW)[:40],  # 8 truncated last line
    ]
    path.write_bytes(_encode(lines))
    result = run_check(path)
    assert result.exit_code == 1
    got = {(line, field) for file, line, field, _ in problems(result.output) if file == str(path)}
    assert got == {
        (2, "category"),
        (2, "license"),
        (4, "(row)"),
        (5, "reasoning"),
        (6, "colour"),
        (7, "(row)"),
        (8, "(row)"),
    }
    reasons = {line: reason for _, line, _, reason in problems(result.output)}
    assert "malformed JSON" in reasons[4] and "invalid UTF-8" in reasons[7] and "truncated last line" in reasons[8]
    assert "disagrees with system_prompt" in reasons[5] and "unknown column" in reasons[6]
    assert summary(result.output) == (7, 1, 6)
    assert len(result.output.strip().splitlines()) == 8  # 7 problem lines + the summary, nothing else


def _encode(lines: list[str]) -> bytes:
    """UTF-8, except line 7, which holds a lone 0xff byte."""
    return b"\n".join(line.encode("latin-1") if i == 6 else line.encode() for i, line in enumerate(lines))


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"\n\n", "empty file"), (b"[1, 2]\n", "expected a JSON object, got list")],
    ids=["empty", "blank-lines", "not-an-object"],
)
def test_unreadable_files_get_a_line_too(tmp_path, content, reason):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    result = run_check(path)
    assert result.exit_code == 1
    ((file, line, field, got),) = problems(result.output)
    assert (file, line, field) == (str(path), 1, "(row)") and reason in got
    assert summary(result.output) == (1, 0, 1)


def test_parquet_rows_are_numbered_from_1(tmp_path):
    rows = [ROW, ROW, {**ROW, "input": [{"role": "assistant", "content": "hi"}]}, {**ROW, "generator": "A,,B"}]
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=PUBLISHED_SCHEMA), path)
    result = run_check(path)
    assert result.exit_code == 1
    assert [(line, field) for _, line, field, _ in problems(result.output)] == [(3, "input"), (4, "generator")]
    assert summary(result.output) == (4, 2, 2)


def test_bad_paths_fail_cleanly(tmp_path):
    missing = run_check(tmp_path / "missing.jsonl")
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
    (tmp_path / "data.csv").write_text("a\n")
    unknown = run_check(tmp_path / "data.csv")
    assert unknown.exit_code == 2 and "unknown format" in unknown.output
    (tmp_path / "empty").mkdir()
    empty = run_check(tmp_path / "empty")
    assert empty.exit_code == 1 and "no data files" in empty.output and summary(empty.output) == (0, 0, 0)


def test_check_paths_keeps_a_bounded_list_of_problems(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", *({**ROW, "category": "x"} for _ in range(30)))
    seen: list[str] = []
    result = check_paths([path], report=seen.append, keep_problems=5)
    assert (result.rows, result.valid, result.invalid) == (30, 0, 30)
    assert len(seen) == 30 and result.problems == seen[:5]
    assert result.line() == "30 rows, 0 valid, 30 invalid"


def test_the_console_script(tmp_path):
    """The installed `thinktoggle` entry point, in its own process: exit codes and output as a user sees them."""
    good = write_jsonl(tmp_path / "good.jsonl", ROW, ROW)
    bad = write_jsonl(tmp_path / "bad.jsonl", ROW, {**ROW, "version": ""})
    script = str(Path(sys.executable).parent / "thinktoggle")
    ok = subprocess.run([script, "check", str(good)], capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stdout.strip(), ok.stderr) == (0, "2 rows, 2 valid, 0 invalid", "")
    failed = subprocess.run([script, "check", str(good), str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stdout.splitlines() == [f"{bad}:2: version: '' should be non-empty", "4 rows, 3 valid, 1 invalid"]
