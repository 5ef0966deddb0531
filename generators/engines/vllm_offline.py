"""The vLLM offline engine: `vllm.LLM.chat` on large batches, so that the engine, not Python, sets the pace.

Data parallelism is one engine per datatrove rank (see `generate.py`); tensor parallelism is vLLM's own.
A thinking budget (`SamplingConfig.thinking_budget`) is enforced by `vllm_budget.ThinkingBudgetLogitsProcessor`,
registered on every engine built here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from thinktoggle.generators.engines.base import ChatRequest, Completion, ProgressCallback, failed
from thinktoggle.generators.engines.thinking_budget import ThinkTags, count_thinking, replay

BUDGET_PROCESSOR = "thinktoggle.generators.engines.vllm_budget.ThinkingBudgetLogitsProcessor"


def visible_gpus_for_rank(rank: int, tensor_parallel_size: int) -> str:
    """The CUDA_VISIBLE_DEVICES of a data-parallel rank on one node: its own `tp` consecutive GPUs."""
    first = rank * tensor_parallel_size
    return ",".join(str(first + i) for i in range(tensor_parallel_size))


class VLLMEngine:
    """Offline vLLM. Build it from a model path (`VLLMEngine(model, ...)`) or wrap a running `vllm.LLM`
    (`VLLMEngine.from_llm(llm)`), in which case `close()` leaves that engine alone."""

    name = "vllm"

    def __init__(
        self,
        model: str = "",
        *,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        kv_cache_memory_bytes: int | None = None,
        enforce_eager: bool = False,
        seed: int = 0,
        llm: Any = None,
        per_request_seeds: bool | None = None,
        **llm_kwargs: Any,
    ) -> None:
        import vllm

        self.version = vllm.__version__
        self._owned = llm is None
        if per_request_seeds is None:
            # vLLM's CPU backend crashes the engine ("CPU Generator does not use offset") when a seeded request's
            # prompt is prefilled in chunks, which large batches cause; there, sampling uses the engine's seed.
            from vllm.platforms import current_platform

            per_request_seeds = not current_platform.is_cpu()
        self.per_request_seeds = per_request_seeds
        if llm is None:
            if not model:
                raise ValueError("VLLMEngine: a model path or id is required")
            kwargs: dict[str, Any] = {
                "tensor_parallel_size": tensor_parallel_size,
                "dtype": dtype,
                "gpu_memory_utilization": gpu_memory_utilization,
                "enforce_eager": enforce_eager,
                "seed": seed,
                **llm_kwargs,
            }
            if max_model_len:
                kwargs["max_model_len"] = max_model_len
            if kv_cache_memory_bytes:
                kwargs["kv_cache_memory_bytes"] = kv_cache_memory_bytes
            from thinktoggle.generators.engines.vllm_budget import ThinkingBudgetLogitsProcessor

            kwargs["logits_processors"] = [*(kwargs.get("logits_processors") or []), ThinkingBudgetLogitsProcessor]
            llm = vllm.LLM(model=model, **kwargs)
        self.llm = llm
        self.budgets = has_budget_processor(llm)  # a wrapped engine may lack the processor
        self._tags: ThinkTags | None = None

    @classmethod
    def from_llm(cls, llm: Any, per_request_seeds: bool | None = None) -> VLLMEngine:
        return cls(llm=llm, per_request_seeds=per_request_seeds)

    def sampling_params(self, request: ChatRequest):
        from vllm import SamplingParams

        from thinktoggle.generators.engines.vllm_budget import budget_extra_args

        s = request.sampling
        greedy = s.temperature == 0
        return SamplingParams(
            n=request.n,
            temperature=s.temperature,
            top_p=1.0 if greedy else s.top_p,
            max_tokens=s.max_tokens,
            seed=request.seed if self.per_request_seeds else None,
            extra_args=None if s.thinking_budget is None else budget_extra_args(s.thinking_budget, s.thinking_grace),
        )

    @property
    def tags(self) -> ThinkTags:
        """The think tags' ids in this model's tokenizer (read once: the newline set scans the vocabulary)."""
        if self._tags is None:
            self._tags = ThinkTags.from_tokenizer(self.llm.get_tokenizer())
        return self._tags

    def _thinking(self, request: ChatRequest, prompt_ids: Sequence[int], output_ids: Sequence[int]):
        """(thinking_tokens, think_cut) of one sample, recounted by the processor's own state machine."""
        s = request.sampling
        if s.thinking_budget is None:
            return count_thinking(self.tags, prompt_ids, output_ids), False
        tracker = replay(self.tags, s.thinking_budget, s.thinking_grace, prompt_ids, output_ids)
        return tracker.thinking_tokens, tracker.cut

    def _chat(self, requests: Sequence[ChatRequest], template_kwargs: dict[str, Any] | None) -> list[list[Completion]]:
        outputs = self.llm.chat(
            [r.messages for r in requests],
            [self.sampling_params(r) for r in requests],
            use_tqdm=False,
            chat_template_kwargs=template_kwargs,
        )
        results = []
        for request, output in zip(requests, outputs, strict=True):
            prompt_ids = output.prompt_token_ids or []
            completions = []
            for c in output.outputs:
                thinking_tokens, cut = self._thinking(request, prompt_ids, c.token_ids)
                completions.append(
                    Completion(
                        text=c.text,
                        finish_reason=c.finish_reason or "",
                        prompt_tokens=len(prompt_ids),
                        completion_tokens=len(c.token_ids),
                        thinking_tokens=thinking_tokens,
                        think_cut=cut,
                    )
                )
            if len(completions) != request.n:
                completions = failed(request.n, f"vllm_error: {len(completions)} outputs for n={request.n}")
            results.append(completions)
        return results

    def generate(
        self, requests: Sequence[ChatRequest], progress: ProgressCallback | None = None
    ) -> list[list[Completion]]:
        if not self.budgets and any(r.sampling.thinking_budget is not None for r in requests):
            raise ValueError(
                "VLLMEngine: a thinking budget was asked for but this vllm.LLM has no thinking-budget logits "
                f"processor; build it with vllm.LLM(..., logits_processors=[{BUDGET_PROCESSOR!r}]) "
                "or let VLLMEngine(model, ...) build it"
            )
        results: list[list[Completion] | None] = [None] * len(requests)
        # One chat call per distinct chat_template_kwargs (e.g. the two qwen3 modes); everything else batches.
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(json.dumps(request.chat_template_kwargs, sort_keys=True), []).append(i)
        for key, indices in groups.items():
            batch = [requests[i] for i in indices]
            try:
                outs = self._chat(batch, json.loads(key))
            except Exception as exc:  # noqa: BLE001 - one bad prompt (e.g. too long) must not sink the batch
                outs = self._one_by_one(batch, json.loads(key)) if len(batch) > 1 else [failed(batch[0].n, _why(exc))]
            for i, out in zip(indices, outs, strict=True):
                results[i] = out
                if progress:
                    progress(len(out), sum(c.completion_tokens for c in out))
        return [r for r in results if r is not None]

    def _one_by_one(self, batch: Sequence[ChatRequest], template_kwargs: dict[str, Any] | None):
        outs = []
        for request in batch:
            try:
                outs.extend(self._chat([request], template_kwargs))
            except Exception as exc:  # noqa: BLE001
                outs.append(failed(request.n, _why(exc)))
        return outs

    def close(self) -> None:
        if self._owned and self.llm is not None:
            self.llm = None
            import gc

            gc.collect()
            try:
                from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

                cleanup_dist_env_and_memory()
            except Exception:  # noqa: BLE001 - best effort: the process usually exits next
                pass


def has_budget_processor(llm: Any) -> bool:
    """Was this vllm.LLM built with the thinking-budget logits processor (as a class or by name)?"""
    engine = getattr(llm, "llm_engine", None)
    config = getattr(getattr(engine, "vllm_config", None), "model_config", None) or getattr(
        engine, "model_config", None
    )
    for processor in getattr(config, "logits_processors", None) or []:
        name = processor if isinstance(processor, str) else f"{processor.__module__}.{processor.__qualname__}"
        if name.replace(":", ".") == BUDGET_PROCESSOR:
            return True
    return False


def _why(exc: BaseException) -> str:
    return f"vllm_error: {type(exc).__name__}: {str(exc)[:300]}"


def pin_rank_gpus(rank: int, tensor_parallel_size: int, data_parallel_size: int) -> None:
    """On one node with several data-parallel ranks, give each rank its own GPUs (before CUDA starts)."""
    if data_parallel_size > 1 and "THINKTOGGLE_NO_GPU_PINNING" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible_gpus_for_rank(rank, tensor_parallel_size)
