"""The conversational layouts (NVIDIA's Nemotron-Post-Training-Dataset-v1 and -v2): the Arrow schemas are the
cards' features, exported rows load with `datasets` and polars exactly as the cards type them, `check` names
file:line: field: reason, a tool-calling conversation survives ingest -> filter -> export -> ingest, and a
record a layout cannot hold is dropped with the reason. The cards' YAML is a fixture (tests/schemas/fixtures):
the Hub cannot be reached here, and the test compares against what the cards say, not against our own code."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import yaml
from click.testing import CliRunner
from datasets import Features, load_dataset

from thinktoggle.cli.main import app
from thinktoggle.curation.card import read_front_matter
from thinktoggle.curation.check import check_paths
from thinktoggle.curation.export import ExportConfig, run_export
from thinktoggle.curation.ingest import ingest
from thinktoggle.filters.stage import FilterConfig, run_filter
from thinktoggle.schemas.arrow import NEMOTRON_V1_SCHEMA, NEMOTRON_V2_SCHEMA
from thinktoggle.schemas.conversation import language_of_source
from thinktoggle.schemas.convert import conversation_row_to_record, record_to_layout_row

CARDS = yaml.safe_load((Path(__file__).parents[1] / "schemas" / "fixtures" / "nemotron_cards.yaml").read_text())
SCHEMAS = {"nemotron-v1": NEMOTRON_V1_SCHEMA, "nemotron-v2": NEMOTRON_V2_SCHEMA}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
}


def call(name: str = "add", arguments: str = '{"a": 2, "b": 3}') -> dict:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


def turn(role: str, content: str, tool_calls=None, v1: bool = True) -> dict:
    return {"role": role, "content": content, "tool_calls": tool_calls} if v1 else {"role": role, "content": content}


def tool_conversation(uuid: str = "0f7d7a9e-1", arguments: str = '{"a": 2, "b": 3}', reasoning: str = "off") -> dict:
    """Two user turns, a tool call and its result, then the answer (the v1 layout)."""
    answer = "Now 5 plus 1 is 6." if reasoning == "off" else "<think>\n5 + 1 = 6\n</think>\n\nNow 5 plus 1 is 6."
    return {
        "uuid": uuid,
        "license": "cc-by-4.0",
        "generator": "Qwen3-235B-A22B",
        "version": "v1",
        "category": "tool_calling",
        "reasoning": reasoning,
        "messages": [
            turn("system", f"detailed thinking {reasoning}"),
            turn("user", "What is 2 plus 3?"),
            turn("assistant", "", [call(arguments=arguments)]),
            turn("tool", '{"result": 5}'),
            turn("assistant", "2 plus 3 is 5."),
            turn("user", "And plus 1?"),
            turn("assistant", answer),
        ],
        "metadata": json.dumps({"tools": [ADD]}),
    }


def chat_row(category: str, content: str, v1: bool, reasoning: str = "on") -> dict:
    answer = f"<think>\nabout {content}\n</think>\n\nAn answer." if reasoning == "on" else "An answer."
    row = {
        "uuid": f"u-{category}-{content[:8]}",
        "license": "cc-by-4.0",
        "generator": "DeepSeek-R1-0528",
        "version": "v1" if v1 else "v2",
        "category": category,
        "reasoning": reasoning,
        "messages": [turn("system", "", v1=v1), turn("user", content, v1=v1), turn("assistant", answer, v1=v1)],
    }
    if v1:
        row["metadata"] = ""
    return row


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def records_of(folder: Path):
    from thinktoggle.schemas.io import iter_records

    return [record for _, record in iter_records([folder]) if record is not None]


# -- the schemas are the cards' ------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["nemotron-v1", "nemotron-v2"])
def test_arrow_schema_is_the_cards_features(layout):
    card = Features._from_yaml_list(CARDS[layout]["dataset_info"]["features"]).arrow_schema
    assert SCHEMAS[layout].equals(card, check_metadata=False), (SCHEMAS[layout], card)


# -- export: what datasets and polars load is exactly the card's ---------------------------------------------
@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    v1_rows = [
        tool_conversation(),
        chat_row("chat", "Hello there", True),
        chat_row("stem", "Why is the sky blue", True),
    ]
    v2_rows = [chat_row("math", "What is 1+1", False, "off"), chat_row("code", "Reverse a list", False)]
    ja = conversation_row_to_record(chat_row("chat", "日本の首都はどこですか", False), language="ja")
    v2_rows.append(record_to_layout_row(ja, "nemotron-v2"))
    out = {}
    for layout, rows in (("nemotron-v1", v1_rows), ("nemotron-v2", v2_rows)):
        source = write_jsonl(root / f"{layout}.jsonl", rows)
        stats = run_export(
            ExportConfig(layout=layout, plots=False, upstream_stats="", recipe=""), [source], root / layout
        )
        out[layout] = (root / layout, rows, stats)
    # the Japanese row: its language rides on a hub split name; here it is set directly on a v2 record
    ja_stats = run_export(
        ExportConfig(layout="nemotron-v2", plots=False, upstream_stats="", recipe=""),
        [write_ja_records(root / "ja", ja)],
        root / "ja-export",
    )
    out["ja"] = (root / "ja-export", [ja], ja_stats)
    return out


def write_ja_records(folder: Path, record) -> Path:
    from _curation_fixtures import write_records

    return write_records([record], folder)


@pytest.mark.parametrize("layout", ["nemotron-v1", "nemotron-v2"])
def test_rows_load_with_datasets_and_polars_as_the_card_types_them(exports, layout):
    out, rows, stats = exports[layout]
    assert stats.n_in == stats.kept == len(rows)
    card_features = Features._from_yaml_list(CARDS[layout]["dataset_info"]["features"])
    loaded = load_dataset(str(out))
    card_splits = {s["name"] for s in CARDS[layout]["dataset_info"]["splits"]}
    assert set(loaded) <= card_splits
    for split in loaded.values():
        assert split.features == card_features
        assert split.column_names == [f["name"] for f in CARDS[layout]["dataset_info"]["features"]]
    frame = pl.read_parquet(str(out / "data" / "*.parquet"))
    assert frame.schema == pl.from_arrow(card_features.arrow_schema.empty_table()).schema
    assert sum(len(s) for s in loaded.values()) == len(rows)


@pytest.mark.parametrize("layout", ["nemotron-v1", "nemotron-v2"])
def test_card_header_states_the_features_splits_and_paths_as_nvidia_does(exports, layout):
    out, _rows, _stats = exports[layout]
    meta = read_front_matter(out / "README.md")
    assert meta["dataset_info"]["features"] == CARDS[layout]["dataset_info"]["features"]
    nvidia_paths = {f["split"]: f["path"] for f in CARDS[layout]["configs"][0]["data_files"]}
    ours = {f["split"]: f["path"] for f in meta["configs"][0]["data_files"]}
    assert ours == {split: nvidia_paths[split] for split in ours}  # data/tool-* for tool_calling, as v1's card
    counts = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert counts == {split: _rows_in(out, path) for split, path in ours.items()}
    assert all(counts.values())
    assert check_paths([out / "data"]).invalid == 0


def _rows_in(out: Path, pattern: str) -> int:
    return sum(pl.read_parquet(p).height for p in out.glob(pattern))


def test_multilingual_records_get_their_language_split_and_card_language(exports):
    out, _rows, stats = exports["ja"]
    assert stats.kept == 1
    assert [p.name.split("-part")[0] for p in (out / "data").glob("*.parquet")] == ["multilingual_ja"]
    meta = read_front_matter(out / "README.md")
    assert meta["language"] == ["en", "ja"]
    assert [f["split"] for f in meta["configs"][0]["data_files"]] == ["multilingual_ja"]
    assert language_of_source("hub:nvidia/Nemotron-Post-Training-Dataset-v2/multilingual_ja") == "ja"
    assert language_of_source("hub:nvidia/Nemotron-Post-Training-Dataset-v2/chat") is None


# -- the round trip ------------------------------------------------------------------------------------------
def test_tool_conversation_round_trips_ingest_filter_export_ingest(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [tool_conversation(), tool_conversation("u-2", reasoning="on")])
    first = ingest([str(source)], tmp_path / "ingest")
    assert first.written == 2
    stats = run_filter(FilterConfig(only=("format", "toolcall")), [tmp_path / "ingest"], tmp_path / "filter")
    assert stats.kept == 2, stats.to_dict()
    run_export(ExportConfig(layout="nemotron-v1", plots=False), [tmp_path / "filter"], tmp_path / "export")
    second = ingest([str(tmp_path / "export" / "data")], tmp_path / "again")
    assert second.written == 2
    before = sorted(records_of(tmp_path / "ingest"), key=lambda r: r.id)
    after = sorted(records_of(tmp_path / "again"), key=lambda r: r.id)
    assert after == before
    assert before[0].input[1]["tool_calls"][0]["function"]["name"] == "add"
    assert [m["role"] for m in before[0].input] == ["user", "assistant", "tool", "assistant", "user"]
    assert before[0].metadata["uuid"] in {"0f7d7a9e-1", "u-2"}
    exported = pl.read_parquet(str(tmp_path / "export" / "data" / "*.parquet")).sort("uuid").to_dicts()
    assert exported == sorted([tool_conversation(), tool_conversation("u-2", reasoning="on")], key=lambda r: r["uuid"])


def test_a_record_a_layout_cannot_hold_is_dropped_with_the_reason(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [tool_conversation(), chat_row("chat", "hi", True)])
    for layout in ("llama-nemotron", "nemotron-v2"):
        stats = run_export(ExportConfig(layout=layout, plots=False), [source], tmp_path / layout)
        assert stats.n_in == 2 and stats.kept == 1
        assert stats.dropped == {f"unwritable:{layout}": 1}
        dropped = pl.read_parquet(str(tmp_path / layout / "dropped" / "*.parquet"))
        assert "tool calls have no place" in dropped["detail"][0]
        assert dropped["source"][0].endswith("in.jsonl:1")


# -- check ---------------------------------------------------------------------------------------------------
def test_check_names_file_line_field_and_reason_for_each_conversation_problem(tmp_path):
    bad_args = tool_conversation(arguments="[2, 3]")
    out_of_order = tool_conversation()
    out_of_order["messages"][3], out_of_order["messages"][2] = out_of_order["messages"][2], out_of_order["messages"][3]
    flag = tool_conversation(reasoning="off")
    flag["reasoning"] = "on"
    empty = chat_row("chat", "hi", False)
    empty["messages"][-1]["content"] = "  "
    path = write_jsonl(tmp_path / "rows.jsonl", [tool_conversation(), bad_args, out_of_order, flag, empty])
    summary = check_paths([path])
    assert (summary.rows, summary.valid, summary.invalid) == (5, 1, 4)
    problems = "\n".join(summary.problems)
    assert f"{path}:2: messages.2.tool_calls.0.function.arguments: not a JSON object string" in problems
    assert f"{path}:3: messages.2.role: 'tool' out of order (after 'user')" in problems
    assert f"{path}:4: reasoning: 'on' disagrees with the system turn ('detailed thinking off')" in problems
    assert f"{path}:5: messages.2.content: empty assistant turn" in problems


def test_check_layout_option_on_the_command_line(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", [tool_conversation()])
    assert CliRunner().invoke(app, ["check", str(path)]).exit_code == 0
    result = CliRunner().invoke(app, ["check", "--layout", "nemotron-v2", str(path)])
    assert result.exit_code == 1
    assert f"{path}:1: metadata: unknown column in nemotron-v2" in result.output


def test_check_of_records_with_tool_calls_says_why_llama_nemotron_cannot_hold_them(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [tool_conversation()])
    ingest([str(source)], tmp_path / "ingest")
    assert check_paths([tmp_path / "ingest"]).invalid == 0  # auto: a tool record checks as nemotron-v1
    summary = check_paths([tmp_path / "ingest"], layout="llama-nemotron")
    assert summary.invalid == 1 and "(record): cannot be written in llama-nemotron: tool calls" in summary.problems[0]


# -- records written before tool calls existed still read -------------------------------------------------------
def test_record_parquet_of_the_old_schema_still_reads(tmp_path):
    import pyarrow.parquet as pq

    from thinktoggle.schemas.convert import record_to_arrow_row
    from thinktoggle.schemas.record import Record

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    from thinktoggle.schemas.arrow import RECORD_SCHEMA

    old = pa.schema([pa.field("input", pa.list_(message)) if f.name == "input" else f for f in RECORD_SCHEMA])
    old = old.remove(old.get_field_index("tool_calls"))
    record = Record(input=[{"role": "user", "content": "q"}], category="math", reasoning="off", output="4")
    row = {k: v for k, v in record_to_arrow_row(record).items() if k != "tool_calls"}
    (tmp_path / "old").mkdir()
    pq.write_table(pa.Table.from_pylist([row], schema=old), tmp_path / "old" / "part-00000.parquet")
    assert records_of(tmp_path / "old") == [record]


def test_format_filter_reads_the_think_switches_of_conversational_data():
    from thinktoggle.filters.format import format_problem
    from thinktoggle.schemas.record import Record

    def problem(system: str, mode: str):
        output = "<think>\nx\n</think>\n\nanswer" if mode == "on" else "answer"
        rec = Record(input=[{"role": "user", "content": "q"}], category="chat", reasoning=mode, output=output)
        rec.system_prompt = system
        return format_problem(rec)

    assert problem("/no_think", "off") is None and problem("You are kind. /think", "on") is None
    assert problem("/no_think", "on") == problem("", "on") == "system_prompt_mismatch"
