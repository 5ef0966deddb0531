"""The trainer on a real tiny Llama: rendering + assistant mask, packing without leakage, loss going down,
HF checkpoints that transformers reloads, and an exact resume."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from thinktoggle.schemas.arrow import PUBLISHED_SCHEMA
from thinktoggle.schemas.convert import record_to_row
from thinktoggle.schemas.io import ShardWriter
from thinktoggle.schemas.record import Record
from thinktoggle.schemas.think import compose_output, system_prompt_for
from thinktoggle.training.data import IGNORE, Example, collate, conversation, pack_rows, render_conversation
from thinktoggle.training.trainer import TinyModelConfig, TrainConfig, run_train


def pair(a: int, b: int) -> list[Record]:
    """One prompt answered in both modes, as the procedural teacher would."""
    prompt = [{"role": "user", "content": f"What is {a} + {b}?"}]
    on = Record(input=prompt, category="math", reasoning="on", expected_answer=str(a + b), generator="test")
    on = on.with_output(compose_output(f"{a} + {b} = {a + b}", f"\\boxed{{{a + b}}}"))
    off = replace(on, reasoning="off", system_prompt=system_prompt_for("off")).with_output(f"\\boxed{{{a + b}}}")
    return [on, off]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("mode", ["on", "off"])
def test_render_masks_the_assistant_answer_only(tokenizer, mode):
    record = pair(3, 4)[0 if mode == "on" else 1]
    ids, mask = render_conversation(tokenizer, conversation(record))
    assert len(ids) == len(mask)
    answer = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m], skip_special_tokens=False)
    prompt = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m], skip_special_tokens=False)
    assert answer == record.output + "<|end|>"  # the end token is learned: the model must stop
    assert f"<|system|>detailed thinking {mode}<|end|>" in prompt  # the system prompt is rendered
    assert "What is 3 + 4?" in prompt and record.output not in prompt
    assert mask[-1] == 1 and mask[0] == 0 and ("<think>" in answer) == (mode == "on")


def test_render_masks_every_assistant_turn_of_a_multi_turn_conversation(tokenizer):
    messages = [
        {"role": "system", "content": "detailed thinking off"},
        {"role": "user", "content": "1 + 1?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "and 2 + 2?"},
        {"role": "assistant", "content": "4"},
    ]
    ids, mask = render_conversation(tokenizer, messages)
    spans = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m], skip_special_tokens=False)
    assert spans == "2<|end|>4<|end|>"


def test_packed_examples_do_not_attend_to_each_other(tiny_model_dir, tokenizer):
    """A packed row's logits for each example equal the logits of that example alone."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    examples = [Example(*render_conversation(tokenizer, conversation(r)), r.reasoning) for r in pair(5, 6) + pair(7, 1)]
    rows = pack_rows(examples, seq_len=256, packing=True)
    assert len(rows) == 1 and len(rows[0]) == 4  # all four share one row, on and off mixed
    input_ids, labels, positions = collate(rows, 256, tokenizer.pad_token_id)
    with torch.no_grad():
        packed = model(input_ids=input_ids, position_ids=positions, use_cache=False).logits[0]
        offset = 0
        for ex in examples:
            alone = model(input_ids=torch.tensor([ex.ids]), use_cache=False).logits[0]
            torch.testing.assert_close(packed[offset : offset + len(ex.ids)], alone, atol=1e-4, rtol=1e-4)
            offset += len(ex.ids)
    # labels: next token on assistant tokens only; nothing crosses from one example into the next
    offset = 0
    for ex in examples:
        row_labels = labels[0, offset : offset + len(ex.ids)].tolist()
        expected = [ex.ids[t + 1] if ex.mask[t + 1] else IGNORE for t in range(len(ex.ids) - 1)] + [IGNORE]
        assert row_labels == expected
        offset += len(ex.ids)
    assert set(labels[0, offset:].tolist()) == {IGNORE}  # padding carries no loss


def test_packing_off_gives_one_example_per_row(tokenizer):
    examples = [Example([1, 2, 3], [0, 1, 1], "on")] * 3
    assert [len(r) for r in pack_rows(examples, 16, packing=False)] == [1, 1, 1]
    assert [len(r) for r in pack_rows(examples, 7, packing=True)] == [2, 1]


def write_dataset(folder: Path, n: int = 48) -> Path:
    with ShardWriter(folder, PUBLISHED_SCHEMA) as writer:
        for i in range(n):
            for record in pair(i % 10, (i * 7) % 10):
                writer.write(record_to_row(record))
    return folder


TINY = TrainConfig(
    tiny=TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, vocab_size=300),
    seq_len=128,
    batch_size=4,
    max_steps=40,
    lr=3e-3,
    warmup_steps=5,
    save_every=20,
    log_every=5,
    progress=False,
    threads=1,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    data = write_dataset(root / "data")
    run_train(TINY, [data], root / "run")
    return root


def test_training_lowers_the_loss_and_writes_a_hf_checkpoint(trained):
    run = trained / "run"
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < 0.6 * log[0]["loss"]
    stats = json.loads((run / "stats.json").read_text())
    assert stats["in"] == 96 and stats["kept"] == 96
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["examples_on"] == summary["examples_off"] == 48 and summary["tokens_per_s"] > 0
    for name in ("model.safetensors", "config.json", "tokenizer.json", "generation_config.json"):
        assert (run / "model" / name).exists(), name
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000020"]


def test_checkpoint_reloads_in_transformers_and_generates(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = trained / "run" / "model"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    # the saved chat template keeps the toggle: no system turn + enable_thinking renders Nemotron's prompt
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}],
        add_generation_prompt=True,
        tokenize=False,
        enable_thinking=True,
    )
    assert text.startswith("<|system|>detailed thinking on<|end|>") and text.endswith("<|assistant|>")
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_resume_from_a_checkpoint_reproduces_the_uninterrupted_run(trained, tmp_path):
    """Kill after step 20 (simulated: only the step-20 checkpoint exists) and rerun: same final weights."""
    from safetensors.torch import load_file

    resumed = tmp_path / "run"
    shutil.copytree(trained / "run" / "checkpoints" / "step-000020", resumed / "checkpoints" / "step-000020")
    run_train(TINY, [trained / "data"], resumed)
    a = load_file(trained / "run" / "model" / "model.safetensors")
    b = load_file(resumed / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max() < 1e-5, key
    first_resumed_step = json.loads((resumed / "metrics.jsonl").read_text().splitlines()[0])["step"]
    assert first_resumed_step == 25  # steps 1-20 were not redone


def test_rerun_of_a_finished_run_does_nothing(trained):
    before = (trained / "run" / "model" / "model.safetensors").stat().st_mtime_ns
    run_train(TINY, [trained / "data"], trained / "run")
    assert (trained / "run" / "model" / "model.safetensors").stat().st_mtime_ns == before


def test_unreadable_rows_are_counted_and_named(tmp_path):
    import polars as pl

    data = write_dataset(tmp_path / "data", n=8)
    (data / "bad.jsonl").write_text('{"input": "not a list"}\n')
    stats = run_train(replace(TINY, max_steps=2, save_every=0), [data], tmp_path / "run")
    assert stats.n_in == 17 and stats.kept == 16 and stats.n_failed == 1
    failed = pl.read_parquet(tmp_path / "run" / "failed")
    assert failed["source"].to_list() == [f"{data / 'bad.jsonl'}:1"] and failed["stage"][0] == "train"
    assert not (tmp_path / "run" / "kept").exists()  # the kept examples are the input itself: not copied


@pytest.mark.parametrize(
    "options", [{"gradient_checkpointing": True}, {"attn_implementation": "eager"}, {"loss_kernel": "full"}]
)
def test_memory_options_train_the_same_model(trained, tmp_path, options):
    """Gradient checkpointing, another attention kernel, the full logits: the same weights after 6 steps."""
    import torch
    from safetensors.torch import load_file

    short = replace(TINY, max_steps=6, save_every=0)
    reference = tmp_path / "reference"
    run_train(short, [trained / "data"], reference)
    run_train(replace(short, **options), [trained / "data"], tmp_path / "run")
    a = load_file(reference / "model" / "model.safetensors")
    b = load_file(tmp_path / "run" / "model" / "model.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    saved = json.loads((tmp_path / "run" / "train_summary.json").read_text())["config"]
    assert all(saved[k] == v for k, v in options.items())


@pytest.mark.parametrize(
    ("field", "value"), [("loss_kernel", "fused"), ("attn_implementation", "flash"), ("precision", "fp16")]
)
def test_an_unknown_choice_is_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"train.{field}: expected one of .*, got '{value}'"):
        TrainConfig(**{field: value})
