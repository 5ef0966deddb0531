"""Shared fixtures: a tiny Llama built from a config (never downloaded) and one vLLM engine on it; the
hypothesis profile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis: under CI (CI=true) every run tries the same examples (derandomized: a verdict never depends on
# luck) with no per-example deadline (a loaded machine is not a failure); local runs keep exploring new ones.
settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI", "").lower() not in ("", "0", "false") else "default")

# The CPU vLLM engine: fp32 (bf16 hits an illegal instruction in the CPU attention kernel on some
# processors), eager mode (no compile step), a small fixed KV cache.
VLLM_CPU_KWARGS = {
    "enforce_eager": True,
    "dtype": "float32",
    "kv_cache_memory_bytes": 256 * 2**20,
    "max_model_len": 512,
}


def tokenizer_corpus() -> list[str]:
    """Text in the shape of the project's prompts and outputs, to train the tiny tokenizer on."""
    texts = []
    for a in range(12):
        for b in range(12):
            texts.append(f"What is {a} + {b} * 3? Put the final answer in \\boxed{{}}.")
            texts.append(f"<think>\n{b} * 3 = {b * 3}\n{a} + {b * 3} = {a + b * 3}\n</think>\n\n\\boxed{{{a + b * 3}}}")
            texts.append(f"```python\ndef add(a, b):\n    return a + b\n```\nprint({a} - {b})")
    return texts


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """An untrained tiny Llama (head_dim 32) with a byte-level BPE and a toggle-aware chat template."""
    from thinktoggle.training.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), tokenizer_corpus(), vocab_size=400)


@pytest.fixture(scope="session")
def vllm_llm(tiny_model_dir):
    """One real vLLM engine (vllm-cpu) on the tiny model, shared by the whole session."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    from vllm import LLM

    llm = LLM(model=str(tiny_model_dir), seed=0, **VLLM_CPU_KWARGS)
    yield llm
    del llm


@pytest.fixture(scope="session")
def thinking_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model, its generation prompt ending in `<think>\\n` (as DeepSeek-R1's and Qwen3's templates open
    the block): the untrained model almost never writes `<think>` itself, so this one starts every sample inside
    the block, and rarely closes it (thinking-budget tests)."""
    import shutil

    from transformers import AutoTokenizer

    from thinktoggle.training.tiny import opened_think_template

    out = tmp_path_factory.mktemp("thinking") / "model"
    shutil.copytree(tiny_model_dir, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.chat_template = opened_think_template()
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def thinking_vllm_engine(thinking_model_dir):
    """A `VLLMEngine` on the thinking model, with the thinking-budget logits processor registered."""
    from thinktoggle.generators.engines.vllm_offline import VLLMEngine

    engine = VLLMEngine(str(thinking_model_dir), seed=0, **VLLM_CPU_KWARGS)
    yield engine
    engine.close()
