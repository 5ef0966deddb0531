"""Bench: the thinking budget's cost, budgeted generation tokens/s over unbudgeted, same prompts, same engine.

    .venv/bin/python bench/thinking_budget.py [--model DIR] [--prompts 1024] [--max-tokens 128] [--budget 32]

One `VLLMEngine` (the thinking-budget logits processor registered, as every engine the product builds) answers
the same prompts twice per pair: without a budget (the processor has no rows: one early return a step) and
with `--budget` (every row tracked, `</think>` forced when the budget is spent, the answer goes on to
max_tokens). Runs alternate (free, budgeted, free, ...) so that machine load hits both alike; the ratio is
budgeted tokens/s over unbudgeted tokens/s of the same pair (goal >= 0.95). Both sides go through
`VLLMEngine.generate`, so both pay the recount of thinking tokens for provenance.
Without --model it builds the untrained tiny Llama with a chat template whose generation prompt opens the think
block (as DeepSeek-R1's does), so that every budgeted sample is inside it from its first token.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from vllm_setup import add_engine_args


def thinking_tiny_model(work: Path) -> str:
    """The tiny Llama, its generation prompt ending in `<think>\\n`."""
    from transformers import AutoTokenizer

    from thinktoggle.generators.procedural import procedural_records
    from thinktoggle.training.tiny import opened_think_template, save_tiny_model

    corpus = [r.prompt for r in procedural_records("arithmetic", 300, seed=99)]
    model = save_tiny_model(work / "tiny", corpus, vocab_size=400)
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = opened_think_template()
    tokenizer.save_pretrained(model)
    return str(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=1024)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--budget", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--json", default="", help="also write the figures here")
    add_engine_args(parser)
    args = parser.parse_args()

    from thinktoggle.generators.engines.base import ChatRequest, SamplingConfig
    from thinktoggle.generators.engines.vllm_offline import VLLMEngine
    from thinktoggle.generators.procedural import procedural_records

    work = Path(tempfile.mkdtemp(prefix="bench-thinking-budget-"))
    model = args.model or thinking_tiny_model(work)
    engine = VLLMEngine(
        model,
        dtype=args.dtype,
        enforce_eager=True,
        kv_cache_memory_bytes=args.kv_cache_memory_bytes,
        max_model_len=args.max_model_len,
        seed=0,
    )
    prompts = procedural_records("arithmetic", args.prompts, seed=0)

    def batch(budget: int | None) -> list[ChatRequest]:
        sampling = SamplingConfig(n=1, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens, thinking_budget=budget)
        # enable_thinking: a real model's template opens (or asks for) the block; the tiny one ignores it
        kwargs = {"enable_thinking": True}
        return [
            ChatRequest(
                messages=[{"role": "user", "content": p.prompt}], sampling=sampling, chat_template_kwargs=kwargs
            )
            for p in prompts
        ]

    def timed(budget: int | None) -> dict[str, float]:
        start = time.perf_counter()
        results = engine.generate(batch(budget))
        seconds = time.perf_counter() - start
        samples = [c for out in results for c in out]
        tokens = sum(c.completion_tokens for c in samples)
        thinking = [c.thinking_tokens for c in samples if c.thinking_tokens is not None]
        return {
            "tokens": tokens,
            "seconds": seconds,
            "tok_s": tokens / seconds,
            "cut": sum(c.think_cut for c in samples) / len(samples),
            "max_thinking": max(thinking, default=0),
            "errors": sum(c.error is not None for c in samples),
        }

    engine.generate(batch(args.budget)[:64])  # warm-up: first-step allocations and the tags' vocabulary scan
    rows = []
    for pair in range(args.pairs):
        free = timed(None)
        budgeted = timed(args.budget)
        rows.append({"pair": pair + 1, "free": free, "budgeted": budgeted, "ratio": budgeted["tok_s"] / free["tok_s"]})

    print(f"model={model} prompts={args.prompts} max_tokens={args.max_tokens} budget={args.budget} (grace 0.1)")
    print("| pair | unbudgeted tok/s | budgeted tok/s | ratio | cut share | max thinking tokens |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        f, b = r["free"], r["budgeted"]
        print(
            f"| {r['pair']} | {f['tok_s']:,.0f} | {b['tok_s']:,.0f} | {r['ratio']:.3f} | {b['cut']:.1%} "
            f"| {b['max_thinking']} (unbudgeted: {f['max_thinking']}) |"
        )
    median = statistics.median(r["ratio"] for r in rows)
    print(f"median ratio: {median:.3f} (goal >= 0.95)")
    figures = {"args": vars(args), "rows": rows, "median_ratio": median}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    engine.close()


if __name__ == "__main__":
    main()
