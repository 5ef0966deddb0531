"""Reading rows (jsonl, parquet, arrow, folders, saved HF datasets) and writing parquet shards atomically."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from published_rows import VALID_ROW, changed

from thinktoggle.schemas.arrow import PUBLISHED_SCHEMA, RECORD_SCHEMA
from thinktoggle.schemas.convert import record_to_arrow_row, row_to_record
from thinktoggle.schemas.io import (
    InputError,
    ShardWriter,
    atomic_write_parquet,
    atomic_write_text,
    discover_files,
    iter_records,
    iter_rows,
)


def jsonl_bytes(*rows: dict) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def reads(path, **kwargs) -> list[tuple[int, dict | None, str | None]]:
    return [(r.line, r.row, r.error) for r in iter_rows([path], **kwargs)]


def published_rows(n: int) -> list[dict]:
    return [changed(output=f"<think>\nr{i}\n</think>\n\n{i}", expected_answer=str(i), tests=None) for i in range(n)]


# --- jsonl -------------------------------------------------------------------------------------------------


def test_jsonl_rows_come_with_their_1_based_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(jsonl_bytes({"a": 1}) + b"\n   \n" + jsonl_bytes({"a": 2}))
    assert reads(path) == [(1, {"a": 1}, None), (4, {"a": 2}, None)]  # blank lines count but yield nothing


# (file bytes, the expected (line, error piece) pairs; rows that read fine are listed with error None)
MALFORMED = {
    "malformed_json": (b'{"a": 1}\n{bad json}\n{"a": 3}\n', [(1, None), (2, "malformed JSON"), (3, None)]),
    "bad_utf8": (
        b'{"a": 1}\n\xff\xfe{"a": 2}\n{"a": "\xc3\x28"}\n',
        [(1, None), (2, "invalid UTF-8 at byte 0"), (3, "invalid UTF-8 at byte 7")],
    ),
    "truncated_last_line": (b'{"a": 1}\n{"a": 2, "b": [1, 2', [(1, None), (2, "truncated last line")]),
    "not_an_object": (
        b'[1, 2]\n"text"\n3\nnull\n',
        [(1, "got list"), (2, "got str"), (3, "got int"), (4, "got NoneType")],
    ),
    "empty_file": (b"", [(1, "empty file")]),
    "only_blank_lines": (b"\n  \n\n", [(1, "empty file")]),
    "last_line_without_newline_is_fine": (b'{"a": 1}\n{"a": 2}', [(1, None), (2, None)]),
    "crlf": (b'{"a": 1}\r\n{"a": 2}\r\n', [(1, None), (2, None)]),
    "byte_order_mark": (b'\xef\xbb\xbf{"a": 1}\n{"a": 2}\n', [(1, None), (2, None)]),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_bad_jsonl_lines_are_errors_not_exceptions(tmp_path, case):
    content, expected = MALFORMED[case]
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    got = list(iter_rows([path]))
    assert [r.line for r in got] == [line for line, _ in expected]
    for read, (_, error) in zip(got, expected, strict=True):
        assert read.file == str(path) and read.where == f"{path}:{read.line}"
        if error is None:
            assert read.error is None and isinstance(read.row, dict)
        else:
            assert read.row is None and error in read.error and read.field == "(row)"


def test_a_line_over_max_line_bytes_is_reported_and_skipped_without_loading_it(tmp_path):
    path = tmp_path / "rows.jsonl"
    huge = {"a": "x" * 5000}
    path.write_bytes(jsonl_bytes({"a": 1}, huge, {"a": 3}) + b'{"a": "' + b"y" * 5000)  # and a huge truncated tail
    got = reads(path, max_line_bytes=1000)
    assert [(line, row) for line, row, _ in got] == [(1, {"a": 1}), (2, None), (3, {"a": 3}), (4, None)]
    assert "line longer than 1000 bytes" in got[1][2] and "line longer than 1000 bytes" in got[3][2]
    # The limit is on a line's content: one exactly at the limit is read.
    exact = tmp_path / "exact.jsonl"
    exact.write_bytes(jsonl_bytes(huge))
    size = len(json.dumps(huge))
    assert reads(exact, max_line_bytes=size) == [(1, huge, None)]
    assert reads(exact, max_line_bytes=size - 1)[0][2] == f"line longer than {size - 1} bytes"


def test_gzipped_jsonl(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl_bytes({"a": 1}, {"a": 2})))
    assert reads(path) == [(1, {"a": 1}, None), (2, {"a": 2}, None)]


# --- parquet and arrow -------------------------------------------------------------------------------------


def test_parquet_rows_are_numbered_across_batches(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([{"a": i} for i in range(10)]), path, row_group_size=4)
    got = reads(path, batch_size=3)
    assert got == [(i + 1, {"a": i}, None) for i in range(10)]


def test_empty_and_corrupt_parquet_are_errors(tmp_path):
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=PUBLISHED_SCHEMA), empty)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    assert [(line, err) for line, _, err in reads(empty)] == [(1, "empty file (no rows)")]
    ((line, row, error),) = reads(corrupt)
    assert (line, row) == (1, None) and "not a readable parquet file" in error


@pytest.mark.parametrize("form", ["stream", "file"])
def test_arrow_ipc_files(tmp_path, form):
    table = pa.Table.from_pylist([{"a": 1}, {"a": 2}])
    path = tmp_path / "rows.arrow"
    opener = pa.ipc.new_stream if form == "stream" else pa.ipc.new_file
    with pa.OSFile(str(path), "wb") as sink, opener(sink, table.schema) as writer:
        writer.write_table(table)
    assert reads(path) == [(1, {"a": 1}, None), (2, {"a": 2}, None)]


# --- folders and saved datasets ----------------------------------------------------------------------------


def test_folders_are_walked_in_order_skipping_what_is_not_data(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.jsonl").write_bytes(jsonl_bytes({"f": 2}))
    (tmp_path / "1.jsonl").write_bytes(jsonl_bytes({"f": 1}))
    pq.write_table(pa.Table.from_pylist([{"f": 3}]), tmp_path / "c.parquet")
    # skipped: hidden files, unfinished atomic writes, bookkeeping .json, other formats, side and hidden folders
    (tmp_path / ".hidden.jsonl").write_bytes(jsonl_bytes({"f": "hidden"}))
    (tmp_path / ".part-00000.parquet.tmp-1234abcd").write_bytes(b"half written")
    (tmp_path / "part-00001.parquet.tmp").write_bytes(b"half written")
    (tmp_path / "stats.json").write_text(json.dumps({"in": 1}, indent=2))
    (tmp_path / "notes.txt").write_text("not data")
    for folder in ("rejected", "dropped", "failed", "logs", ".cache"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "rows.jsonl").write_bytes(jsonl_bytes({"f": folder}))
    assert discover_files([tmp_path]) == [tmp_path / "1.jsonl", tmp_path / "b" / "2.jsonl", tmp_path / "c.parquet"]
    assert [r.row["f"] for r in iter_rows([tmp_path])] == [1, 2, 3]
    # Named explicitly, a side folder or a .json file is read.
    assert [r.row["f"] for r in iter_rows([tmp_path / "dropped"])] == ["dropped"]
    (tmp_path / "rows.json").write_bytes(jsonl_bytes({"f": "json"}))
    assert [r.row["f"] for r in iter_rows([tmp_path / "rows.json"])] == ["json"]


def test_missing_paths_and_unknown_formats_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        discover_files([tmp_path / "nope.jsonl"])
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="unknown format"):
        discover_files([tmp_path / "data.csv"])
    assert discover_files([tmp_path]) == []  # a folder without data files is empty, not an error


def test_saved_hf_datasets(tmp_path):
    rows = published_rows(3)
    dataset = datasets.Dataset.from_list(rows)
    dataset.save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"train": dataset, "test": dataset.select([0])}).save_to_disk(str(tmp_path / "dict"))
    single = list(iter_rows([tmp_path / "single"]))
    assert [r.error for r in single] == [None] * 3
    assert [r.row for r in single] == rows
    assert single[0].file.endswith(".arrow")  # state.json and dataset_info.json are not rows
    both = list(iter_rows([tmp_path / "dict"]))
    assert [r.error for r in both] == [None] * 4
    assert sorted(r.row["expected_answer"] for r in both) == ["0", "0", "1", "2"]


# --- writing -----------------------------------------------------------------------------------------------


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_shard_writer_splits_rows_into_shards(tmp_path):
    rows = published_rows(25)
    with ShardWriter(tmp_path, PUBLISHED_SCHEMA, rows_per_shard=10, batch_rows=3) as writer:
        for row in rows:
            writer.write(row)
    assert writer.rows_written == 25
    assert visible(tmp_path) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.ParquetFile(p).metadata.num_rows for p in writer.shards] == [10, 10, 5]
    assert [r.row for r in iter_rows([tmp_path])] == rows
    assert all(pq.read_schema(p).equals(PUBLISHED_SCHEMA) for p in writer.shards)
    assert sorted(p.name for p in tmp_path.iterdir()) == visible(tmp_path)  # no temp file left


def test_a_shard_is_invisible_until_closed(tmp_path):
    writer = ShardWriter(tmp_path, PUBLISHED_SCHEMA, prefix="kept", rows_per_shard=10, batch_rows=2)
    for row in published_rows(5):
        writer.write(row)  # 4 rows are already in the temporary file
    assert visible(tmp_path) == [] and discover_files([tmp_path]) == []
    assert [p.name for p in tmp_path.iterdir()][0].startswith(".kept-00000.parquet.tmp-")
    assert writer.close() == [tmp_path / "kept-00000.parquet"]
    assert visible(tmp_path) == ["kept-00000.parquet"]
    assert len(list(iter_rows([tmp_path]))) == 5


def test_abort_leaves_completed_shards_and_no_temp_file(tmp_path):
    with pytest.raises(RuntimeError), ShardWriter(tmp_path, PUBLISHED_SCHEMA, rows_per_shard=4, batch_rows=1) as writer:
        for row in published_rows(6):
            writer.write(row)
        raise RuntimeError("killed mid-shard")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00000.parquet"]
    assert len(list(iter_rows([tmp_path]))) == 4


def test_no_rows_no_shard(tmp_path):
    with ShardWriter(tmp_path / "out", PUBLISHED_SCHEMA) as writer:
        pass
    assert writer.shards == [] and not (tmp_path / "out").exists()


def test_atomic_writes_leave_only_the_final_file(tmp_path):
    atomic_write_text("hello\n", tmp_path / "sub" / "a.txt")
    atomic_write_parquet(
        pa.Table.from_pylist(published_rows(2), schema=PUBLISHED_SCHEMA), tmp_path / "sub" / "b.parquet"
    )
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.txt", "b.parquet"]
    assert (tmp_path / "sub" / "a.txt").read_text() == "hello\n"


# --- the published parquet, as others open it --------------------------------------------------------------


def test_published_parquet_opens_with_datasets_and_polars(tmp_path):
    rows = published_rows(3)
    rows[1]["tests"] = {"entry_point": "add", "test": "def check(c): assert c(1, 2) == 3"}
    rows[2].update(tests={"stdio": [{"input": "1 2\n", "output": "3\n"}]}, expected_answer=None)
    with ShardWriter(tmp_path / "out", PUBLISHED_SCHEMA) as writer:
        for row in rows:
            writer.write(row)
    (shard,) = writer.shards

    dataset = datasets.load_dataset("parquet", data_files=str(shard), split="train", cache_dir=str(tmp_path / "cache"))
    assert dataset.column_names == list(PUBLISHED_SCHEMA.names)
    string = datasets.Value("string")
    assert dataset.features["input"] == datasets.List({"role": string, "content": string})
    for column in ("output", "category", "license", "reasoning", "generator", "used_in_training", "version"):
        assert dataset.features[column] == string
    assert dataset.features["tests"]["stdio"] == datasets.List({"input": string, "output": string})
    assert dataset[0]["input"] == VALID_ROW["input"]
    assert dataset[2]["tests"]["stdio"] == [{"input": "1 2\n", "output": "3\n"}]

    frame = pl.read_parquet(shard)
    assert frame.columns == list(PUBLISHED_SCHEMA.names)
    assert frame.schema["input"] == pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    assert all(
        frame.schema[c] == pl.String for c in ("output", "category", "reasoning", "system_prompt", "expected_answer")
    )
    assert frame.schema["tests"] == pl.Struct(
        {
            "entry_point": pl.String,
            "test": pl.String,
            "stdio": pl.List(pl.Struct({"input": pl.String, "output": pl.String})),
        }
    )
    assert frame["reasoning"].to_list() == ["on"] * 3
    assert frame["input"][0].to_list() == VALID_ROW["input"]

    # And the project reads it back into the same records.
    assert [record for _, record in iter_records([shard])] == [row_to_record(r) for r in rows]


def test_iter_records_reads_both_forms_and_names_bad_rows(tmp_path):
    rows = published_rows(2)
    record_rows = [record_to_arrow_row(row_to_record(r)) for r in rows]
    pq.write_table(pa.Table.from_pylist(record_rows, schema=RECORD_SCHEMA), tmp_path / "records.parquet")
    (tmp_path / "published.jsonl").write_bytes(jsonl_bytes(rows[0], changed(category="bio", version=""), {"x": 1}))
    got = list(iter_records([tmp_path]))  # published.jsonl, then records.parquet
    assert [record is not None for _, record in got] == [True, False, False, True, True]
    bad, unknown = got[1][0], got[2][0]
    assert (bad.line, bad.field) == (2, "category") and "(+1 more)" in bad.error
    assert (unknown.line, unknown.field) == (3, "x") and "unknown column" in unknown.error
    ids = [r.id for _, r in got if r is not None]
    assert ids == [row_to_record(rows[0]).id, row_to_record(rows[0]).id, row_to_record(rows[1]).id]
