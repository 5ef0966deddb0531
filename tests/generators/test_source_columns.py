"""Prompt rows as people write them: `question`, `prompt` or `problem` columns, or chat turns in `input` or
`messages`, read by a `file` source with no column mapping (what `--prompts` and a recipe's `sources:` do)."""

from __future__ import annotations

import json

import pytest

from thinktoggle.generators.sources import SourceConfig, iter_source

USER = {"role": "user", "content": "What is 2 + 2?"}


@pytest.mark.parametrize(
    "row",
    [
        {"question": "What is 2 + 2?", "expected_answer": "4"},
        {"prompt": "What is 2 + 2?", "expected_answer": "4"},
        {"problem": "What is 2 + 2?", "expected_answer": "4"},
        {"input": [USER], "expected_answer": "4"},
        {
            "messages": [{"role": "system", "content": "be brief"}, USER, {"role": "assistant", "content": "4"}],
            "expected_answer": "4",
        },
        {"prompt": [USER], "expected_answer": "4"},  # a conversational prompt (TRL's layout)
    ],
    ids=["question", "prompt", "problem", "input", "messages", "prompt-turns"],
)
def test_unmapped_rows_become_the_same_prompt(tmp_path, row):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row) + "\n")
    [(read, record)] = list(iter_source(SourceConfig(path=str(path))))
    assert record is not None, read
    assert record.input == [USER] and record.expected_answer == "4" and record.output == ""


def test_a_mapped_question_column_is_the_only_one_read_and_bad_turns_are_named(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [
        {"problem": "ignored", "q": "What is 2 + 2?"},
        {"problem": "no q column"},
        {"messages": [{"role": "assistant", "content": "hi"}]},
        {"messages": [{"content": "no role"}]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = list(iter_source(SourceConfig(path=str(path), columns={"question": "q"})))
    assert items[0][1] is not None and items[0][1].input == [USER]
    assert (items[1][0].field, items[1][0].error) == ("q", "missing column")
    items = list(iter_source(SourceConfig(path=str(path))))
    assert (items[2][0].field, items[2][0].error) == ("messages", "no user turn")
    assert items[3][0].field == "messages" and "chat turns" in items[3][0].error
