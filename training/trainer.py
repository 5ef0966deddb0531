"""The SFT trainer, top to bottom: data → tokens + assistant mask → packed batches → AdamW → HF checkpoints.

    read records (published rows or internal records)
    → model + tokenizer: a Hugging Face checkpoint folder, or a tiny Llama built from a config with a
      tokenizer trained on the data (training/tiny.py)
    → render every conversation with the chat template, system prompt included, into ids + a mask that is
      1 on the assistant's tokens only (the loss is taken there)
    → shuffle (on and off examples mixed) and pack short examples into rows of `seq_len`
    → AdamW, linear warmup then cosine decay, gradient accumulation and clipping
    → checkpoints in Hugging Face format (safetensors, tokenizer, chat template) that transformers and vLLM
      load; a rerun resumes from the last one.

Packing: examples share a row but never attend to each other. Each example's position ids restart at 0 and
no attention mask is passed; transformers then builds a block-diagonal causal mask from the position-id
resets (`masking_utils.find_packed_sequence_indices`), for eager, sdpa and flex attention alike.
`tests/training/test_trainer.py` checks that a packed example's logits equal those of the example alone.

Precision: fp32 on CPU; bf16 autocast on GPU (master weights and optimizer state stay fp32).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from thinktoggle.core.outputs import StageOutputs, clear_partial
from thinktoggle.core.stats import StageStats
from thinktoggle.schemas.io import atomic_write_text, iter_records
from thinktoggle.schemas.record import Record

IGNORE = -100  # label of tokens that carry no loss


@dataclass(frozen=True)
class TinyModelConfig:
    """A from-scratch Llama (used when `TrainConfig.model` is empty). head_dim = hidden_size / num_heads >= 32
    so that vLLM's CPU attention kernel can serve it."""

    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 2
    intermediate_size: int = 256
    rope_theta: float = 100.0
    vocab_size: int = 512  # BPE size of the tokenizer trained on the data
    max_position_embeddings: int = 512


@dataclass(frozen=True)
class TrainConfig:
    """The `train:` section of a recipe. Steps are optimizer steps; a batch is `batch_size` packed rows of
    `seq_len` tokens per micro-step, times `grad_accum` micro-steps."""

    model: str = ""  # a Hugging Face checkpoint folder to fine-tune; "" = a tiny Llama built from `tiny`
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    seq_len: int = 256
    batch_size: int = 8
    grad_accum: int = 1
    max_steps: int = 1000
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0: no clipping
    packing: bool = True
    seed: int = 0
    save_every: int = 500  # steps between checkpoints (0: only the final model)
    keep_checkpoints: int = 2
    log_every: int = 10
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads (0: torch's default)
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("seq_len", "batch_size", "grad_accum", "max_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name}: must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(
                f"train.lr must be > 0 and train.min_lr_ratio in [0, 1], got {self.lr}, {self.min_lr_ratio}"
            )
        if self.warmup_steps < 0 or self.save_every < 0 or self.keep_checkpoints < 1:
            raise ValueError("train.warmup_steps and train.save_every must be >= 0, train.keep_checkpoints >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device: expected auto, cpu or cuda, got {self.device!r}")


# ------------------------------------------------------------------------------------------------- the data


def read_examples(inputs: list[Path], outputs: StageOutputs) -> list[tuple[Record, str]]:
    """Records with an answer to learn from, with where each was read. Unreadable rows fail, empty outputs are
    dropped: both written with their reasons (outputs)."""
    records = []
    for read, record in iter_records(inputs):
        if record is None:
            outputs.fail_read(read)
        elif not record.output.strip():
            outputs.drop(record, "empty_output", "nothing to learn from", read.where)
        else:
            records.append((record, read.where))
    return records


def conversation(record: Record) -> list[dict[str, str]]:
    """System prompt (the mode's), prompt turns, then the answer as the last assistant turn."""
    return [*record.chat_messages(), {"role": "assistant", "content": record.output}]


def assistant_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The conversation's text, and the character spans of its assistant turns (their end token included).

    Works with any chat template that renders prefixes consistently: an assistant turn is what lies between
    the rendering of the turns before it (with the generation prompt) and the rendering through it.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:i], add_generation_prompt=True, tokenize=False)
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (through.startswith(before) and text.startswith(through)):
            raise ValueError("the chat template does not render prefixes consistently; cannot mask assistant turns")
        spans.append((len(before), len(through)))
    if not spans:
        raise ValueError("conversation has no assistant turn")
    return text, spans


def render_conversations(tokenizer, conversations: list[list[dict[str, str]]]) -> list[tuple[list[int], list[int]]]:
    """For each conversation: token ids and a mask that is 1 on the assistant's tokens (loss is taken there).

    One batched tokenizer call (the Rust tokenizer does the work); a token belongs to the assistant when it
    starts inside an assistant span, and every span must start on a token boundary.
    """
    rendered = [assistant_spans(tokenizer, messages) for messages in conversations]
    encoded = tokenizer([text for text, _ in rendered], add_special_tokens=False, return_offsets_mapping=True)
    results = []
    for (_, spans), ids, offsets in zip(rendered, encoded["input_ids"], encoded["offset_mapping"], strict=True):
        starts = {start for start, _ in offsets}
        if any(start not in starts for start, _ in spans):
            raise ValueError("an assistant turn does not start on a token boundary; cannot mask it")
        mask = [int(any(lo <= start < hi for lo, hi in spans)) for start, _ in offsets]
        results.append((list(ids), mask))
    return results


def render_conversation(tokenizer, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids of one conversation and its assistant-token mask (see `render_conversations`)."""
    return render_conversations(tokenizer, [messages])[0]


@dataclass(frozen=True)
class Example:
    ids: list[int]
    mask: list[int]
    reasoning: str


def tokenize_examples(
    tokenizer, records: list[tuple[Record, str]], seq_len: int, outputs: StageOutputs
) -> list[Example]:
    examples = []
    rendered = render_conversations(tokenizer, [conversation(r) for r, _ in records])
    for (record, where), (ids, mask) in zip(records, rendered, strict=True):
        if len(ids) > seq_len:
            outputs.drop(record, "longer_than_seq_len", f"{len(ids)} tokens > seq_len {seq_len}", where)
            continue
        outputs.keep(record)
        examples.append(Example(ids, mask, record.reasoning))
    return examples


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


def batches(examples: list[Example], config: TrainConfig, epoch: int) -> list[list[list[Example]]]:
    """One epoch's micro-batches: the examples shuffled (on and off mixed), packed, rows shuffled, grouped."""
    rng = random.Random(f"{config.seed}/{epoch}")
    order = examples[:]
    rng.shuffle(order)
    rows = pack_rows(order, config.seq_len, config.packing)
    rng.shuffle(rows)
    return [rows[i : i + config.batch_size] for i in range(0, len(rows), config.batch_size)]


def micro_batches(
    examples: list[Example], config: TrainConfig, start: tuple[int, int]
) -> Iterator[tuple[int, int, Any]]:
    """(epoch, index, micro-batch) forever, from `start` = (epoch, index): a pure function of the seed, so a
    resumed run sees exactly the batches it would have seen."""
    epoch, index = start
    while True:
        epoch_batches = batches(examples, config, epoch)
        for i in range(index, len(epoch_batches)):
            yield epoch, i, epoch_batches[i]
        epoch, index = epoch + 1, 0


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup to `lr`, then cosine decay to `lr * min_lr_ratio` at `max_steps`."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


# ---------------------------------------------------------------------------------------- model + checkpoints


def tokenizer_texts(records: list[Record]) -> Iterator[str]:
    """What the tiny tokenizer is trained on: every message of every conversation."""
    for record in records:
        for message in conversation(record):
            yield message["content"]


def build_or_load(config: TrainConfig, records: list[Record], checkpoint: Path | None):
    """(model, tokenizer): from the checkpoint being resumed, the configured folder, or built tiny."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from thinktoggle.training.tiny import build_tiny_llama, train_tokenizer

    source = checkpoint or (Path(config.model) if config.model else None)
    if source is not None:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype="float32")
        return model, tokenizer
    tiny = config.tiny
    tokenizer = train_tokenizer(tokenizer_texts(records), vocab_size=tiny.vocab_size)
    model = build_tiny_llama(
        tokenizer,
        hidden_size=tiny.hidden_size,
        num_layers=tiny.num_layers,
        num_heads=tiny.num_heads,
        intermediate_size=tiny.intermediate_size,
        max_position_embeddings=max(tiny.max_position_embeddings, config.seq_len),
        rope_theta=tiny.rope_theta,
        seed=config.seed,
    )
    return model, tokenizer


def save_model(model, tokenizer, folder: Path, extra: dict[str, Any] | None = None) -> Path:
    """Save in Hugging Face format (safetensors + tokenizer + chat template), atomically: written to a hidden
    folder, then renamed, so a folder under its final name is always complete."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    for name, payload in (extra or {}).items():
        if name.endswith(".pt"):
            import torch

            torch.save(payload, tmp / name)
        else:
            (tmp / name).write_text(json.dumps(payload, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def checkpoint_dirs(out_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = out_dir / "checkpoints"
    return sorted(p for p in root.glob("step-*") if (p / "trainer_state.json").exists()) if root.exists() else []


# ------------------------------------------------------------------------------------------------- training


def run_train(config: TrainConfig, inputs: list[Path], out_dir: Path, executor: Any = None) -> StageStats:
    """Train on the records under `inputs`; write `out_dir/model` (HF format), checkpoints, logs, stats.

    Rerun into the same `out_dir`: a finished run is left as it is; an interrupted one resumes from its last
    checkpoint. `executor` is accepted for the Stage API and unused: training is one process.
    """
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    out_dir = Path(out_dir)
    final_dir = out_dir / "model"
    if (out_dir / "stats.json").exists() and (final_dir / "config.json").exists():
        return StageStats.read(out_dir / "stats.json")
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = "cuda" if config.device == "auto" and torch.cuda.is_available() else config.device
    device = "cpu" if device == "auto" else device

    resume = checkpoint_dirs(out_dir)[-1] if checkpoint_dirs(out_dir) else None
    clear_partial(out_dir, "part")  # the dropped/ and failed/ of an interrupted run: rewritten below
    with StageOutputs(out_dir, "train", write_kept=False) as outputs:
        records = read_examples([Path(p) for p in inputs], outputs)
        if not records:
            raise ValueError(f"train: no usable records in {[str(p) for p in inputs]}")
        model, tokenizer = build_or_load(config, [r for r, _ in records], resume)
        examples = tokenize_examples(tokenizer, records, config.seq_len, outputs)
    stats = outputs.stats
    if not examples:
        raise ValueError(f"train: every example is longer than seq_len={config.seq_len}")
    model.to(device).train()
    n_params = sum(p.numel() for p in model.parameters())

    # AdamW; no weight decay on norms and biases (1-d tensors)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        fused=device == "cuda",
    )
    step, position = 0, (0, 0)
    if resume is not None:
        state = json.loads((resume / "trainer_state.json").read_text())
        optimizer.load_state_dict(torch.load(resume / "optimizer.pt", map_location=device))
        step, position = state["step"], tuple(state["next_batch"])
        print(f"train: resuming from {resume} (step {step})")
    torch.manual_seed(config.seed + step)

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    )
    stream = micro_batches(examples, config, position)
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )  # padding carries no loss
    log_path = out_dir / "train_log.jsonl"
    started, tokens_seen, loss_value = time.perf_counter(), 0, float("nan")
    # Redrawn live on a terminal; in a log file (Slurm, `make demo > log`) one line every 30 s instead of ten a second.
    refresh_s = 0.1 if sys.stderr.isatty() else 30.0
    bar = tqdm(
        total=config.max_steps,
        initial=step,
        desc="train",
        unit="step",
        disable=not config.progress,
        mininterval=refresh_s,
    )
    while step < config.max_steps:
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        micro = []
        for _ in range(config.grad_accum):
            epoch, index, rows = next(stream)
            micro.append(collate(rows, config.seq_len, pad_id))
            tokens_seen += sum(len(ex.ids) for row in rows for ex in row)  # real tokens, padding not counted
            position = (epoch, index + 1)
        # normalise by the assistant tokens of the whole step, so accumulation equals one large batch
        n_targets = sum(int((labels != IGNORE).sum()) for _, labels, _ in micro)
        loss_sum = 0.0
        for input_ids, labels, positions in micro:
            input_ids, labels, positions = input_ids.to(device), labels.to(device), positions.to(device)
            with autocast:
                logits = model(input_ids=input_ids, position_ids=positions, use_cache=False).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
            (loss / max(1, n_targets)).backward()
            loss_sum += loss.item()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss_value = loss_sum / max(1, n_targets)
        elapsed = time.perf_counter() - started
        bar.update(1)
        if step % config.log_every == 0 or step == config.max_steps:
            tok_s = tokens_seen / max(elapsed, 1e-9)
            bar.set_postfix(loss=f"{loss_value:.4f}", tok_s=f"{tok_s:,.0f}", lr=f"{lr:.2e}", refresh=False)
            with log_path.open("a") as log:
                log.write(json.dumps({"step": step, "loss": loss_value, "lr": lr, "tokens_per_s": tok_s}) + "\n")
        if config.save_every and step % config.save_every == 0 and step < config.max_steps:
            state = {"step": step, "next_batch": list(position), "loss": loss_value, "config": asdict(config)}
            save_model(
                model,
                tokenizer,
                out_dir / "checkpoints" / f"step-{step:06d}",
                {"optimizer.pt": optimizer.state_dict(), "trainer_state.json": state},
            )
            for old in checkpoint_dirs(out_dir)[: -config.keep_checkpoints]:
                shutil.rmtree(old)
    bar.close()

    elapsed = time.perf_counter() - started
    model.to("cpu")
    save_model(model, tokenizer, final_dir)
    summary = {
        "steps": step,
        "final_loss": loss_value,
        "parameters": n_params,
        "examples": len(examples),
        "examples_on": sum(e.reasoning == "on" for e in examples),
        "examples_off": sum(e.reasoning == "off" for e in examples),
        "tokens_trained": tokens_seen,
        "seconds": round(elapsed, 2),
        "tokens_per_s": round(tokens_seen / max(elapsed, 1e-9), 1),
        "device": device,
        "model_dir": str(final_dir),
        "config": asdict(config),
    }
    atomic_write_text(json.dumps(summary, indent=2) + "\n", out_dir / "train_summary.json")
    stats.write(out_dir / "stats.json")
    return stats
