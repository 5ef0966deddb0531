"""The trainer's data, streamed: records → chat-rendered token ids + assistant mask → shuffled, packed rows.

Memory is bounded by a token window, not by the dataset: records are read in file order and tokenized until
the window holds `shuffle_tokens` tokens; the window is shuffled (on and off examples mixed), packed into rows
of `seq_len`, the rows shuffled and grouped into micro-batches, then the next window is read. Data that fits
one window (the demo's) is tokenized once and kept across epochs.

Every micro-batch has a position, (epoch, first record of its window, window number, next batch): a pure
function of the seed and the data, so a run resumed from a checkpoint re-reads to that window and sees
exactly the batches it would have seen.
"""

from __future__ import annotations

import json
import random
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from thinktoggle.schemas.io import iter_records
from thinktoggle.schemas.record import Record

IGNORE = -100  # label of tokens that carry no loss
RENDER_BATCH = 1024  # records per batched tokenizer call
AssistantTurns = Literal["all", "last"]  # which assistant turns of a conversation carry the loss


@dataclass(frozen=True)
class Example:
    ids: Sequence[int]  # array('i') in the stream: 4 bytes a token, not a Python int's 28
    mask: Sequence[int]  # 1 on the assistant's tokens (bytes in the stream)
    reasoning: str


# ------------------------------------------------------------------------------------------- rendering


def conversation(record: Record) -> list[dict[str, Any]]:
    """System prompt (the mode's), prompt turns, then the answer as the last assistant turn; assistant turns
    carry their `tool_calls` (the answer its own) where they have any, `tool` turns are the tools' results."""
    answer: dict[str, Any] = {"role": "assistant", "content": record.output}
    if record.tool_calls:
        answer["tool_calls"] = record.tool_calls
    return [template_turn(m) for m in [*record.chat_messages(), answer]]


def template_turn(message: dict[str, Any]) -> dict[str, Any]:
    """A turn as chat templates take it: a tool call's `arguments` as a dict where it is a JSON object string
    (the stored OpenAI form), since templates write it with `tojson` (transformers' documented form)."""
    if not message.get("tool_calls"):
        return message
    calls = []
    for call in message["tool_calls"]:
        arguments = call["function"]["arguments"]
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments)
            except ValueError:
                parsed = None
            arguments = parsed if isinstance(parsed, dict) else arguments
        calls.append({**call, "function": {**call["function"], "arguments": arguments}})
    return {**message, "tool_calls": calls}


def assistant_spans(
    tokenizer, messages: list[dict[str, Any]], assistant_turns: AssistantTurns = "all"
) -> tuple[str, list[tuple[int, int]]]:
    """The conversation's text, and the character spans of its assistant turns (their end token included):
    every one, or with `assistant_turns="last"` the last one only (earlier turns are context, not targets).

    Works with any chat template that renders prefixes consistently: an assistant turn is what lies between
    the rendering of the turns before it (with the generation prompt) and the rendering through it.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    turns = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    if not turns:
        raise ValueError("conversation has no assistant turn")
    spans = []
    for i in turns[-1:] if assistant_turns == "last" else turns:
        before = tokenizer.apply_chat_template(messages[:i], add_generation_prompt=True, tokenize=False)
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (through.startswith(before) and text.startswith(through)):
            raise ValueError("the chat template does not render prefixes consistently; cannot mask assistant turns")
        spans.append((len(before), len(through)))
    return text, spans


def render_conversations(
    tokenizer, conversations: list[list[dict[str, Any]]], assistant_turns: AssistantTurns = "all"
) -> list[tuple[list[int], list[int]]]:
    """For each conversation: token ids and a mask that is 1 on the assistant's tokens (loss is taken there):
    every assistant turn's, or the last one's only (`assistant_turns`).

    One batched tokenizer call (the Rust tokenizer does the work); a token belongs to the assistant when it
    starts inside an assistant span, and every span must start on a token boundary.
    """
    rendered = [assistant_spans(tokenizer, messages, assistant_turns) for messages in conversations]
    encoded = tokenizer([text for text, _ in rendered], add_special_tokens=False, return_offsets_mapping=True)
    results = []
    for (_, spans), ids, offsets in zip(rendered, encoded["input_ids"], encoded["offset_mapping"], strict=True):
        starts = {start for start, _ in offsets}
        if any(start not in starts for start, _ in spans):
            raise ValueError("an assistant turn does not start on a token boundary; cannot mask it")
        mask = [int(any(lo <= start < hi for lo, hi in spans)) for start, _ in offsets]
        results.append((list(ids), mask))
    return results


def render_conversation(
    tokenizer, messages: list[dict[str, Any]], assistant_turns: AssistantTurns = "all"
) -> tuple[list[int], list[int]]:
    """Token ids of one conversation and its assistant-token mask (see `render_conversations`)."""
    return render_conversations(tokenizer, [messages], assistant_turns)[0]


# ---------------------------------------------------------------------------------------------- reading


def usable_records(inputs: list[Path], outputs: Any = None) -> Iterator[tuple[Record, str]]:
    """(record, where it was read) for records with an answer to learn from, in file order. With `outputs`
    (StageOutputs: the accounting pass), unreadable rows are failed and empty answers dropped there."""
    for read, record in iter_records(inputs):
        if record is None:
            if outputs is not None:
                outputs.fail_read(read)
        elif not record.output.strip() and not record.tool_calls:  # an answer that only calls tools is one
            if outputs is not None:
                outputs.drop(record, "empty_output", "nothing to learn from", read.where)
        else:
            yield record, read.where


def windows(
    inputs: list[Path],
    tokenizer,
    seq_len: int,
    window_tokens: int,
    skip: int = 0,
    outputs: Any = None,
    assistant_turns: AssistantTurns = "all",
) -> Iterator[tuple[int, list[Example]]]:
    """(index of the window's first usable record, its examples), `window_tokens` tokens at a time, from the
    `skip`-th usable record on. Examples longer than `seq_len` are left out; with `outputs` they are dropped
    there and the others kept, so that one pass is also the stage's accounting."""
    records = islice(usable_records(inputs, outputs), skip, None)
    first, window, tokens = skip, [], 0
    n = skip  # usable records read so far
    while chunk := list(islice(records, RENDER_BATCH)):
        rendered = render_conversations(tokenizer, [conversation(record) for record, _ in chunk], assistant_turns)
        for (record, where), (ids, mask) in zip(chunk, rendered, strict=True):
            n += 1
            if len(ids) > seq_len:
                if outputs is not None:
                    outputs.drop(record, "longer_than_seq_len", f"{len(ids)} tokens > seq_len {seq_len}", where)
                continue
            if outputs is not None:
                outputs.keep(record)
            window.append(Example(array("i", ids), bytes(mask), record.reasoning))
            tokens += len(ids)
            if tokens >= window_tokens:
                yield first, window
                first, window, tokens = n, [], 0
    if window:
        yield first, window


# --------------------------------------------------------------------------------------- packing, batches


def pack_rows(examples: list[Example], seq_len: int, packing: bool) -> list[list[Example]]:
    """Rows of examples whose total length fits `seq_len`: greedy, in the given (shuffled) order."""
    rows: list[list[Example]] = []
    used = seq_len + 1
    for example in examples:
        if not packing or used + len(example.ids) > seq_len:
            rows.append([])
            used = 0
        rows[-1].append(example)
        used += len(example.ids)
    return rows


def collate(rows: list[list[Example]], seq_len: int, pad_id: int):
    """input_ids, labels (next token where it is an assistant token, else IGNORE) and position ids that
    restart at every example (the padding tail is one more 'example'), all [len(rows), seq_len]."""
    import torch

    input_ids, labels, positions = [], [], []
    for row in rows:
        ids, lab, pos = [], [], []
        for ex in row:
            ids += ex.ids
            # label[t] = ids[t+1] where t+1 is an assistant token of the same example; the last token of an
            # example predicts nothing (the next example's first token is not its continuation)
            lab += [ex.ids[t + 1] if ex.mask[t + 1] else IGNORE for t in range(len(ex.ids) - 1)] + [IGNORE]
            pos += list(range(len(ex.ids)))
        pad = seq_len - len(ids)
        input_ids.append(ids + [pad_id] * pad)
        labels.append(lab + [IGNORE] * pad)
        positions.append(pos + list(range(pad)))
    return torch.tensor(input_ids), torch.tensor(labels), torch.tensor(positions)


def window_batches(
    examples: list[Example], seq_len: int, packing: bool, rows_per_batch: int, seed: int, epoch: int, window: int
) -> list[list[list[Example]]]:
    """One window's micro-batches: the examples shuffled (on and off mixed), packed, rows shuffled, grouped.
    Window 0 keeps the seed of the in-memory trainer this replaced, so data that fits one window trains as
    it did."""
    rng = random.Random(f"{seed}/{epoch}" + (f"/{window}" if window else ""))
    order = examples[:]
    rng.shuffle(order)
    rows = pack_rows(order, seq_len, packing)
    rng.shuffle(rows)
    return [rows[i : i + rows_per_batch] for i in range(0, len(rows), rows_per_batch)]


Position = tuple[int, int, int, int]  # (epoch, first record of the window, window number, next batch in it)


def micro_batches(
    inputs: list[Path],
    tokenizer,
    *,
    seq_len: int,
    packing: bool,
    rows_per_batch: int,
    seed: int,
    window_tokens: int,
    start: Position = (0, 0, 0, 0),
    whole: list[Example] | None = None,
    assistant_turns: AssistantTurns = "all",
) -> Iterator[tuple[Position, list[list[Example]]]]:
    """(position of the next micro-batch, micro-batch) forever, from `start`. `whole`: the examples when the
    caller already knows the data fits one window (the accounting pass read it), so it is not re-read."""
    epoch, first, window_no, index = start
    while True:
        if whole is not None:
            source: Iterator[tuple[int, list[Example]]] = iter([(0, whole)])
        else:
            source = windows(inputs, tokenizer, seq_len, window_tokens, skip=first, assistant_turns=assistant_turns)
        seen = 0
        for w, (first, examples) in enumerate(source, start=window_no):
            seen += 1
            batches = window_batches(examples, seq_len, packing, rows_per_batch, seed, epoch, w)
            for i in range(index, len(batches)):
                yield (epoch, first, w, i + 1), batches[i]
            index = 0
        if whole is None and seen == 1 and window_no == 0:
            whole = examples  # the whole data was one window: keep it for the next epochs
        if seen == 0 and window_no == 0:
            raise ValueError("train: no example fits seq_len")
        epoch, first, window_no = epoch + 1, 0, 0
