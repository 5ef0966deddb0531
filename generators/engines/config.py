"""One engine configuration for every use of a model: the generate stage's teachers, the LLM judge, validation.

`EngineConfig` says how a model is served (which engine, and that engine's settings); each use names its own
model (`teacher_on`/`teacher_off`, the judge's `model`, the validated checkpoint) and keeps its own stage
concerns (data parallelism, seeds). `engines.factory.make_engine(config, model)` builds the engine.

"auto" values are resolved when the engine starts (`vllm_settings`, `transformers_settings`), here and only
here. Without CUDA (`torch.cuda.is_available()` false, or no torch) they are settings that start on a small
CPU machine: float32 (bf16 hits an illegal instruction in vLLM's CPU attention kernel on some processors),
eager mode (no compile step), a KV cache of `CPU_KV_CACHE_BYTES` instead of a fraction of the machine's
memory, and a context length fitted to that cache (vLLM's `max_model_len=-1`: the model's own when it fits,
less when the model's is huge). With CUDA, vLLM's usual defaults. A setting given explicitly always wins.

This module imports nothing heavy: recipes and `--help` load it without torch or vLLM.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

EngineKind = Literal["vllm", "openai", "procedural", "transformers", "auto"]
ENGINE_KINDS: tuple[str, ...] = ("vllm", "openai", "procedural", "transformers", "auto")
LOCAL_KINDS = ("vllm", "transformers", "auto")  # engines that load the model in this process (GPUs to pin)

CPU_KV_CACHE_BYTES = 512 * 2**20  # the vLLM KV cache without CUDA: room for ~20k tokens of a 0.5B model in fp32
AUTO_FIT_MAX_MODEL_LEN = -1  # vLLM: the model's context length, lowered to what the KV cache holds


@dataclass(frozen=True)
class EngineConfig:
    """How a model is served: the engine and its settings. The model itself is named by each use."""

    kind: EngineKind = "vllm"  # vllm | openai | procedural | transformers | auto (vLLM where installed)
    # vllm and transformers
    dtype: str = "auto"  # auto: float32 without CUDA; with CUDA the model's (vllm) or bfloat16 (transformers)
    # vllm
    tp: int = 1  # tensor-parallel GPUs per engine
    max_model_len: int = 0  # 0 (auto): the model's; without CUDA, fitted to the KV cache
    gpu_memory_utilization: float = 0.9  # share of each GPU for weights and KV cache (with CUDA)
    kv_cache_memory_bytes: int = 0  # 0 (auto): sized by gpu_memory_utilization; without CUDA 512 MiB
    enforce_eager: bool | None = None  # unset (auto): true without CUDA (no compile step), false with CUDA
    # transformers
    batch_size: int = 64  # sequences per model.generate call
    device: str = "auto"  # auto: cuda where available, else cpu
    # openai (any OpenAI-compatible server: vLLM serve, SGLang, NIM, ...)
    base_url: str = ""  # the server's /v1 address, e.g. http://host:8000/v1 (required for openai)
    api_key_env: str = "OPENAI_API_KEY"  # environment variable that holds the API key
    concurrency: int = 64  # requests in flight at most
    timeout: float = 600.0  # seconds per request
    retries: int = 5  # retries on 429, 5xx, timeouts and connection errors
    backoff: float = 1.0  # seconds before the first retry, doubled each time (Retry-After wins)

    def __post_init__(self) -> None:
        if self.kind not in ENGINE_KINDS:
            raise ValueError(f"kind: expected one of {', '.join(ENGINE_KINDS)}, got {self.kind!r}")
        if self.kind == "openai" and not self.base_url:
            raise ValueError("base_url: required for the openai engine")
        if self.tp < 1:
            raise ValueError(f"tp: must be >= 1, got {self.tp}")
        if self.max_model_len < AUTO_FIT_MAX_MODEL_LEN:
            raise ValueError(f"max_model_len: must be >= 0 (0: auto), got {self.max_model_len}")
        if self.kv_cache_memory_bytes < 0:
            raise ValueError(f"kv_cache_memory_bytes: must be >= 0 (0: auto), got {self.kv_cache_memory_bytes}")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(f"gpu_memory_utilization: must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency: must be >= 1, got {self.concurrency}")
        if self.timeout <= 0:
            raise ValueError(f"timeout: must be > 0 seconds, got {self.timeout}")
        if self.retries < 0 or self.backoff < 0:
            raise ValueError("retries and backoff: must be >= 0")


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False without torch)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def resolve_kind(kind: str) -> str:
    """The engine `kind` names; "auto" is vLLM where it is installed, else transformers."""
    if kind == "auto":
        return "vllm" if vllm_installed() else "transformers"
    return kind


def vllm_settings(config: EngineConfig, cuda: bool | None = None) -> dict[str, Any]:
    """The `vllm.LLM` keyword arguments of `config` on this machine (`cuda`: None = detect), auto values resolved."""
    if cuda is None:
        cuda = cuda_available()
    settings: dict[str, Any] = {
        "tensor_parallel_size": config.tp,
        "dtype": config.dtype if cuda or config.dtype != "auto" else "float32",
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "enforce_eager": (not cuda) if config.enforce_eager is None else config.enforce_eager,
    }
    kv_cache = config.kv_cache_memory_bytes or (0 if cuda else CPU_KV_CACHE_BYTES)
    if kv_cache:
        settings["kv_cache_memory_bytes"] = kv_cache
    max_model_len = config.max_model_len or (0 if cuda else AUTO_FIT_MAX_MODEL_LEN)
    if max_model_len:
        settings["max_model_len"] = max_model_len
    return settings


def transformers_settings(config: EngineConfig, cuda: bool | None = None) -> dict[str, Any]:
    """The transformers engine's device, dtype and batch size on this machine, auto values resolved."""
    if cuda is None:
        cuda = cuda_available()
    device = ("cuda" if cuda else "cpu") if config.device == "auto" else config.device
    dtype = config.dtype if config.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
    return {"device": device, "dtype": dtype, "batch_size": config.batch_size}
