"""The transformers engine: `model.generate` in left-padded batches, for machines without vLLM (and as the
reference engine). Built by `engines.factory.make_engine` with kind `transformers` (or `auto` without vLLM),
its device and dtype resolved there (`engines.config.transformers_settings`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from thinktoggle.generators.engines.base import ChatRequest, Completion, ProgressCallback


class TransformersEngine:
    """`model.generate` in left-padded batches: the engine for machines without vLLM, and the reference one."""

    name = "transformers"
    per_request_seeds = False  # one torch seed per batch: a request's seed is not what sampled it

    def __init__(
        self, model: str | Path, *, batch_size: int = 64, device: str = "cpu", dtype: str = "float32", seed: int = 0
    ) -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.version = transformers.__version__
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"
        torch_dtype = getattr(torch, dtype, None)
        if not isinstance(torch_dtype, torch.dtype):
            raise ValueError(f"dtype: {dtype!r} is not a torch dtype (float32, bfloat16, float16, ...)")
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()
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
