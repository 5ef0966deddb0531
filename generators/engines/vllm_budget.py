"""The thinking budget in vLLM (V1): a logits processor that forces `</think>` when a sample's budget is spent.

Registered by `VLLMEngine` (`vllm.LLM(logits_processors=[ThinkingBudgetLogitsProcessor])`); a request opts in
through `SamplingParams.extra_args` (`budget_extra_args`), so unbudgeted requests cost one dict lookup.

Why not vLLM's own `SamplingParams.thinking_token_budget` (vllm/v1/sample/thinking_budget_state.py): it
forces the end tag at exactly the budget, with no grace to finish the line, and it needs a reasoning-parser
config on the engine; the toggle follows NVIDIA NIM (finish the line, at most ~10% over), the rule written
once in `thinking_budget.BudgetTracker`, which also recounts finished samples for provenance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from thinktoggle.generators.engines.thinking_budget import BudgetTracker, ThinkTags

if TYPE_CHECKING:
    from vllm.config import VllmConfig

EXTRA_BUDGET = "thinktoggle_thinking_budget"
EXTRA_GRACE = "thinktoggle_thinking_grace"


def budget_extra_args(budget: int, grace: float) -> dict[str, Any]:
    """The `SamplingParams.extra_args` that turn the processor on for one request."""
    return {EXTRA_BUDGET: budget, EXTRA_GRACE: grace}


def requested_budget(params: SamplingParams) -> tuple[int, float] | None:
    """(budget, grace) asked for by a request, None when it has no budget."""
    extra = params.extra_args or {}
    budget = extra.get(EXTRA_BUDGET)
    if budget is None:
        return None
    return budget, extra.get(EXTRA_GRACE, 0.1)


class _Row:
    """One budgeted request in the batch: its tracker, and how much of its live output it has read."""

    __slots__ = ("tracker", "output", "seen")

    def __init__(self, tracker: BudgetTracker, output: list[int]) -> None:
        self.tracker = tracker
        self.output = output  # vLLM's running list of the request's output ids (a live reference)
        self.seen = 0


class ThinkingBudgetLogitsProcessor(LogitsProcessor):
    """Forces the think block's end tag, token by token, on rows whose thinking budget is spent."""

    def __init__(self, vllm_config: VllmConfig, device: torch.device, is_pin_memory: bool) -> None:
        from transformers import AutoTokenizer

        # The tags' ids come from the model's own tokenizer, loaded here (in the engine's process): the same
        # tokenizer vLLM uses, so that no request has to carry them.
        config = vllm_config.model_config
        tokenizer = AutoTokenizer.from_pretrained(
            config.tokenizer, revision=config.tokenizer_revision, trust_remote_code=config.trust_remote_code
        )
        self.tags = ThinkTags.from_tokenizer(tokenizer)
        self.rows: dict[int, _Row] = {}

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        asked = requested_budget(sampling_params)
        if asked is None:
            return
        budget, grace = asked
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
            raise ValueError(f"{EXTRA_BUDGET} must be an int >= 0, got {budget!r}")
        if not isinstance(grace, int | float) or not 0 <= grace <= 1:
            raise ValueError(f"{EXTRA_GRACE} must be a number in [0, 1], got {grace!r}")

    def is_argmax_invariant(self) -> bool:
        return False  # forcing a token changes what greedy sampling picks

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if not batch_update:
            return
        rows = self.rows
        for index in batch_update.removed:
            rows.pop(index, None)
        for index, params, prompt_ids, output_ids in batch_update.added:
            asked = requested_budget(params)
            if asked is None:
                rows.pop(index, None)
            else:
                tracker = BudgetTracker(self.tags, *asked).prompt(prompt_ids or ())
                rows[index] = _Row(tracker, output_ids)
        for a, b, direction in batch_update.moved:
            row_a, row_b = rows.pop(a, None), rows.pop(b, None)
            if row_a is not None:
                rows[b] = row_a
            if row_b is not None and direction == MoveDirectionality.SWAP:
                rows[a] = row_b

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.rows:
            return logits
        forced_rows: list[int] = []
        forced_ids: list[int] = []
        finished: list[int] = []
        # The new tokens are read here, not in update_state: under async scheduling the last one is a -1
        # placeholder until just before sampling.
        for index, row in self.rows.items():
            output, tracker = row.output, row.tracker
            while row.seen < len(output) and output[row.seen] >= 0:
                tracker.feed(output[row.seen])
                row.seen += 1
            forced = tracker.forced
            if forced is not None:
                forced_rows.append(index)
                forced_ids.append(forced)
            elif tracker.done:
                finished.append(index)  # the block is closed: nothing more to do for this row
        for index in finished:
            del self.rows[index]
        if forced_rows:
            rows = torch.tensor(forced_rows, dtype=torch.long, device=logits.device)
            ids = torch.tensor(forced_ids, dtype=torch.long, device=logits.device)
            logits[rows] = float("-inf")
            logits[rows, ids] = 0.0  # the only finite logit: sampled whatever the temperature or top-p
        return logits
