"""Bad input at every door: the same set of broken files through check, ingest, generate's prompt inputs and
sources, filter and the trainer's reader. Each broken row is reported with its file, line/row and field (or
counted as failed with that reason), never as a traceback, and never dropped silently: the counts add up.

The broken files (one fixture, shared by every entry point):
    malformed.jsonl      2 good rows; line 2 cut JSON; line 4 a JSON list, not an object
    bad_utf8.jsonl       1 good row; line 2 invalid UTF-8
    wrong_types.jsonl    1 good row; line 2 `reasoning: 5`; line 3 `input: "a string"`
    missing.jsonl        line 1 without `output` and `category`
    empty.jsonl          no bytes at all
    huge.jsonl           1 good row; line 2 longer than the reader's line limit (64 MiB)
    wrong_schema.parquet 2 rows of columns {a, b}
    truncated.parquet    the first half of a valid parquet file
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reliability_helpers import load_test_module, run_cli

from thinktoggle.schemas.io import MAX_LINE_BYTES

GOOD, BAD = "good", "bad"
# file -> (good rows, [(line, field or None) of each bad row])
EXPECTED: dict[str, tuple[int, list[tuple[int, str | None]]]] = {
    "malformed.jsonl": (2, [(2, None), (4, None)]),
    "bad_utf8.jsonl": (1, [(2, None)]),
    "wrong_types.jsonl": (1, [(2, "reasoning"), (3, "input")]),
    "missing.jsonl": (0, [(1, "output")]),
    "empty.jsonl": (0, [(1, None)]),
    "huge.jsonl": (1, [(2, None)]),
    "wrong_schema.parquet": (0, [(1, None), (2, None)]),
    "truncated.parquet": (0, [(1, None)]),
}
N_GOOD = sum(g for g, _ in EXPECTED.values())
N_BAD = sum(len(b) for _, b in EXPECTED.values())


def good_row(k: int) -> dict:
    rows = load_test_module("tests/schemas/published_rows.py", "schemas_published_rows")
    row = copy.deepcopy(rows.VALID_ROW)
    row["input"] = [{"role": "user", "content": f"What is {k} + 3 * 4? Put the final answer in \\boxed{{}}."}]
    row["output"] = f"<think>\n3 * 4 = 12, {k} + 12 = {k + 12}\n</think>\n\n\\boxed{{{k + 12}}}"
    row["expected_answer"] = str(k + 12)
    return row


def line(row) -> bytes:
    return json.dumps(row).encode() + b"\n"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    k = iter(range(1000))
    (folder / "malformed.jsonl").write_bytes(
        line(good_row(next(k)))
        + b'{"input": [{"role": "user", "content": "cut\n'
        + line(good_row(next(k)))
        + b"[1, 2]\n"
    )
    (folder / "bad_utf8.jsonl").write_bytes(line(good_row(next(k))) + b'{"output": "\xff\xfe broken"}\n')
    (folder / "wrong_types.jsonl").write_bytes(
        line(good_row(next(k)))
        + line({**good_row(next(k)), "reasoning": 5})
        + line({**good_row(next(k)), "input": "x"})
    )
    missing = good_row(next(k))
    del missing["output"], missing["category"]
    (folder / "missing.jsonl").write_bytes(line(missing))
    (folder / "empty.jsonl").write_bytes(b"")
    with (folder / "huge.jsonl").open("wb") as handle:
        handle.write(line(good_row(next(k))))
        handle.write(b'{"output": "' + b"x" * (MAX_LINE_BYTES + 16) + b'"}\n')
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), folder / "wrong_schema.parquet")
    whole = folder / ".whole.parquet"
    pq.write_table(pa.Table.from_pylist([good_row(next(k)) for _ in range(3)]), whole)
    (folder / "truncated.parquet").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return folder


def assert_no_traceback(done) -> None:
    assert "Traceback" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]


def assert_each_bad_row_named(text: str, folder: Path) -> None:
    """Every bad row appears as `file:line` (with its field where one is to blame) in `text`."""
    for name, (_, bad) in EXPECTED.items():
        for number, field in bad:
            where = f"{folder / name}:{number}"
            assert where in text, f"{where} not reported"
            if field:
                lines = [s for s in text.splitlines() if where in s]
                assert any(field in s for s in lines), f"{where}: field {field} not named in {lines}"


def test_check_names_every_bad_row_and_counts_add_up(bad_files):
    done = run_cli("check", str(bad_files), timeout=120)
    assert_no_traceback(done)
    assert done.returncode == 1
    assert f"{N_GOOD + N_BAD} rows, {N_GOOD} valid, {N_BAD} invalid" in done.stdout
    assert_each_bad_row_named(done.stdout, bad_files)


def test_ingest_rejects_with_reasons_and_counts_add_up(bad_files, tmp_path):
    done = run_cli("ingest", str(bad_files), "--out", str(tmp_path / "ingested"), timeout=120)
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{N_GOOD + N_BAD} rows, {N_GOOD} written, 0 skipped, {N_BAD} rejected" in done.stdout
    assert_each_bad_row_named(done.stdout, bad_files)
    written = sum(pq.read_table(p).num_rows for p in (tmp_path / "ingested" / "kept").glob("*.parquet"))
    assert written == N_GOOD


def test_generate_prompt_inputs_reject_with_reasons_and_counts_add_up(bad_files, tmp_path):
    out = tmp_path / "gen"
    done = run_cli(
        "generate", "--out", str(out), "--prompts", str(bad_files), "--engine-kind", "procedural", "--no-progress"
    )
    assert_no_traceback(done)
    assert done.returncode == 1, done.stderr[-2000:]  # 1: every answer failed (these prompts are not procedural)
    # --prompts are read as a recipe's `sources:` would read them, into the hidden out/.sources/
    sources = json.loads((out / ".sources" / "stats.json").read_text())
    assert (sources["in"], sources["kept"], sources["failed"]) == (N_GOOD + N_BAD, N_GOOD, N_BAD)
    assert f"sources: in {N_GOOD + N_BAD}, kept {N_GOOD}, dropped 0, failed {N_BAD}" in done.stdout
    failed = [r for p in (out / ".sources" / "failed").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert len(failed) == N_BAD
    assert_each_bad_row_named("\n".join(f"{r['source']}: {r['detail']}" for r in failed), bad_files)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["in"] == N_GOOD * 2 == stats["kept"] + stats["dropped"] + stats["failed"]
    assert stats["failed_reasons"] == {"not_procedural": N_GOOD * 2}
    assert f"generate: in {N_GOOD * 2}, kept 0, dropped 0, failed {N_GOOD * 2}" in done.stdout


def test_file_source_names_the_row_and_column(tmp_path):
    from thinktoggle.generators.sources import SourceConfig, iter_source

    path = tmp_path / "questions.jsonl"
    path.write_text(
        json.dumps({"question": "What is 2 + 2?", "expected_answer": "4"})
        + "\n"
        + json.dumps({"query": "no question column"})
        + "\n"
        + json.dumps({"question": 17})
        + "\n{not json\n"
    )
    items = list(iter_source(SourceConfig(type="file", path=str(path))))
    assert len(items) == 4  # one per row: nothing dropped
    good = [r for _, r in items if r is not None]
    errors = [read for read, r in items if r is None]
    assert len(good) == 1 and len(errors) == 3
    assert [e.line for e in errors] == [2, 3, 4] and all(e.file == str(path) for e in errors)
    assert errors[0].field == "question" and errors[1].field == "question"


def test_filter_fails_unreadable_rows_with_their_source_and_counts_add_up(bad_files, tmp_path):
    out = tmp_path / "filter"
    done = run_cli("filter", str(bad_files), "--out", str(out), "--only", "format,math", timeout=180)
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["in"] == N_GOOD + N_BAD == stats["kept"] + stats["dropped"] + stats["failed"]
    assert stats["failed_reasons"].get("unreadable_row") == N_BAD
    failed = [r for p in (out / "failed").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    unreadable = [r for r in failed if r["reason"] == "unreadable_row"]
    assert len(unreadable) == N_BAD
    assert_each_bad_row_named("\n".join(f"{r['source']}: {r['detail']}" for r in unreadable), bad_files)


def test_trainer_reader_fails_bad_rows_with_reasons_and_counts_add_up(bad_files, tmp_path):
    data = pytest.importorskip("thinktoggle.training.data")
    from thinktoggle.core.outputs import StageOutputs

    with StageOutputs(tmp_path, "train", write_kept=False) as outputs:
        records = list(data.usable_records([bad_files], outputs))
        for record, _ in records:
            outputs.keep(record)  # the trainer keeps them later (after tokenising); the identity then holds
    stats = outputs.stats
    assert len(records) == N_GOOD
    assert stats.n_in == N_GOOD + N_BAD and stats.n_failed == N_BAD and stats.kept == N_GOOD
    failed = pq.read_table(tmp_path / "failed").to_pylist()
    assert_each_bad_row_named("\n".join(f"{r['source']}: {r['detail']}" for r in failed), bad_files)


def test_recipe_with_typos_is_refused_with_lines_and_no_traceback(tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(
        "name: typo\nout_dir: out\nsources:\n  - {type: procedural, path: arithmetic, limt: 4}\n"
        "generate:\n  engine: {kind: procedurl}\n  shard_size: many\nfilterr: {}\n"
    )
    done = run_cli("run", str(recipe), "--dry-run", timeout=60)
    assert_no_traceback(done)
    assert done.returncode != 0
    text = done.stdout + done.stderr
    for where, key in ((4, "limt"), (6, "generate.engine"), (7, "generate.shard_size"), (8, "filterr")):
        assert any(f"{recipe}:{where}" in s and key in s for s in text.splitlines()), (where, key, text[-2000:])


def test_a_recipe_whose_hub_source_cannot_be_read_stops_with_one_line(tmp_path, monkeypatch):
    # Offline is real here (HF_HUB_OFFLINE=1, an empty cache): no mock.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    recipe = tmp_path / "hub.yaml"
    recipe.write_text(
        f"name: hub\nout_dir: {tmp_path / 'run'}\n"
        "sources:\n  - {type: hf, path: nvidia/not-a-dataset, split: train, columns: {question: problem}}\n"
        "generate: {engine: {kind: procedural}}\n"
    )
    done = run_cli("run", str(recipe), timeout=120)
    assert_no_traceback(done)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nvidia/not-a-dataset" in errors[0] and "offline" in errors[0], done.stderr
