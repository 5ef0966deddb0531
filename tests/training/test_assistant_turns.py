"""Multi-turn and tool-calling conversations in the trainer: which assistant turns carry the loss
(`assistant_turns`), and tool calls and tool results rendered through the chat template into the ids."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from test_trainer import TINY, pair

from thinktoggle.generators.procedural_tools import tool_calling_records
from thinktoggle.schemas.arrow import RECORD_SCHEMA
from thinktoggle.schemas.convert import record_to_arrow_row
from thinktoggle.schemas.io import ShardWriter
from thinktoggle.schemas.record import Record
from thinktoggle.schemas.think import compose_output
from thinktoggle.training.data import conversation, render_conversation, render_conversations, windows
from thinktoggle.training.trainer import TrainConfig, run_train


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def decode(tokenizer, ids: list[int], mask: list[int], keep: int = 1) -> str:
    return tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m == keep], skip_special_tokens=False)


def multi_turn() -> Record:
    """Two user turns; the earlier answer is context (think block already removed, as generate stores it)."""
    turns = [
        {"role": "user", "content": "What is 1 + 1?"},
        {"role": "assistant", "content": "\\boxed{2}"},
        {"role": "user", "content": "And 2 + 2?"},
    ]
    record = Record(input=turns, category="math", reasoning="on", generator="test")
    return record.with_output(compose_output("2 + 2 = 4", "\\boxed{4}"))


def tool_record(answer_calls: bool) -> Record:
    """A procedural tool_calling prompt (user -> assistant call -> tool result) answered in text, or answered
    with a second tool call of its own."""
    record = tool_calling_records(1, seed=3)[0]
    call = record.input[1]["tool_calls"][0]
    if answer_calls:
        again = {**call, "id": "call_1"}
        return record.with_output("", reasoning="off", system_prompt="detailed thinking off", tool_calls=[again])
    return record.with_output("The answer is 7.", reasoning="off", system_prompt="detailed thinking off")


def test_last_masks_exactly_the_earlier_assistant_turns(tokenizer):
    record = multi_turn()
    ids_all, mask_all = render_conversation(tokenizer, conversation(record), "all")
    ids_last, mask_last = render_conversation(tokenizer, conversation(record), "last")
    assert ids_all == ids_last  # the same tokens: only the targets change
    assert decode(tokenizer, ids_all, mask_all) == "\\boxed{2}<|end|>" + record.output + "<|end|>"
    assert decode(tokenizer, ids_last, mask_last) == record.output + "<|end|>"
    # what `last` takes out is the earlier assistant turn, and nothing else
    dropped = [a - b for a, b in zip(mask_all, mask_last, strict=True)]
    assert set(dropped) == {0, 1} and decode(tokenizer, ids_all, dropped) == "\\boxed{2}<|end|>"


@pytest.mark.parametrize("mode", ["on", "off"])
def test_single_turn_rows_give_the_same_mask_either_way(tokenizer, mode):
    record = pair(3, 4)[0 if mode == "on" else 1]
    assert render_conversation(tokenizer, conversation(record), "all") == render_conversation(
        tokenizer, conversation(record), "last"
    )


def test_tool_calls_and_tool_results_are_rendered_into_the_ids(tokenizer):
    record = tool_record(answer_calls=False)
    call = record.input[1]["tool_calls"][0]["function"]
    result = record.input[2]["content"]
    expected_call = json.dumps({"name": call["name"], "arguments": json.loads(call["arguments"])})
    ids, mask = render_conversation(tokenizer, conversation(record), "all")
    text = tokenizer.decode(ids, skip_special_tokens=False)
    assert f"<|assistant|>{expected_call}<|end|>" in text  # the call, as JSON inside the assistant turn
    assert f"<|tool|>{result}<|end|>" in text  # the tool's result, in its own turn
    learned = decode(tokenizer, ids, mask)
    assert learned == f"{expected_call}<|end|>The answer is 7.<|end|>"  # the call is learned, the result not
    _, mask_last = render_conversation(tokenizer, conversation(record), "last")
    assert decode(tokenizer, ids, mask_last) == "The answer is 7.<|end|>"


def test_the_answers_own_tool_calls_are_its_target(tokenizer):
    record = tool_record(answer_calls=True)
    call = record.tool_calls[0]["function"]
    expected_call = json.dumps({"name": call["name"], "arguments": json.loads(call["arguments"])})
    ids, mask = render_conversation(tokenizer, conversation(record), "last")
    assert decode(tokenizer, ids, mask) == f"{expected_call}<|end|>"
    # without the calls on the message the answer would be empty: the template did render them
    bare = [*conversation(record)[:-1], {"role": "assistant", "content": ""}]
    assert len(render_conversations(tokenizer, [bare])[0][0]) < len(ids)


def write_records(folder: Path, records: list[Record]) -> Path:
    folder.mkdir(parents=True)
    with ShardWriter(folder, RECORD_SCHEMA) as writer:  # internal records: they keep tool calls
        for record in records:
            writer.write(record_to_arrow_row(record))
    return folder


def test_the_setting_reaches_the_streamed_examples_and_training(tmp_path, tokenizer):
    records = [multi_turn(), tool_record(answer_calls=False), tool_record(answer_calls=True), *pair(1, 2)]
    data = write_records(tmp_path / "data", records)
    for turns in ("all", "last"):
        (_, examples), *_ = windows([data], tokenizer, seq_len=512, window_tokens=10**6, assistant_turns=turns)
        expected = render_conversations(tokenizer, [conversation(r) for r in records], turns)
        assert [(list(e.ids), list(e.mask)) for e in examples] == expected
    # a tiny model trained from scratch on them: its tokenizer learns the tool-call text, every record is kept
    config = replace(TINY, seq_len=256, max_steps=2, save_every=0, log_every=1, assistant_turns="last")
    stats = run_train(config, [data], tmp_path / "run")
    assert stats.kept == len(records) and stats.n_dropped == 0
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["config"]["assistant_turns"] == "last" and summary["steps"] == 2


def test_an_unknown_assistant_turns_is_refused_by_name():
    with pytest.raises(ValueError, match="train.assistant_turns: expected one of all, last, got 'first'"):
        TrainConfig(assistant_turns="first")  # type: ignore[arg-type]
