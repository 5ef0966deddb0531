"""Peak memory of one training step: the full logits (the anchor) against the trainer's chunked loss, in one run.

    .venv/bin/python bench/train_memory.py [--seq-lens 2048,8192] [--vocabs 32000,150000] [--json OUT]

One step = what training/trainer.py runs per micro-step and step: the last hidden state (loss.LastHidden) of a
small Llama (hidden 256, 2 layers, 4 heads; its embedding is the vocabulary's), the summed cross-entropy over
every token of one packed row (loss.cross_entropy_sum, kernel `full` or `chunked` at the trainer's default
256 MB of logits a chunk), backward, AdamW step; fp32 on this CPU, 1 thread. Each measurement runs in a fresh
process: peak RSS during the step (ru_maxrss) minus RSS before it (model, optimizer, the batch already built),
so both sides pay the same weights, gradients and AdamW state. The losses of both are printed: equal loss.
A full-logits case whose estimate (3 copies of the fp32 logits) does not fit in the memory available now is
skipped and says so, rather than pushing a shared machine into swap or the OOM killer.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

STEP = r"""
import json, resource, sys
import psutil, torch
from transformers import LlamaConfig, LlamaForCausalLM
from thinktoggle.training.loss import LastHidden, cross_entropy_sum
kernel, seq_len, vocab, chunk_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
torch.manual_seed(0)
config = LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=seq_len,
                     tie_word_embeddings=True)
model = LlamaForCausalLM(config).train()
forward, weight = LastHidden(model), model.get_output_embeddings().weight
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
for p in model.parameters():  # AdamW's state allocated up front: both sides hold it before the step
    optimizer.state[p] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
ids = torch.randint(0, vocab, (1, seq_len), generator=torch.Generator().manual_seed(1))
positions = torch.arange(seq_len)[None]
labels = ids.roll(-1, 1)
before = psutil.Process().memory_info().rss
chunk_tokens = max(1, chunk_mb * 2**20 // (4 * vocab))
loss = cross_entropy_sum(forward(ids, positions), weight, labels, chunk_tokens=chunk_tokens, kernel=kernel)
(loss / seq_len).backward()
optimizer.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"loss": loss.item() / seq_len, "step_peak_bytes": peak - before, "baseline_bytes": before,
                  "chunk_tokens": chunk_tokens if kernel == "chunked" else seq_len}))
"""


def available_bytes() -> int:
    import psutil

    return psutil.virtual_memory().available


def measure(kernel: str, seq_len: int, vocab: int, chunk_mb: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", STEP, kernel, str(seq_len), str(vocab), str(chunk_mb)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-lens", default="2048,8192")
    parser.add_argument("--vocabs", default="32000,150000")
    parser.add_argument("--chunk-mb", type=int, default=256, help="the chunked side's train.loss_chunk_mb")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    console = Console()
    results = []
    for vocab in map(int, args.vocabs.split(",")):
        for seq_len in map(int, args.seq_lens.split(",")):
            row: dict = {"seq_len": seq_len, "vocab": vocab, "logits_gb": seq_len * vocab * 4 / 1e9}
            for kernel in ("full", "chunked"):
                need = 3 * seq_len * vocab * 4 if kernel == "full" else 0
                if need > 0.9 * available_bytes():
                    row[kernel] = {
                        "error": f"skipped: ~{need / 1e9:.1f} GB estimated, {available_bytes() / 1e9:.1f} available"
                    }
                else:
                    row[kernel] = measure(kernel, seq_len, vocab, args.chunk_mb)
                console.print(f"{seq_len} x {vocab} {kernel}: {row[kernel]}", highlight=False)
            results.append(row)

    table = Table(title="Peak memory of one training step (fp32, CPU): full logits vs chunked loss")
    columns = (
        "tokens",
        "vocab",
        "logits",
        "full peak",
        "chunked peak",
        "tokens/chunk",
        "ratio",
        "loss full",
        "loss chunked",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for row in results:
        full, chunked = row["full"], row["chunked"]
        ok = "error" not in full and "error" not in chunked
        table.add_row(
            f"{row['seq_len']:,}",
            f"{row['vocab']:,}",
            f"{row['logits_gb']:.2f} GB",
            full.get("error") or f"{full['step_peak_bytes'] / 1e9:.2f} GB",
            chunked.get("error") or f"{chunked['step_peak_bytes'] / 1e9:.2f} GB",
            str(chunked.get("chunk_tokens", "-")),
            f"{full['step_peak_bytes'] / chunked['step_peak_bytes']:.1f}x" if ok else "-",
            f"{full['loss']:.6f}" if "loss" in full else "-",
            f"{chunked['loss']:.6f}" if "loss" in chunked else "-",
        )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
