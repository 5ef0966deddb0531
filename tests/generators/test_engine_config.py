"""One engine configuration, one factory: auto settings resolved per machine (explicit ones always win), each
kind built by `make_engine`, and building a config never imports torch or vLLM."""

from __future__ import annotations

import subprocess
import sys

import pytest

from thinktoggle.generators.engines.base import ChatRequest, SamplingConfig
from thinktoggle.generators.engines.config import (
    CPU_KV_CACHE_BYTES,
    EngineConfig,
    transformers_settings,
    vllm_settings,
)
from thinktoggle.generators.engines.factory import make_engine


def test_vllm_without_cuda_defaults_to_settings_that_start_on_a_cpu():
    assert vllm_settings(EngineConfig(), cuda=False) == {
        "tensor_parallel_size": 1,
        "dtype": "float32",
        "gpu_memory_utilization": 0.9,
        "enforce_eager": True,
        "kv_cache_memory_bytes": CPU_KV_CACHE_BYTES,
        "max_model_len": -1,  # vLLM fits the context length to the KV cache
    }
    assert 256 * 2**20 <= CPU_KV_CACHE_BYTES <= 2**30


def test_vllm_with_cuda_keeps_vllms_defaults():
    assert vllm_settings(EngineConfig(tp=8), cuda=True) == {
        "tensor_parallel_size": 8,
        "dtype": "auto",
        "gpu_memory_utilization": 0.9,
        "enforce_eager": False,
    }


@pytest.mark.parametrize("cuda", [False, True])
def test_explicit_vllm_settings_always_win(cuda):
    config = EngineConfig(
        dtype="bfloat16",
        enforce_eager=False,
        kv_cache_memory_bytes=2**30,
        max_model_len=2048,
        gpu_memory_utilization=0.5,
    )
    assert vllm_settings(config, cuda=cuda) == {
        "tensor_parallel_size": 1,
        "dtype": "bfloat16",
        "gpu_memory_utilization": 0.5,
        "enforce_eager": False,
        "kv_cache_memory_bytes": 2**30,
        "max_model_len": 2048,
    }
    assert vllm_settings(EngineConfig(enforce_eager=True), cuda=True)["enforce_eager"] is True


def test_transformers_settings():
    assert transformers_settings(EngineConfig(), cuda=False) == {"device": "cpu", "dtype": "float32", "batch_size": 64}
    assert transformers_settings(EngineConfig(), cuda=True) == {"device": "cuda", "dtype": "bfloat16", "batch_size": 64}
    explicit = EngineConfig(device="cpu", dtype="float16", batch_size=8)
    assert transformers_settings(explicit, cuda=True) == {"device": "cpu", "dtype": "float16", "batch_size": 8}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "vlm"}, "kind: expected one of"),
        ({"kind": "openai"}, "base_url: required"),
        ({"tp": 0}, "tp: must be >= 1"),
        ({"max_model_len": -2}, "max_model_len"),
        ({"kv_cache_memory_bytes": -1}, "kv_cache_memory_bytes"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"concurrency": 0}, "concurrency"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_config_refuses_what_cannot_work(changes, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig(**changes)


def test_factory_builds_each_kind(monkeypatch, tiny_model_dir):
    from thinktoggle.generators.engines.openai_server import OpenAIEngine
    from thinktoggle.generators.engines.procedural_engine import ProceduralEngine
    from thinktoggle.generators.engines.transformers_engine import TransformersEngine

    assert isinstance(make_engine(EngineConfig(kind="procedural")), ProceduralEngine)
    monkeypatch.setenv("JUDGE_KEY", "secret")
    served = EngineConfig(kind="openai", base_url="http://127.0.0.1:9/v1", api_key_env="JUDGE_KEY", concurrency=3)
    engine = make_engine(served, "judge-model")
    assert isinstance(engine, OpenAIEngine) and (engine.api_key, engine.concurrency) == ("secret", 3)
    with pytest.raises(ValueError, match="needs a model"):
        make_engine(EngineConfig(kind="vllm"))
    # auto without vLLM is transformers, on the CPU here: the engine interface, n completions per request
    monkeypatch.setattr("thinktoggle.generators.engines.config.vllm_installed", lambda: False)
    engine = make_engine(EngineConfig(kind="auto", device="cpu"), str(tiny_model_dir), seed=1)
    try:
        assert isinstance(engine, TransformersEngine) and engine.name == "transformers"
        greedy = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=4)
        request = ChatRequest(messages=[{"role": "user", "content": "1 + 2?"}], sampling=greedy, n=2)
        [completions] = engine.generate([request])
        assert len(completions) == 2 and all(c.error is None and 0 < c.completion_tokens <= 4 for c in completions)
    finally:
        engine.close()


def test_configs_and_the_factory_import_no_engine_library():
    code = (
        "import sys\n"
        "import thinktoggle.generators.engines, thinktoggle.generators.generate, thinktoggle.filters.judge\n"
        "import thinktoggle.training.validate\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'vllm', 'openai', 'transformers')]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
