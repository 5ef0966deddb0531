"""The SFT trainer, top to bottom: data → tokens + assistant mask → packed batches → AdamW → HF checkpoints.

    read records (published rows or internal records), streamed: a window of tokens at a time (data.py)
    → model + tokenizer: a Hugging Face checkpoint folder, or a tiny Llama built from a config with a
      tokenizer trained on the data (training/tiny.py)
    → render every conversation with the chat template, system prompt included, into ids + a mask that is
      1 on the assistant's tokens only (the loss is taken there)
    → shuffle each window (on and off examples mixed) and pack short examples into rows of `seq_len`
    → the loss from the last hidden state, a chunk of tokens at a time, never the full logits (loss.py)
    → AdamW, linear warmup then cosine decay, gradient accumulation and clipping
    → checkpoints in Hugging Face format (safetensors, tokenizer, chat template) that transformers and vLLM
      load; a rerun resumes from the last one; metrics.jsonl holds step, loss, lr, tokens/s and grad norm.

Packing: examples share a row but never attend to each other. Each example's position ids restart at 0 and
no attention mask is passed; transformers then builds a block-diagonal causal mask from the position-id
resets (`masking_utils.find_packed_sequence_indices`) for eager and sdpa, a block mask for flex attention,
and FlashAttention takes its variable-length path with no mask at all.
`tests/training/test_trainer.py` checks that a packed example's logits equal those of the example alone.

Several processes (distributed.py): data parallel, one DistributedDataParallel replica per rank. Every rank
builds the same global micro-batch of `batch_size x ranks` rows and trains on its own `batch_size` of them;
the loss is normalised by the assistant tokens of the whole step over all ranks, so N ranks of `batch_size`
b equal one rank of N x b (tests/training/test_distributed.py). Rank 0 counts the data, logs and saves.

Precision: fp32 on CPU; bf16 autocast on GPU (master weights and optimizer state stay fp32).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from thinktoggle.core.outputs import StageOutputs, clear_partial
from thinktoggle.core.stats import StageStats
from thinktoggle.schemas.io import atomic_write_text
from thinktoggle.schemas.record import Record
from thinktoggle.training.data import (
    IGNORE,
    AssistantTurns,
    collate,
    conversation,
    micro_batches,
    usable_records,
    windows,
)

ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")


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
    """The `train:` section of a recipe. Steps are optimizer steps; a step is `batch_size` packed rows of
    `seq_len` tokens per process per micro-step, times `grad_accum` micro-steps, times the processes."""

    model: str = ""  # a Hugging Face checkpoint folder to fine-tune; "" = a tiny Llama built from `tiny`
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    seq_len: int = 256
    batch_size: int = 8  # packed rows per micro-step, per process
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
    assistant_turns: AssistantTurns = "all"  # all | last: the assistant turns of a conversation that are learned
    shuffle_tokens: int = 16_000_000  # tokens read, shuffled and packed at a time (~5 bytes each in memory)
    loss_kernel: str = "chunked"  # chunked | full (all logits at once) | liger (fused, GPU, needs liger-kernel)
    loss_chunk_mb: int = 256  # chunked: fp32 logits per chunk of tokens, in MB (a 152K vocabulary: 441 tokens)
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2 | flex_attention (no L x L mask: flash, flex)
    gradient_checkpointing: bool = False  # recompute each layer in the backward: activations for one layer
    precision: str = "auto"  # auto (bf16 autocast on GPU, fp32 on CPU) | bf16 | fp32
    nproc_per_node: int = 1  # data-parallel processes on this node (torchrun); gloo on CPU, NCCL on GPUs
    seed: int = 0
    save_every: int = 500  # steps between checkpoints (0: only the final model)
    keep_checkpoints: int = 2
    log_every: int = 10
    report_to: tuple[str, ...] = ()  # tensorboard and/or wandb besides metrics.jsonl (pip install them)
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads per process (0: torch's default)
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("seq_len", "batch_size", "grad_accum", "max_steps", "log_every", "shuffle_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name}: must be >= 1, got {getattr(self, name)}")
        if self.nproc_per_node < 1 or self.loss_chunk_mb < 1:
            raise ValueError("train.nproc_per_node and train.loss_chunk_mb must be >= 1")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(
                f"train.lr must be > 0 and train.min_lr_ratio in [0, 1], got {self.lr}, {self.min_lr_ratio}"
            )
        if self.warmup_steps < 0 or self.save_every < 0 or self.keep_checkpoints < 1:
            raise ValueError("train.warmup_steps and train.save_every must be >= 0, train.keep_checkpoints >= 1")
        choices = {
            "device": ("auto", "cpu", "cuda"),
            "loss_kernel": ("chunked", "full", "liger"),
            "attn_implementation": ATTENTION,
            "precision": ("auto", "bf16", "fp32"),
            "assistant_turns": ("all", "last"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"train.{name}: expected one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in self.report_to:
            if name not in REPORTERS:
                raise ValueError(f"train.report_to: expected tensorboard and/or wandb, got {name!r}")


# ------------------------------------------------------------------------------------------------- the data
# (streamed: training/data.py reads, renders, packs and batches a window of tokens at a time)


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup to `lr`, then cosine decay to `lr * min_lr_ratio` at `max_steps`."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


# ---------------------------------------------------------------------------------------- model + checkpoints


def tokenizer_texts(records: Iterable[Record]) -> Iterator[str]:
    """What the tiny tokenizer is trained on: every message of every conversation."""
    for record in records:
        for message in conversation(record):
            yield message["content"]
            if message.get("tool_calls"):  # rendered as JSON by the tiny template
                yield json.dumps([c["function"] for c in message["tool_calls"]], ensure_ascii=False)


def build_or_load(config: TrainConfig, inputs: list[Path], source: Path | None):
    """(model, tokenizer): from `source` (the checkpoint being resumed, or rank 0's initial model), the
    configured folder, or built tiny with a tokenizer trained on the data (streamed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from thinktoggle.training.tiny import build_tiny_llama, train_tokenizer

    source = source or (Path(config.model) if config.model else None)
    if source is not None:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype="float32", attn_implementation=config.attn_implementation
        )
        return model, tokenizer
    tiny = config.tiny
    tokenizer = train_tokenizer(tokenizer_texts(r for r, _ in usable_records(inputs)), vocab_size=tiny.vocab_size)
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
    if model.config._attn_implementation != config.attn_implementation:
        model.set_attn_implementation(config.attn_implementation)
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


# ------------------------------------------------------------------------------------------------ reporting

REPORTERS = {"tensorboard": "tensorboard", "wandb": "wandb"}  # report_to name -> the pip package it needs


class Reporters:
    """The `report_to` trackers, fed the same entries as metrics.jsonl. Their libraries are imported only when
    asked for: neither is a dependency of the trainer."""

    def __init__(self, config: TrainConfig, out_dir: Path, step: int) -> None:
        self.tensorboard, self.wandb = None, None
        for name in config.report_to:
            try:
                if name == "tensorboard":
                    from torch.utils.tensorboard import SummaryWriter

                    # purge_step: on resume, the steps after the checkpoint are redone; their old events go
                    self.tensorboard = SummaryWriter(str(out_dir / "tensorboard"), purge_step=step or None)
                elif name == "wandb":
                    import wandb

                    self.wandb = wandb.init(
                        project="thinktoggle", name=out_dir.name, dir=str(out_dir), config=asdict(config)
                    )
            except ImportError as exc:
                raise ImportError(
                    f"train.report_to: {name} needs the {REPORTERS[name]} package: pip install {REPORTERS[name]}"
                ) from exc

    def log(self, entry: dict[str, float]) -> None:
        step = int(entry["step"])
        values = {k: v for k, v in entry.items() if k != "step"}
        if self.tensorboard is not None:
            for key, value in values.items():
                self.tensorboard.add_scalar(f"train/{key}", value, step)
            self.tensorboard.flush()
        if self.wandb is not None:
            self.wandb.log({f"train/{k}": v for k, v in values.items()}, step=step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


# ------------------------------------------------------------------------------------------------- training


def run_train(config: TrainConfig, inputs: list[Path], out_dir: Path, executor: Any = None) -> StageStats:
    """Train on the records under `inputs`; write `out_dir/model` (HF format), checkpoints, metrics, stats.

    Rerun into the same `out_dir`: a finished run is left as it is; an interrupted one resumes from its last
    checkpoint. `executor` is accepted for the Stage API and unused: `nproc_per_node` sets the processes.
    """
    import torch
    from tqdm import tqdm

    from thinktoggle.training import distributed as dist
    from thinktoggle.training.loss import LastHidden, cross_entropy_sum

    out_dir = Path(out_dir)
    final_dir = out_dir / "model"
    if (out_dir / "stats.json").exists() and (final_dir / "config.json").exists():
        return StageStats.read(out_dir / "stats.json")
    rank, world, local_rank = dist.rank_and_world()
    if config.nproc_per_node > 1 and world == 1:  # started as one process: become N under torchrun
        dist.launch(config, [Path(p) for p in inputs], out_dir)
        return StageStats.read(out_dir / "stats.json")
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = "cuda" if config.device == "auto" and torch.cuda.is_available() else config.device
    device = "cpu" if device == "auto" else device
    dist.init_process_group(device)
    if device == "cuda":
        device = f"cuda:{local_rank}"
    main = rank == 0  # counts the data, logs, saves

    inputs = [Path(p) for p in inputs]
    resume = checkpoint_dirs(out_dir)[-1] if checkpoint_dirs(out_dir) else None
    init_dir = out_dir / "checkpoints" / "init"  # rank 0's fresh model + tokenizer, for the other ranks
    whole, stats, counts = None, None, {}
    if main:
        clear_partial(out_dir, "part")  # the dropped/ and failed/ of an interrupted run: rewritten below
        with StageOutputs(out_dir, "train", write_kept=False) as outputs:
            model, tokenizer = build_or_load(config, inputs, resume)
            # the accounting pass: every record kept, dropped or failed; the examples kept if they fit one window
            n_windows, examples = 0, []
            counts = {"examples": 0, "examples_on": 0, "examples_off": 0}
            for _, examples in windows(
                inputs,
                tokenizer,
                config.seq_len,
                config.shuffle_tokens,
                outputs=outputs,
                assistant_turns=config.assistant_turns,
            ):
                n_windows += 1
                counts["examples"] += len(examples)
                counts["examples_on"] += sum(e.reasoning == "on" for e in examples)
                counts["examples_off"] += sum(e.reasoning == "off" for e in examples)
            whole = examples if n_windows == 1 else None
        stats = outputs.stats
        if stats.kept == 0:  # e.g. every example longer than seq_len: the reasons are in dropped/ and failed/
            raise ValueError(
                f"train: no example to train on in {[str(p) for p in inputs]}: {stats.n_dropped} dropped ({dict(stats.dropped)}), "
                f"{stats.n_failed} failed (see {out_dir / 'dropped'} and {out_dir / 'failed'}; seq_len={config.seq_len})"
            )
        if world > 1 and resume is None and not config.model:
            save_model(model, tokenizer, init_dir)
    dist.barrier()
    if not main:
        model, tokenizer = build_or_load(config, inputs, resume or (init_dir if not config.model else None))
    if config.loss_kernel != "full" and any(
        getattr(model.config, name, None) for name in ("final_logit_softcapping", "logit_scale")
    ):
        raise ValueError("train.loss_kernel: this model scales its logits; use loss_kernel: full")
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    # what the ranks run: the last hidden state; the loss takes it with the output embedding (loss.py)
    forward = LastHidden(model)
    if world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(
            forward, device_ids=[local_rank] if device.startswith("cuda") else None
        )
    out_embedding = model.get_output_embeddings().weight
    chunk_tokens = max(1, config.loss_chunk_mb * 2**20 // (4 * out_embedding.shape[0]))

    # AdamW; no weight decay on norms and biases (1-d tensors)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        fused=device.startswith("cuda"),
    )
    step, position = 0, (0, 0, 0, 0)
    metrics_path = out_dir / "metrics.jsonl"
    if resume is not None:
        state = json.loads((resume / "trainer_state.json").read_text())
        optimizer.load_state_dict(torch.load(resume / "optimizer.pt", map_location=device))
        step, position = state["step"], tuple(state["next_batch"])
        print(f"train: rank {rank}: resuming from {resume} (step {step})" if world > 1 else
              f"train: resuming from {resume} (step {step})", flush=True)  # fmt: skip
        if main and metrics_path.exists():  # the steps after the checkpoint are redone: their lines go
            lines = metrics_path.read_text().splitlines(keepends=True)
            atomic_write_text("".join(x for x in lines if json.loads(x)["step"] <= step), metrics_path)
    torch.manual_seed(config.seed + step)
    reporters = Reporters(config, out_dir, step) if main else None

    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.startswith("cuda"))
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16)
    stream = micro_batches(
        inputs,
        tokenizer,
        seq_len=config.seq_len,
        packing=config.packing,
        rows_per_batch=config.batch_size * world,
        seed=config.seed,
        window_tokens=config.shuffle_tokens,
        start=position,
        whole=whole,
        assistant_turns=config.assistant_turns,
    )
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )  # padding carries no loss
    started, tokens_seen, loss_value = time.perf_counter(), 0, float("nan")
    # Redrawn live on a terminal; in a log file (Slurm, `make demo > log`) one line every 30 s instead of ten a second.
    refresh_s = 0.1 if sys.stderr.isatty() else 30.0
    bar = tqdm(
        total=config.max_steps,
        initial=step,
        desc="train",
        unit="step",
        disable=not (config.progress and main),
        mininterval=refresh_s,
    )
    while step < config.max_steps:
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        micro, tokens = [], 0
        for _ in range(config.grad_accum):
            position, rows = next(stream)
            # this rank's share of the global micro-batch; a short last batch may leave a rank none: it then
            # runs one row of padding (no target, no gradient) so that every rank joins each all-reduce
            mine = rows[rank * config.batch_size : (rank + 1) * config.batch_size] or [[]]
            micro.append(collate(mine, config.seq_len, pad_id))
            tokens += sum(len(ex.ids) for row in mine for ex in row)  # real tokens, padding not counted
        # normalise by the assistant tokens of the whole step on every rank: accumulation and ranks together
        # equal one large batch (DDP averages the ranks' gradients, hence the factor `world`)
        local_targets = sum(int((labels != IGNORE).sum()) for _, labels, _ in micro)
        n_targets, tokens = dist.all_reduce_sum([local_targets, tokens])
        tokens_seen += int(tokens)
        loss_sum = 0.0
        for i, (input_ids, labels, positions) in enumerate(micro):
            input_ids, labels, positions = input_ids.to(device), labels.to(device), positions.to(device)
            # DDP all-reduces the gradients in the backward of the last micro-step only
            last = world == 1 or i == len(micro) - 1
            with nullcontext() if last else forward.no_sync():
                with autocast:
                    hidden = forward(input_ids, positions)
                    loss = cross_entropy_sum(
                        hidden, out_embedding, labels, chunk_tokens=chunk_tokens, kernel=config.loss_kernel
                    )
                (loss / max(1, n_targets) * world).backward()
            loss_sum += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip or math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss_value = dist.all_reduce_sum([loss_sum])[0] / max(1, n_targets)
        elapsed = time.perf_counter() - started
        bar.update(1)
        if main and (step % config.log_every == 0 or step == config.max_steps):
            tok_s = tokens_seen / max(elapsed, 1e-9)
            bar.set_postfix(loss=f"{loss_value:.4f}", tok_s=f"{tok_s:,.0f}", lr=f"{lr:.2e}", refresh=False)
            entry = {"step": step, "loss": loss_value, "lr": lr, "tokens_per_s": tok_s,
                     "grad_norm": float(grad_norm), "tokens": tokens_seen}  # fmt: skip
            with metrics_path.open("a") as log:
                log.write(json.dumps(entry) + "\n")
            if reporters is not None:
                reporters.log(entry)
        if main and config.save_every and step % config.save_every == 0 and step < config.max_steps:
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
    if reporters is not None:
        reporters.close()

    elapsed = time.perf_counter() - started
    if main:
        model.to("cpu")
        save_model(model, tokenizer, final_dir)
        shutil.rmtree(init_dir, ignore_errors=True)
        summary = {
            "steps": step,
            "final_loss": loss_value,
            "parameters": n_params,
            **counts,
            "tokens_trained": tokens_seen,
            "seconds": round(elapsed, 2),
            "tokens_per_s": round(tokens_seen / max(elapsed, 1e-9), 1),
            "device": device,
            "processes": world,
            "model_dir": str(final_dir),
            "config": asdict(config),
        }
        atomic_write_text(json.dumps(summary, indent=2) + "\n", out_dir / "train_summary.json")
        stats.write(out_dir / "stats.json")
    dist.barrier()
    dist.destroy_process_group()
    return stats if main else StageStats.read(out_dir / "stats.json")
