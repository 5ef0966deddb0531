"""Bench: the generate stage against raw `vllm.LLM.chat`, same prompts, model and sampling, in one process.

    .venv/bin/python bench/generate.py [--model DIR] [--prompts 512] [--max-tokens 128] [--repeats 2]

Both sides send the same chat messages (Nemotron system prompt per mode) with the same per-request
SamplingParams (n, temperature, top_p, max_tokens, seed) to one shared `vllm.LLM`; the stage adds what the
product does around it: reading the prompt file, the plan, toggle requests, normalisation, provenance,
atomic parquet shards, stats, datatrove's executor. Runs alternate (raw, stage, raw, stage, ...) so that
machine load hits both alike; the ratio is stage tokens/s over raw tokens/s (goal >= 0.97).
Without --model it builds the untrained tiny Llama (thinktoggle.training.tiny) and runs on CPU.
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
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--n-on", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default="", help="also write the figures here")
    add_engine_args(parser)
    args = parser.parse_args()

    from thinktoggle.generators.engines.base import ChatRequest, SamplingConfig
    from thinktoggle.generators.engines.config import EngineConfig
    from thinktoggle.generators.engines.vllm_offline import VLLMEngine
    from thinktoggle.generators.generate import GenerateConfig, request_seed, run_generate
    from thinktoggle.generators.procedural import procedural_records
    from thinktoggle.generators.sources import write_prompts
    from thinktoggle.generators.toggle import toggle_request
    from thinktoggle.schemas.io import iter_records

    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    llm, model = shared_llm(args, work, "arithmetic")
    prompts = procedural_records("arithmetic", args.prompts, seed=0)
    src = write_prompts(prompts, work / "prompts.parquet")
    config = GenerateConfig(
        engine=EngineConfig(kind="vllm"),  # the engine is the `llm` above, shared with the raw side
        teacher_on=model,
        sampling_on=SamplingConfig(n=args.n_on, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens),
        sampling_off=SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=args.max_tokens),
        shard_size=args.prompts,  # one shard: one engine batch, as a user would size it for throughput
        progress=False,
    )
    # the raw side: the same messages and SamplingParams, straight into LLM.chat
    engine = VLLMEngine.from_llm(llm)
    messages, params = [], []
    for mode in ("on", "off"):
        for p in prompts:
            sent, _ = toggle_request("nemotron", mode, p.input)
            request = ChatRequest(
                sent, config.sampling(mode), n=config.sampling(mode).n, seed=request_seed(config, p.pair_id, mode, 0)
            )
            messages.append(sent)
            params.append(engine.sampling_params(request))

    llm.chat(messages[:8], params[:8], use_tqdm=False)  # warm-up

    def run_raw() -> tuple[float, int]:
        start = time.perf_counter()
        outputs = llm.chat(messages, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        return seconds, sum(len(c.token_ids) for o in outputs for c in o.outputs)

    def run_stage(i: int) -> tuple[float, int]:
        out = work / f"stage-{i}"
        timed = TimedEngine(engine)  # the rest of the stage's time is its overhead
        start = time.perf_counter()
        stats = run_generate(config, [src], out, engine=timed)
        seconds = time.perf_counter() - start
        overhead.append(seconds - sum(timed.seconds))
        assert stats.n_failed == 0, stats.to_dict()
        return seconds, sum(r.sampling["completion_tokens"] for _, r in iter_records([out / "kept"]))

    raw, stage, overhead = [], [], []
    for i in range(args.repeats):
        raw.append(run_raw())
        stage.append(run_stage(i))
        print(
            f"run {i}: raw {raw[-1][1] / raw[-1][0]:,.0f} tok/s  stage {stage[-1][1] / stage[-1][0]:,.0f} tok/s"
            f"  (stage time outside the engine: {overhead[-1]:.2f} s)"
        )
    raw_tps = statistics.median(tokens / seconds for seconds, tokens in raw)
    stage_tps = statistics.median(tokens / seconds for seconds, tokens in stage)
    figures = {
        "model": "tiny (untrained, built here)" if not args.model else args.model,
        "requests": len(messages),
        "samples": sum(p.n for p in params),
        "max_tokens": args.max_tokens,
        "raw_tokens": raw[0][1],
        "stage_tokens": stage[0][1],
        "raw_tokens_per_s": round(raw_tps, 1),
        "stage_tokens_per_s": round(stage_tps, 1),
        "ratio": round(stage_tps / raw_tps, 3),
        # per alternated pair (robust to load drifting between pairs)
        "pair_ratios": [round((st / ss) / (rt / rs), 3) for (rs, rt), (ss, st) in zip(raw, stage, strict=True)],
        # the share of the stage's own wall time spent inside the engine: its ceiling against raw vLLM
        "stage_engine_share": [round(1 - o / ss, 3) for o, (ss, _) in zip(overhead, stage, strict=True)],
        "raw_seconds": [round(s, 2) for s, _ in raw],
        "stage_seconds": [round(s, 2) for s, _ in stage],
        "stage_seconds_outside_engine": [round(s, 2) for s in overhead],
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
