"""The trainer's speed against TRL's SFTTrainer, in one run: tokens/s and final loss on the same job.

    .venv/bin/python bench/train.py [--prompts 2000] [--steps 150] [--seq-len 256] [--batch-size 6] [--rounds 2]

Same for both: the tiny Llama (d=64, 4 layers, 2 heads; one initialisation, copied), the tokenizer trained on
the data, the data (mod-10 chains from the procedural teacher, on and off), packed rows of `--seq-len`
tokens, `--batch-size` rows per step, loss on the assistant tokens only, AdamW at the same learning rate,
warmup and cosine schedule, gradient clipping 1.0, fp32 on this CPU, the same number of optimizer steps.
TRL: prompt-completion rows (the system + user turns, then the answer), `packing=True` (best-fit
decreasing, padding-free with position ids, which transformers turns into a block-diagonal mask, as ours).

Timed: the training loop only (ours: `train_summary.json` seconds; TRL: `trainer.train()`), tokens counted
without padding (ours: example lengths; TRL: its `num_tokens`). The runs alternate over `--rounds` so the
load of a shared machine hits both alike; the table shows each round and the median ratio. Both use
`--threads` torch threads (1 by default: a 0.3M model gains nothing from more on a small CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table


def make_records(n_prompts: int, seed: int = 0):
    from thinktoggle.generators.procedural import procedural_answer, procedural_records
    from thinktoggle.schemas.think import compose_output, system_prompt_for

    records = []
    for prompt in procedural_records("mod_chain", n_prompts, seed=seed):
        for mode in ("on", "off"):
            reasoning, answer = procedural_answer(prompt, mode)
            records.append(
                replace(prompt, reasoning=mode, system_prompt=system_prompt_for(mode), id="").with_output(
                    compose_output(reasoning, answer), generator="procedural"
                )
            )
    return records


def write_published(records, folder: Path) -> Path:
    from thinktoggle.schemas.arrow import PUBLISHED_SCHEMA
    from thinktoggle.schemas.convert import record_to_row
    from thinktoggle.schemas.io import ShardWriter

    with ShardWriter(folder, PUBLISHED_SCHEMA) as writer:
        for record in records:
            writer.write(record_to_row(record))
    return folder


def save_initial_model(records, folder: Path) -> Path:
    """A tiny Llama (seed 0) and its tokenizer, trained on `records`' text: the one starting point every side loads."""
    from thinktoggle.training.tiny import build_tiny_llama, train_tokenizer
    from thinktoggle.training.trainer import tokenizer_texts

    tokenizer = train_tokenizer(tokenizer_texts(records), vocab_size=512)
    model = build_tiny_llama(tokenizer, seed=0)
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_ours(config, data: Path, out: Path) -> dict:
    from thinktoggle.training.trainer import run_train

    run_train(config, [data], out)
    summary = json.loads((out / "train_summary.json").read_text())
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "tokens_per_s": summary["tokens_trained"] / summary["seconds"],
        "seconds": summary["seconds"],
        "tokens": summary["tokens_trained"],
        "final_loss": statistics.mean(entry["loss"] for entry in log[-3:]),
    }


def run_trl(config, records, model_dir: Path, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from thinktoggle.training.data import conversation

    rows = []
    for record in records:
        messages = conversation(record)
        rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    dataset = Dataset.from_list(rows)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(out),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": config.min_lr_ratio},
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        adam_beta1=config.beta1,
        adam_beta2=config.beta2,
        max_grad_norm=config.grad_clip,
        max_length=config.seq_len,
        packing=True,
        completion_only_loss=True,
        logging_steps=config.log_every,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        fp16=False,
        seed=config.seed,
        dataloader_num_workers=0,
        gradient_checkpointing=False,  # ours does not checkpoint activations either
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    history = trainer.state.log_history
    tokens = max((entry.get("num_tokens", 0) for entry in history), default=0)
    losses = [float(entry["loss"]) for entry in history if "loss" in entry]
    losses = losses or [float(entry["train_loss"]) for entry in history if "train_loss" in entry]
    return {
        "tokens_per_s": tokens / seconds,
        "seconds": seconds,
        "tokens": tokens,
        "final_loss": statistics.mean(losses[-3:]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, for both")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    import torch

    from thinktoggle.training.trainer import TrainConfig

    torch.set_num_threads(args.threads)
    console = Console()
    records = make_records(args.prompts)
    config = TrainConfig(
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        max_steps=args.steps,
        warmup_steps=min(100, args.steps // 10),
        save_every=0,
        log_every=10,
        threads=args.threads,
        progress=False,
    )
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_published(records, root / "data")
        # one initial model for both: the trainer fine-tunes it (`model=`), TRL loads the same folder
        save_initial_model(records, root / "init")
        ours_config = replace(config, model=str(root / "init"))
        for r in range(args.rounds):
            console.print(f"round {r + 1}/{args.rounds}: ours", highlight=False)
            ours = run_ours(ours_config, data, root / f"ours-{r}")
            console.print(f"  ours: {ours}", highlight=False)
            console.print(f"round {r + 1}/{args.rounds}: TRL SFTTrainer", highlight=False)
            trl = run_trl(config, records, root / "init", root / f"trl-{r}")
            console.print(f"  TRL: {trl}", highlight=False)
            rounds.append({"ours": ours, "trl": trl, "ratio": ours["tokens_per_s"] / trl["tokens_per_s"]})

    table = Table(title=f"SFT on CPU: {args.steps} steps x {args.batch_size} packed rows x {args.seq_len} tokens")
    for column in ("round", "ours tok/s", "TRL tok/s", "ratio", "ours loss", "TRL loss", "ours tokens", "TRL tokens"):
        table.add_column(column, justify="right")
    for i, r in enumerate(rounds, 1):
        table.add_row(
            str(i),
            f"{r['ours']['tokens_per_s']:,.0f}",
            f"{r['trl']['tokens_per_s']:,.0f}",
            f"{r['ratio']:.2f}x",
            f"{r['ours']['final_loss']:.4f}",
            f"{r['trl']['final_loss']:.4f}",
            f"{r['ours']['tokens']:,}",
            f"{r['trl']['tokens']:,}",
        )
    console.print(table)
    median = statistics.median(r["ratio"] for r in rounds)
    console.print(f"median ratio (ours / TRL tokens per second): {median:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
