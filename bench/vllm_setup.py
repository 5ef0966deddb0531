"""What the engine benches (generate.py, eval.py, thinking_budget.py) share: the engine's command-line options,
one `vllm.LLM` on the given model, or on an untrained tiny Llama built here, so both sides of a bench talk to the
same engine, and `TimedEngine`, which times the engine's part of a stage."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="", help="model folder or id (default: build the tiny Llama)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--kv-cache-memory-bytes", type=int, default=512 * 2**20)
    parser.add_argument("--max-model-len", type=int, default=512)


def shared_llm(args: argparse.Namespace, work: Path, corpus_task: str):
    """(one vLLM engine (eager, seed 0), its model path); without --model, a tiny Llama built here whose tokenizer
    saw `corpus_task` prompts."""
    from vllm import LLM

    model = args.model
    if not model:
        from thinktoggle.generators.procedural import procedural_records
        from thinktoggle.training.tiny import save_tiny_model

        corpus = [r.prompt for r in procedural_records(corpus_task, 300, seed=99)]
        model = str(save_tiny_model(work / "tiny", corpus, vocab_size=400))
    llm = LLM(
        model=model,
        dtype=args.dtype,
        enforce_eager=True,
        kv_cache_memory_bytes=args.kv_cache_memory_bytes,
        max_model_len=args.max_model_len,
        seed=0,
    )
    return llm, model


class TimedEngine:
    """An engine that times its `generate` calls (`seconds`): the rest of a stage's wall time is its overhead."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name, self.version = engine.name, engine.version
        self.per_request_seeds = getattr(engine, "per_request_seeds", True)
        self.seconds: list[float] = []

    def generate(self, requests, progress=None):
        start = time.perf_counter()
        try:
            return self.engine.generate(requests, progress)
        finally:
            self.seconds.append(time.perf_counter() - start)

    def close(self) -> None:
        pass  # the caller's engine: it closes it
