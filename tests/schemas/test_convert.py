"""Round trips record <-> published row <-> datatrove Document <-> Arrow record row, and content-hash ids."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.data import Document

from thinktoggle.schemas.arrow import PUBLISHED_SCHEMA, RECORD_SCHEMA
from thinktoggle.schemas.convert import (
    arrow_row_to_record,
    document_to_record,
    lift_system_turn,
    record_to_arrow_row,
    record_to_document,
    record_to_row,
    row_to_record,
)
from thinktoggle.schemas.io import iter_records
from thinktoggle.schemas.published import row_problems
from thinktoggle.schemas.record import Record, Verdict
from thinktoggle.schemas.think import compose_output

PROMPT = [{"role": "user", "content": "Add 2 and 3."}]

# Outputs the filters must see exactly as the teacher wrote them.
MALFORMED_OUTPUTS = [
    "",
    "<think>unclosed reasoning",
    "  </think> leading whitespace and a stray closing tag\n",
    "<think>a</think>b<think>c</think>d",
    "tabs\tand\r\nCRLF\r\n and a NUL \x00 and ünïcödé 数学 🙂",
    "trailing spaces   \n\n",
]


def make_record(reasoning: str = "on", output: str | None = None, **changes) -> Record:
    if output is None:
        output = compose_output("2 + 3 = 5", "\\boxed{5}") if reasoning == "on" else "\\boxed{5}"
    values = {
        "input": PROMPT,
        "category": "math",
        "reasoning": reasoning,
        "output": output,
        "expected_answer": "5",
        "generator": "DeepSeek-R1" if reasoning == "on" else "Llama-3.3-70B-Instruct",
        "used_in_training": "Nano",
        "sampling": {"engine": "vllm", "temperature": 0.6, "top_p": 0.95, "seed": 0, "usage": {"completion": 12}},
        "metadata": {"source": "gsm8k", "row": 7},
        "verdicts": [Verdict("math", "pass", "matches 5"), Verdict("format", "pass")],
    }
    values.update(changes)
    return Record(**values)


# --- ids ---------------------------------------------------------------------------------------------------


def test_the_on_off_pair_shares_its_pair_id_and_not_its_id():
    on, off = make_record("on"), make_record("off")
    assert on.pair_id == off.pair_id
    assert on.id != off.id
    assert (on.system_prompt, off.system_prompt) == ("detailed thinking on", "detailed thinking off")


def test_ids_are_content_hashes():
    assert make_record().id == make_record().id  # same content, same id: reruns are idempotent
    assert make_record().pair_id == make_record(output="other", generator="X", sampling={}).pair_id
    assert make_record(output="other").id != make_record().id
    assert make_record(sample=1).id != make_record().id
    assert make_record(category="science").pair_id != make_record().pair_id
    assert make_record(input=[{"role": "user", "content": "Add 2 and 4."}]).pair_id != make_record().pair_id
    assert make_record(input=[{"role": "assistant", "content": "Add 2 and 3."}]).pair_id != make_record().pair_id
    assert len(make_record().id) == 16 and int(make_record().id, 16) >= 0


def test_with_output_recomputes_the_id_and_keeps_the_pair():
    record = make_record(output="")
    answered = record.with_output("<think>\nr\n</think>\n\n5")
    assert answered.pair_id == record.pair_id and answered.id != record.id
    assert answered.id == answered.compute_id()
    assert record.output == ""  # the original is untouched


# --- record <-> published row ------------------------------------------------------------------------------


@pytest.mark.parametrize("reasoning", ["on", "off"])
def test_record_to_row_is_a_valid_published_row_and_comes_back(reasoning):
    record = make_record(reasoning)
    row = record_to_row(record)
    assert list(row) == list(PUBLISHED_SCHEMA.names)
    assert list(row_problems(row)) == []
    back = row_to_record(row)
    # The published row carries no provenance, verdicts or metadata; everything it carries comes back.
    assert back == make_record(reasoning, sampling={}, metadata={}, verdicts=[])
    assert (back.id, back.pair_id) == (record.id, record.pair_id)


def test_a_published_row_with_ids_and_verdicts_reads_them_back():
    record = make_record()
    verdicts = [v.to_dict() for v in record.verdicts]
    row = {**record_to_row(record), "id": record.id, "pair_id": record.pair_id, "verdicts": verdicts}
    assert list(row_problems(row)) == []
    back = row_to_record(row)
    assert (back.id, back.pair_id, back.verdicts) == (record.id, record.pair_id, record.verdicts)


@pytest.mark.parametrize(
    ("messages", "system_prompt", "expected_messages", "expected_prompt"),
    [
        # a leading system turn moves to an empty system prompt
        ([{"role": "system", "content": "be brief"}, *PROMPT], "", PROMPT, "be brief"),
        # ... or is dropped when it repeats the system prompt
        (
            [{"role": "system", "content": "detailed thinking on"}, *PROMPT],
            "detailed thinking on",
            PROMPT,
            "detailed thinking on",
        ),
        # a different one stays: nothing is lost
        (
            [{"role": "system", "content": "tools: add(a, b)"}, *PROMPT],
            "detailed thinking on",
            [{"role": "system", "content": "tools: add(a, b)"}, *PROMPT],
            "detailed thinking on",
        ),
        # only a leading one
        ([*PROMPT, {"role": "system", "content": "x"}], "", [*PROMPT, {"role": "system", "content": "x"}], ""),
        (PROMPT, "", PROMPT, ""),
    ],
)
def test_a_system_turn_in_input(messages, system_prompt, expected_messages, expected_prompt):
    assert lift_system_turn(messages, system_prompt) == (expected_messages, expected_prompt)
    row = record_to_row(make_record())
    row.update(input=messages, system_prompt=system_prompt)
    record = row_to_record(row)
    assert (record.input, record.system_prompt) == (expected_messages, expected_prompt)
    again = record_to_row(record)
    assert row_to_record(again) == record  # the normal form is stable


def test_a_row_without_system_prompt_keeps_none():
    row = record_to_row(make_record("off"))
    row["system_prompt"] = ""
    record = row_to_record(row)
    assert record.system_prompt == ""
    assert record.chat_messages() == PROMPT  # no empty system turn is sent
    assert record_to_row(record) == row
    # A record built without one gets the mode's Nemotron prompt.
    assert make_record("off").chat_messages()[0] == {"role": "system", "content": "detailed thinking off"}


# --- record <-> Document -----------------------------------------------------------------------------------


@pytest.mark.parametrize("output", MALFORMED_OUTPUTS + [None])
def test_document_round_trip(output):
    record = make_record(output=output, tests={"stdio": [{"input": "1\n", "output": "2\n"}]})
    doc = record_to_document(record)
    assert isinstance(doc, Document)
    assert (doc.text, doc.id) == (record.output, record.id)
    assert doc.metadata["pair_id"] == record.pair_id
    assert "output" not in doc.metadata and "id" not in doc.metadata
    back = document_to_record(doc)
    assert back == record and back.output.encode() == record.output.encode()


def test_document_keys_added_by_other_steps_are_ignored():
    doc = record_to_document(make_record())
    doc.metadata["file_path"] = "somewhere.parquet"
    doc.metadata["token_count"] = 12
    assert document_to_record(doc) == make_record()


# --- record <-> Arrow record row ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tests",
    [None, {"entry_point": "add", "test": "def check(c): pass"}, {"stdio": [{"input": "1", "output": "2"}]}],
    ids=["none", "functional", "stdio"],
)
@pytest.mark.parametrize("output", MALFORMED_OUTPUTS[:3] + [None])
def test_arrow_row_round_trip_through_parquet(tmp_path, tests, output):
    record = make_record(output=output, tests=tests)
    row = record_to_arrow_row(record)
    assert isinstance(row["sampling"], str) and isinstance(row["metadata"], str)
    assert arrow_row_to_record(row) == record
    path = tmp_path / "records.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema=RECORD_SCHEMA), path)
    (back,) = pq.read_table(path).to_pylist()  # Arrow adds the other test form's members as nulls
    assert arrow_row_to_record(back) == record
    assert arrow_row_to_record(back).output.encode() == record.output.encode()


def test_published_rows_through_parquet_become_the_same_records(tmp_path):
    records = [make_record("on"), make_record("off", tests={"stdio": [{"input": "", "output": "5"}]})]
    path = tmp_path / "published.parquet"
    pq.write_table(pa.Table.from_pylist([record_to_row(r) for r in records], schema=PUBLISHED_SCHEMA), path)
    back = [record for _, record in iter_records([path])]
    # What a published row carries: no provenance, verdicts or metadata.
    assert back == [Record.from_dict({**r.to_dict(), "sampling": {}, "metadata": {}, "verdicts": []}) for r in records]


def test_from_dict_refuses_unknown_fields():
    data = make_record().to_dict()
    data["colour"] = "blue"
    with pytest.raises(ValueError, match="colour"):
        Record.from_dict(data)
    assert Record.from_dict(make_record().to_dict()) == make_record()
