"""Bench: the evaluation (validate's `evaluate`) against raw `vllm.LLM.chat`, same prompts, model and sampling.

    .venv/bin/python bench/eval.py [--model DIR] [--prompts 256] [--n-on 4] [--max-tokens 128] [--repeats 2]

Both sides send the same chat messages (Nemotron system prompt per mode) with the same SamplingParams (n,
temperature, top_p, max_tokens, seed) to one shared `vllm.LLM`. The evaluation adds what it does around the
engine: requests per benchmark and mode, the answers, compliance, scoring (the math verifier pool, the choice
reader), the metrics (pass@k, maj@k, token spreads). Runs alternate (raw, eval, raw, eval, ...) so that machine
load hits both alike; the ratio is eval tokens/s over raw tokens/s (goal >= 0.95). Without --model it builds
the untrained tiny Llama (thinktoggle.training.tiny) and runs on CPU: the worst case for the ratio, since the
generation it is compared with is cheapest there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from vllm_setup import TimedEngine, add_engine_args, shared_llm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=256, help="per benchmark (mod-chain math, mod-choice letters)")
    parser.add_argument("--n-on", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default="", help="also write the figures here")
    add_engine_args(parser)
    args = parser.parse_args()

    from thinktoggle.generators.engines.base import SamplingConfig
    from thinktoggle.generators.engines.vllm_offline import VLLMEngine
    from thinktoggle.generators.procedural import procedural_records
    from thinktoggle.training.validate import Item, ValidateConfig, evaluate

    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    llm, model = shared_llm(args, work, "mod_choice")
    items = [Item("mod-chain", "math", r) for r in procedural_records("mod_chain", args.prompts, split="heldout")]
    items += [Item("mod-choice", "choice", r) for r in procedural_records("mod_choice", args.prompts, split="heldout")]
    config = ValidateConfig(
        sampling_on=SamplingConfig(n=args.n_on, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens),
        sampling_off=SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=args.max_tokens),
    )
    engine = VLLMEngine.from_llm(llm)

    # the raw side: the same requests the evaluation builds, straight into LLM.chat (one call per mode, as it does)
    from thinktoggle.generators.engines.base import ChatRequest
    from thinktoggle.schemas.think import system_prompt_for

    batches = []
    for mode in config.modes:
        sampling = config.sampling(mode)
        requests = [
            ChatRequest([{"role": "system", "content": system_prompt_for(mode)}, *it.record.input], sampling,
                        n=sampling.n, reasoning=mode, seed=config.seed + i)
            for i, it in enumerate(items)
        ]  # fmt: skip
        batches.append(([r.messages for r in requests], [engine.sampling_params(r) for r in requests]))
    llm.chat(batches[0][0][:8], batches[0][1][:8], use_tqdm=False)  # warm-up

    def run_raw() -> tuple[float, int]:
        start = time.perf_counter()
        tokens = 0
        for messages, params in batches:
            outputs = llm.chat(messages, params, use_tqdm=False)
            tokens += sum(len(c.token_ids) for o in outputs for c in o.outputs)
        return time.perf_counter() - start, tokens

    def run_eval() -> tuple[float, int]:
        timed = TimedEngine(engine)  # the rest of the evaluation's time is its overhead
        start = time.perf_counter()
        result, answers = evaluate(items, config, model, engine=timed)
        seconds = time.perf_counter() - start
        overhead.append(seconds - sum(timed.seconds))
        assert set(result["benchmarks"]) == {"mod-chain", "mod-choice"}
        return seconds, sum(int(a["tokens"]) for a in answers)

    raw, evals, overhead = [], [], []
    for i in range(args.repeats):
        raw.append(run_raw())
        evals.append(run_eval())
        print(
            f"run {i}: raw {raw[-1][1] / raw[-1][0]:,.0f} tok/s  eval {evals[-1][1] / evals[-1][0]:,.0f} tok/s"
            f"  (eval time outside the engine: {overhead[-1]:.2f} s)"
        )
    raw_tps = statistics.median(tokens / seconds for seconds, tokens in raw)
    eval_tps = statistics.median(tokens / seconds for seconds, tokens in evals)
    figures = {
        "model": "tiny (untrained, built here)" if not args.model else args.model,
        "prompts": len(items),
        "samples": len(items) * (args.n_on + 1),
        "max_tokens": args.max_tokens,
        "raw_tokens": raw[0][1],
        "eval_tokens": evals[0][1],
        "raw_tokens_per_s": round(raw_tps, 1),
        "eval_tokens_per_s": round(eval_tps, 1),
        "ratio": round(eval_tps / raw_tps, 3),
        "pair_ratios": [round((et / es) / (rt / rs), 3) for (rs, rt), (es, et) in zip(raw, evals, strict=True)],
        "raw_seconds": [round(s, 2) for s, _ in raw],
        "eval_seconds": [round(s, 2) for s, _ in evals],
        "eval_seconds_outside_engine": [round(s, 2) for s in overhead],
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
