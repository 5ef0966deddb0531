"""Export: the published layout loads with `datasets` and polars with the published names and types, passes
`thinktoggle check`, and accounts for every record."""

from __future__ import annotations

import json

import polars as pl
import pyarrow.parquet as pq
import pytest
from _curation_fixtures import pair, write_records

from thinktoggle.core.executors import ExecutorConfig
from thinktoggle.core.stats import StageStats
from thinktoggle.curation.check import check_paths
from thinktoggle.curation.export import ExportConfig, run_export
from thinktoggle.schemas.arrow import PUBLISHED_SCHEMA
from thinktoggle.schemas.published import PUBLISHED_COLUMNS
from thinktoggle.schemas.record import Verdict


def exported_records():
    records = []
    for i in range(6):
        for record in pair(f"What is {i} + {i}?", category="math", answer=f"\\boxed{{{2 * i}}}"):
            record.expected_answer = str(2 * i)
            record.sampling = {"engine": "procedural", "teacher": "arith-teacher"}
            record.verdicts = [Verdict("math", "pass", "")]
            records.append(record)
    for i in range(3):
        for record in pair(f"Write add{i}(a, b).", category="code", answer="def f(a, b):\n    return a + b"):
            record.tests = {"entry_point": "f", "test": "def check(c):\n    assert c(1, 2) == 3"}
            records.append(record)
    records += pair("Say hello in French.", category="chat", answer="Bonjour !", generator="teacher-b")
    return records


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    records = exported_records()
    write_records(records[:10], run / "mix" / "x")
    write_records(records[10:], run / "mix" / "y")
    # The stages before export, as the runner leaves them: one stats.json per stage folder.
    StageStats("dedup", n_in=23, kept=20, dropped={"exact_prompt_duplicate": 3}).write(run / "dedup" / "stats.json")
    StageStats("mix", n_in=20, kept=20).write(run / "mix" / "stats.json")
    (run / "recipe.resolved.yaml").write_text("name: test-recipe\nstages:\n  mix: {seed: 0}\n")
    stats = run_export(ExportConfig(), [run / "mix"], run / "export", ExecutorConfig(tasks=2, workers=1))
    return run / "export", records, stats


def test_layout_and_accounting(exported):
    out, records, stats = exported
    assert stats.n_in == stats.kept == len(records) == 20
    files = sorted(p.relative_to(out).as_posix() for p in out.glob("SFT/*/*.parquet"))
    assert files == [
        "SFT/chat/part-r00001-00000.parquet",
        "SFT/code/part-r00001-00000.parquet",
        "SFT/math/part-r00000-00000.parquet",
        "SFT/math/part-r00001-00000.parquet",
    ]
    assert all(pq.read_schema(out / f) == PUBLISHED_SCHEMA for f in files)
    assert StageStats.read(out / "stats.json").kept == 20


def test_loads_with_datasets_by_category_split(exported):
    from datasets import load_dataset

    out, records, _ = exported
    ds = load_dataset(str(out))
    assert sorted(ds) == ["chat", "code", "math"]
    assert (ds["math"].num_rows, ds["code"].num_rows, ds["chat"].num_rows) == (12, 6, 2)
    assert list(ds["math"].features)[: len(PUBLISHED_COLUMNS)] == list(PUBLISHED_COLUMNS)
    row = next(r for r in ds["math"] if r["reasoning"] == "on")
    assert row["input"][0]["role"] == "user" and row["output"].startswith("<think>\n")
    assert row["system_prompt"] == "detailed thinking on" and row["expected_answer"] is not None
    assert ds["code"][0]["tests"]["entry_point"] == "f"


def test_loads_with_polars_with_published_types(exported):
    out, _, _ = exported
    frame = pl.scan_parquet(str(out / "SFT" / "*" / "*.parquet"))
    schema = frame.collect_schema()
    assert list(schema)[: len(PUBLISHED_COLUMNS)] == list(PUBLISHED_COLUMNS)
    assert schema["input"] == pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    assert schema["output"] == schema["reasoning"] == schema["category"] == pl.String
    counts = frame.group_by("reasoning").len().collect().sort("reasoning")
    assert counts.to_dicts() == [{"reasoning": "off", "len": 10}, {"reasoning": "on", "len": 10}]


def test_passes_thinktoggle_check(exported):
    out, _, _ = exported
    summary = check_paths([out / "SFT"])
    assert (summary.rows, summary.invalid) == (20, 0)


def test_invalid_rows_fail_with_the_field(tmp_path):
    bad = pair("A prompt", generator="")  # an empty generator breaks the published schema
    write_records(bad + pair("Fine prompt"), tmp_path / "in")
    stats = run_export(ExportConfig(card=False), [tmp_path / "in"], tmp_path / "out")
    assert stats.kept == 2 and dict(stats.failed) == {"invalid_published_row:generator": 2}
    failed = pl.read_parquet(tmp_path / "out" / "failed").sort("source")
    assert failed["reason"][0] == "invalid_published_row:generator" and failed["source"][0].endswith(":1")
    assert failed["id"][0] is not None  # the record itself is kept, with its provenance


def test_record_to_arrow_row_is_the_dataclass_form():
    # schemas/convert.record_to_arrow_row is built field by field for speed: it must equal asdict's form.
    from thinktoggle.schemas.convert import record_to_arrow_row

    for record in exported_records():
        record.sampling = {"engine": "x", "usage": {"prompt_tokens": 3}}
        record.metadata = {"note": [1, 2]}
        expected = record.to_dict() | {"sampling": json.dumps(record.sampling, sort_keys=True)}
        expected["metadata"] = json.dumps(record.metadata, sort_keys=True)
        row = record_to_arrow_row(record)
        assert row == expected and list(row) == list(expected)
        if record.tests:
            row["tests"]["entry_point"] = "changed"
            assert record.tests["entry_point"] == "f"  # the row is a copy
