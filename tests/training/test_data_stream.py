"""The streamed data: windows of tokens cover every example once an epoch, stay near their token budget, mix
on and off examples, and a stream restarted from any position continues with exactly the same batches."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import replace
from itertools import islice
from pathlib import Path

import pytest
from test_trainer import TINY, write_dataset

from thinktoggle.training.data import conversation, micro_batches, render_conversations, usable_records, windows
from thinktoggle.training.trainer import run_train


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("stream") / "data", n=48)  # 96 examples, ~60 tokens each


def every_example(data: Path, tokenizer) -> Counter:
    records = [r for r, _ in usable_records([data])]
    return Counter(tuple(ids) for ids, _ in render_conversations(tokenizer, [conversation(r) for r in records]))


def stream(data: Path, tokenizer, start=(0, 0, 0, 0)):
    return micro_batches(
        [data], tokenizer, seq_len=128, packing=True, rows_per_batch=3, seed=0, window_tokens=700, start=start
    )


def test_windows_cover_every_example_once_within_their_token_budget(data, tokenizer):
    seen: Counter = Counter()
    firsts = []
    for first, examples in windows([data], tokenizer, seq_len=128, window_tokens=700):
        firsts.append(first)
        tokens = sum(len(e.ids) for e in examples)
        assert tokens < 700 + max(len(e.ids) for e in examples)  # one example past the budget at most
        seen.update(tuple(e.ids) for e in examples)
    assert seen == every_example(data, tokenizer) and len(firsts) > 5 and firsts == sorted(firsts)


def test_an_epoch_of_batches_trains_on_every_example_once_with_on_and_off_mixed(data, tokenizer):
    seen: Counter = Counter()
    mixed_rows = 0
    for (epoch, _, _, _), batch in stream(data, tokenizer):
        if epoch > 0:
            break
        for row in batch:
            seen.update(tuple(e.ids) for e in row)
            mixed_rows += len({e.reasoning for e in row}) == 2
    assert seen == every_example(data, tokenizer)
    assert mixed_rows > 5  # the file holds each prompt's on and off answers side by side; rows mix them anyway


def test_a_stream_restarted_at_any_position_continues_with_the_same_batches(data, tokenizer):
    def ids(batch):
        return [[tuple(e.ids) for e in row] for row in batch]

    reference = [(pos, ids(batch)) for pos, batch in islice(stream(data, tokenizer), 30)]  # > 2 epochs
    assert len({pos[0] for pos, _ in reference}) >= 2 and len({pos[2] for pos, _ in reference}) > 5
    for k in (0, 3, 11, len(reference) // 2, len(reference) - 5):
        resumed = islice(stream(data, tokenizer, start=reference[k][0]), 4)
        assert [ids(batch) for _, batch in resumed] == [b for _, b in reference[k + 1 : k + 5]], k


def test_the_trainer_resumes_exactly_across_windows(data, tmp_path):
    """A checkpoint taken mid-data with many windows: the rerun reproduces the uninterrupted weights."""
    import torch
    from safetensors.torch import load_file

    config = replace(TINY, shuffle_tokens=700, max_steps=16, save_every=8, log_every=4)
    run_train(config, [data], tmp_path / "full")
    state = json.loads((tmp_path / "full" / "checkpoints" / "step-000008" / "trainer_state.json").read_text())
    assert state["next_batch"][2] > 0  # the checkpoint is past the first window
    shutil.copytree(
        tmp_path / "full" / "checkpoints" / "step-000008", tmp_path / "resumed" / "checkpoints" / "step-000008"
    )
    run_train(config, [data], tmp_path / "resumed")
    a, b = (load_file(tmp_path / run / "model" / "model.safetensors") for run in ("full", "resumed"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
