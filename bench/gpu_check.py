"""The GPU check's Python half (bench/gpu_check.sh runs it): the device's measured bf16 matmul rate, then the
trainer in bf16 on a small Llama (tokens/s and MFU against that measured rate).

    python bench/gpu_check.py --out OUT            # on a GPU: ~285M-parameter Llama, bf16 autocast
    python bench/gpu_check.py --out OUT --dry-run  # CPU: the same code path at toy sizes (fp32), seconds
    python bench/gpu_check.py --out OUT --nano [--dry-run]   # the trainer at recipes/nano-sft.yaml's scale

--nano: Qwen2.5-0.5B's shapes with random weights (24 x 896, 14 heads, 2 KV heads, 151,936-word vocabulary,
tied embeddings; built here, no download), the recipe's rows (1 x 16,384 tokens per micro-step, bf16 autocast,
the chunked loss), fine-tuned as a checkpoint folder is: tokens/s, MFU and peak GPU memory
(torch.cuda.max_memory_allocated), then a few steps with `loss_kernel: full` (all logits at once) for the
peak memory the chunked loss saves. Writes OUT/gpu_check_nano.{json,md}.

MFU = trained tokens/s x model FLOPs per token / measured matmul FLOP/s, with model FLOPs per token
= 6 x parameters (forward + backward of every weight, the tied embedding counted once, as the LM head)
+ 6 x layers x hidden x mean example length (causal attention scores and values, forward + backward; packed
examples do not attend to each other). The denominator is what `torch.matmul` reaches on this device here
and now, not the datasheet: the ratio says how much of the reachable rate the trainer uses.

Writes OUT/gpu_check.json (every figure, the sizes and the environment) and OUT/gpu_check.md (a table);
OUT/vllm-model is an untrained model of the same size for bench/generate.py (the shell script runs it).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

# (hidden, layers, heads, ffn, seq_len, batch rows, steps, prompts) per mode
SIZES = {
    "gpu": {"hidden": 1024, "layers": 16, "heads": 16, "ffn": 4096, "seq_len": 2048, "batch": 16, "steps": 60,
            "prompts": 12000, "vocab": 4096, "matmul_n": 8192, "matmul_iters": 200},
    "dry": {"hidden": 64, "layers": 2, "heads": 2, "ffn": 256, "seq_len": 128, "batch": 2, "steps": 4,
            "prompts": 40, "vocab": 300, "matmul_n": 512, "matmul_iters": 10},
}  # fmt: skip
# Qwen2.5-0.5B(-Instruct)'s config.json shapes, and recipes/nano-sft.yaml's rows; toy sizes for --dry-run
NANO = {
    "gpu": {"hidden": 896, "layers": 24, "heads": 14, "kv_heads": 2, "ffn": 4864, "vocab": 151936,
            "seq_len": 16384, "steps": 24, "full_steps": 4, "prompts": 8000, "matmul_n": 8192, "matmul_iters": 200},
    "dry": {"hidden": 64, "layers": 2, "heads": 2, "kv_heads": 1, "ffn": 128, "vocab": 4096,
            "seq_len": 256, "steps": 3, "full_steps": 2, "prompts": 40, "matmul_n": 512, "matmul_iters": 10},
}  # fmt: skip


def matmul_rate(device: str, dtype, n: int, iters: int) -> dict:
    """FLOP/s of an n x n @ n x n matmul on `device` (median of 3 timed runs of `iters` products)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):  # warm-up: kernel selection, clocks
        torch.matmul(a, b)
    sync()
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(iters):
            torch.matmul(a, b)
        sync()
        rates.append(2 * n**3 * iters / (time.perf_counter() - start))
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "flops_per_s": statistics.median(rates)}


def make_records(n_prompts: int):
    """Procedural mod-chain prompts answered in both modes (real toggle rows, no model, no network)."""
    from thinktoggle.generators.procedural import procedural_answer, procedural_records
    from thinktoggle.schemas.think import compose_output, system_prompt_for

    records = []
    for prompt in procedural_records("mod_chain", n_prompts, seed=0):
        for mode in ("on", "off"):
            reasoning, answer = procedural_answer(prompt, mode)
            output = compose_output(reasoning, answer)
            records.append(
                replace(prompt, reasoning=mode, system_prompt=system_prompt_for(mode), id="").with_output(
                    output, generator="procedural"
                )
            )
    return records


def write_rows(records, folder: Path) -> Path:
    from thinktoggle.schemas.arrow import PUBLISHED_SCHEMA
    from thinktoggle.schemas.convert import record_to_row
    from thinktoggle.schemas.io import ShardWriter

    with ShardWriter(folder, PUBLISHED_SCHEMA) as writer:
        for record in records:
            writer.write(record_to_row(record))
    return folder


def steady_tokens_per_s(log: list[dict], tokens_per_step: float) -> float:
    """Tokens/s after the first logged interval (compile, allocator and clock warm-up excluded).

    The log holds the cumulative rate at each logged step; with ~constant tokens per packed step, the
    elapsed time at step k is k x tokens_per_step / rate_k, and the steady rate is the slope between the
    first and the last log entries."""
    if len(log) < 2:
        return log[-1]["tokens_per_s"] if log else 0.0
    first, last = log[0], log[-1]
    t_first = first["step"] * tokens_per_step / first["tokens_per_s"]
    t_last = last["step"] * tokens_per_step / last["tokens_per_s"]
    return (last["step"] - first["step"]) * tokens_per_step / max(t_last - t_first, 1e-9)


def nano(out: Path, cuda: bool) -> None:
    """The trainer at the nano-sft recipe's scale: a random-weight Qwen2.5-0.5B-shaped model, 16,384-token rows."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from thinktoggle.training.tiny import train_tokenizer
    from thinktoggle.training.trainer import TrainConfig, run_train, tokenizer_texts

    size = NANO["gpu" if cuda else "dry"]
    device = "cuda" if cuda else "cpu"
    for stale in ("nano-data", "nano-init", "nano-train", "nano-train-full"):
        shutil.rmtree(out / stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict = {"mode": "gpu" if cuda else "dry-run (cpu)", "sizes": size, "torch": torch.__version__}
    figures["device"] = torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine()
    dtype = torch.bfloat16 if cuda else torch.float32
    figures["matmul"] = matmul_rate(device, dtype, size["matmul_n"], size["matmul_iters"])
    peak_rate = figures["matmul"]["flops_per_s"]

    records = make_records(size["prompts"])
    data = write_rows(records, out / "nano-data")
    # the tokenizer only has to cover the data; the model has the real vocabulary (its ids beyond are unused)
    tokenizer = train_tokenizer(tokenizer_texts(records), vocab_size=512)
    config = Qwen2Config(
        vocab_size=size["vocab"],
        hidden_size=size["hidden"],
        intermediate_size=size["ffn"],
        num_hidden_layers=size["layers"],
        num_attention_heads=size["heads"],
        num_key_value_heads=size["kv_heads"],
        max_position_embeddings=max(32768, size["seq_len"]),
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(out / "nano-init", safe_serialization=True)
    tokenizer.save_pretrained(out / "nano-init")
    train = TrainConfig(  # recipes/nano-sft.yaml's train: section, fewer steps and no accumulation
        model=str(out / "nano-init"),
        seq_len=size["seq_len"],
        batch_size=1,
        max_steps=size["steps"],
        lr=2e-5,
        warmup_steps=2,
        weight_decay=0.01,
        save_every=0,
        log_every=max(1, size["steps"] // 6),
        device=device,
        progress=False,
    )
    runs = {}
    for name, cfg in (("chunked", train), ("full", replace(train, loss_kernel="full", max_steps=size["full_steps"]))):
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        folder = out / ("nano-train" if name == "chunked" else "nano-train-full")
        try:
            run_train(cfg, [data], folder)
        except torch.OutOfMemoryError as exc:  # the full logits may not fit: that is the figure
            runs[name] = {"error": f"out of memory: {str(exc).splitlines()[0]}"}
            print(f"  nano {name}: out of memory", flush=True)
            continue
        summary = json.loads((folder / "train_summary.json").read_text())
        log = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        steady = steady_tokens_per_s(log, summary["tokens_trained"] / summary["steps"])
        from thinktoggle.training.data import conversation, render_conversation

        mean_example = statistics.mean(
            len(render_conversation(tokenizer, conversation(r))[0]) for r in records[: min(len(records), 400)]
        )
        flops_per_token = 6 * summary["parameters"] + 6 * size["layers"] * size["hidden"] * mean_example
        runs[name] = {
            "parameters": summary["parameters"],
            "steps": summary["steps"],
            "tokens_per_s_steady": round(steady, 1),
            "tokens_per_s_overall": summary["tokens_per_s"],
            "mfu_vs_measured_matmul": round(steady * flops_per_token / peak_rate, 4),
            "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None,
            "final_loss": summary["final_loss"],
        }
        print(f"  nano {name}: {runs[name]}", flush=True)
    figures["train"] = runs
    (out / "gpu_check_nano.json").write_text(json.dumps(figures, indent=2) + "\n")
    rows = [("device", figures["device"]), ("measured matmul", f"{peak_rate / 1e12:,.2f} TFLOP/s")]
    for name, r in runs.items():
        if "error" in r:
            rows.append((f"loss {name}", r["error"]))
            continue
        rows += [
            (
                f"loss {name}: tokens/s (steady / overall)",
                f"{r['tokens_per_s_steady']:,.0f} / {r['tokens_per_s_overall']:,.0f}",
            ),
            (f"loss {name}: MFU vs measured matmul", f"{r['mfu_vs_measured_matmul']:.1%}"),
            (f"loss {name}: peak GPU memory", f"{r['peak_gpu_memory_gb']} GB" if cuda else "(cpu)"),
        ]
    if not cuda:
        rows.append(("note", "dry run: toy sizes on a CPU check the code path; the figures mean nothing"))
    table = "| figure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    (out / "gpu_check_nano.md").write_text(table)
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: checks the code path in seconds")
    parser.add_argument("--nano", action="store_true", help="the trainer at the nano-sft recipe's 0.5B scale")
    args = parser.parse_args()
    if args.nano:
        import torch

        cuda = torch.cuda.is_available() and not args.dry_run
        if not cuda and not args.dry_run:
            raise SystemExit("gpu_check: no CUDA device visible to torch (use --dry-run to check the code path on CPU)")
        nano(args.out, cuda)
        return

    import torch

    from thinktoggle.training.tiny import build_tiny_llama
    from thinktoggle.training.trainer import TinyModelConfig, TrainConfig, run_train

    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        raise SystemExit("gpu_check: no CUDA device visible to torch (use --dry-run to check the code path on CPU)")
    size = SIZES["gpu" if cuda else "dry"]
    device = "cuda" if cuda else "cpu"
    out = args.out
    for stale in ("data", "train", "vllm-model"):  # this check's own folders: a rerun measures afresh
        shutil.rmtree(out / stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict = {
        "mode": "gpu" if cuda else "dry-run (cpu)",
        "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "sizes": size,
    }
    print(f"gpu_check: {figures['mode']} on {figures['device']} (torch {torch.__version__})", flush=True)

    # 1. the reachable matmul rate (bf16 on GPU; fp32 on CPU, where bf16 matmul is emulated)
    dtype = torch.bfloat16 if cuda else torch.float32
    figures["matmul"] = matmul_rate(device, dtype, size["matmul_n"], size["matmul_iters"])
    peak = figures["matmul"]["flops_per_s"]
    print(f"  matmul {size['matmul_n']}^3 {figures['matmul']['dtype']}: {peak / 1e12:,.1f} TFLOP/s", flush=True)

    # 2. the trainer, bf16 autocast on GPU, on a small Llama built here (no download)
    records = make_records(size["prompts"])
    data = write_rows(records, out / "data")
    tiny = TinyModelConfig(
        hidden_size=size["hidden"],
        num_layers=size["layers"],
        num_heads=size["heads"],
        intermediate_size=size["ffn"],
        vocab_size=size["vocab"],
        max_position_embeddings=size["seq_len"],
        rope_theta=10000.0,
    )
    config = TrainConfig(
        tiny=tiny,
        seq_len=size["seq_len"],
        batch_size=size["batch"],
        max_steps=size["steps"],
        lr=3e-4,
        warmup_steps=max(1, size["steps"] // 10),
        save_every=0,
        log_every=max(1, size["steps"] // 6),
        device=device,
        progress=False,
    )
    train_dir = out / "train"
    started = time.perf_counter()
    run_train(config, [data], train_dir)
    summary = json.loads((train_dir / "train_summary.json").read_text())
    log = [json.loads(line) for line in (train_dir / "metrics.jsonl").read_text().splitlines()]
    tokens_per_step = summary["tokens_trained"] / summary["steps"]
    steady = steady_tokens_per_s(log, tokens_per_step)
    # the mean example length, rendered exactly as the trainer renders it (chat template, system prompt)
    from transformers import AutoTokenizer

    from thinktoggle.training.data import conversation, render_conversation

    tokenizer = AutoTokenizer.from_pretrained(summary["model_dir"])
    sample = records[: min(len(records), 400)]
    mean_example = statistics.mean(len(render_conversation(tokenizer, conversation(r))[0]) for r in sample)
    flops_per_token = 6 * summary["parameters"] + 6 * size["layers"] * size["hidden"] * mean_example
    figures["train"] = {
        "parameters": summary["parameters"],
        "steps": summary["steps"],
        "tokens_trained": summary["tokens_trained"],
        "seconds": summary["seconds"],
        "tokens_per_s_overall": summary["tokens_per_s"],
        "tokens_per_s_steady": round(steady, 1),
        "mean_example_tokens": round(mean_example, 1),
        "model_flops_per_token": flops_per_token,
        "mfu_vs_measured_matmul": round(steady * flops_per_token / peak, 4),
        "final_loss": summary["final_loss"],
        "precision": "bf16 autocast, fp32 master weights" if cuda else "fp32",
        "wall_s": round(time.perf_counter() - started, 1),
    }
    t = figures["train"]
    print(
        f"  trainer: {t['parameters'] / 1e6:,.1f}M params, {t['tokens_per_s_steady']:,.0f} tokens/s steady "
        f"({t['tokens_per_s_overall']:,.0f} overall), MFU {t['mfu_vs_measured_matmul']:.1%} of the measured matmul",
        flush=True,
    )

    # 3. an untrained model of the same size for bench/generate.py (untrained: it writes max_tokens every time)
    vllm_model = out / "vllm-model"
    model = build_tiny_llama(
        tokenizer,
        hidden_size=size["hidden"],
        num_layers=size["layers"],
        num_heads=size["heads"],
        intermediate_size=size["ffn"],
        max_position_embeddings=size["seq_len"],
        rope_theta=10000.0,
    )
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.save_pretrained(vllm_model, safe_serialization=True)
    tokenizer.save_pretrained(vllm_model)
    figures["vllm_model"] = str(vllm_model)

    (out / "gpu_check.json").write_text(json.dumps(figures, indent=2) + "\n")
    rows = [
        ("device", figures["device"]),
        (f"measured matmul ({figures['matmul']['dtype']}, n={size['matmul_n']})", f"{peak / 1e12:,.2f} TFLOP/s"),
        (
            "model",
            f"Llama {size['layers']}x{size['hidden']}, {t['parameters'] / 1e6:,.1f}M params, seq {size['seq_len']}",
        ),
        ("trainer tokens/s (steady / overall)", f"{t['tokens_per_s_steady']:,.0f} / {t['tokens_per_s_overall']:,.0f}"),
        ("model FLOPs/token", f"{flops_per_token / 1e9:,.3f} G"),
        ("MFU vs measured matmul", f"{t['mfu_vs_measured_matmul']:.1%}"),
    ]
    if not cuda:
        rows.append(("note", "dry run: toy sizes on a CPU check the code path; the figures mean nothing"))
    table = "| figure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    (out / "gpu_check.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
