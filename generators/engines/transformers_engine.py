"""The transformers engine: `model.generate` in left-padded batches, for machines without vLLM (and as the
reference engine). Built by `engines.factory.make_engine` with kind `transformers` (or `auto` without vLLM),
its device and dtype resolved there (`engines.config.transformers_settings`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from thinktoggle.generators.engines.base import ChatRequest, Completion, ProgressCallback, SamplingConfig
from thinktoggle.generators.engines.thinking_budget import BudgetTracker, ThinkTags, count_thinking, replay


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
        self._tags: ThinkTags | None = None

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
            by_sampling: dict[SamplingConfig, list[tuple[int, ChatRequest]]] = {}
            for row in chunk:  # one generate call per sampling: its settings (and budget) apply to every row
                by_sampling.setdefault(row[1].sampling, []).append(row)
            for group in by_sampling.values():
                texts = [
                    self.tokenizer.apply_chat_template(
                        r.messages, add_generation_prompt=True, tokenize=False, **(r.chat_template_kwargs or {})
                    )
                    for _, r in group
                ]
                enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
                g = group[0][1].sampling
                masks = enc["attention_mask"]
                prompts = [ids[mask == 1].tolist() for ids, mask in zip(enc["input_ids"], masks, strict=True)]
                budget = []
                if g.thinking_budget is not None:
                    budget = [self._budget(g.thinking_budget, g.thinking_grace, prompts, enc["input_ids"].shape[1])]
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
                        logits_processor=budget or None,
                    )
                prompt_len = enc["input_ids"].shape[1]
                for (index, _), ids, prompt in zip(group, out[:, prompt_len:].tolist(), prompts, strict=True):
                    stop = ids.index(eos) + 1 if eos in ids else None
                    ids = ids[:stop] if stop else [t for t in ids if t != self.tokenizer.pad_token_id]
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    if g.thinking_budget is None:
                        thinking, cut = count_thinking(self.tags, prompt, ids), False
                    else:  # the processor's own figures: the same state machine over the same tokens
                        tracker = replay(self.tags, g.thinking_budget, g.thinking_grace, prompt, ids)
                        thinking, cut = tracker.thinking_tokens, tracker.cut
                    results[index].append(
                        Completion(
                            text=text,
                            finish_reason="stop" if stop else "length",
                            prompt_tokens=int(enc["attention_mask"][0].sum()),
                            completion_tokens=len(ids),
                            thinking_tokens=thinking,
                            think_cut=cut,
                        )
                    )
                if progress:
                    progress(len(group), 0)
        return results

    @property
    def tags(self) -> ThinkTags:
        if self._tags is None:  # once: the newline set scans the vocabulary
            self._tags = ThinkTags.from_tokenizer(self.tokenizer)
        return self._tags

    def _budget(self, budget: int, grace: float, prompts: list[list[int]], prompt_len: int):
        """A transformers logits processor forcing `</think>` on rows whose thinking budget is spent."""
        import torch
        from transformers import LogitsProcessor

        trackers = [BudgetTracker(self.tags, budget, grace).prompt(p) for p in prompts]
        start = prompt_len  # input_ids are the (left-padded) prompts, then what was generated

        class ThinkingBudget(LogitsProcessor):
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
                nonlocal start
                for row, tracker in enumerate(trackers):
                    tracker.feed_all(input_ids[row, start:].tolist())
                start = input_ids.shape[1]
                forced = [(row, t.forced) for row, t in enumerate(trackers) if t.forced is not None]
                if forced:
                    rows, ids = (torch.tensor(x, device=scores.device) for x in zip(*forced, strict=True))
                    scores[rows] = float("-inf")
                    scores[rows, ids] = 0.0
                return scores

        return ThinkingBudget()

    def close(self) -> None:
        self.model = None
