"""Cross-entropy from the last hidden state without materialising the logits of the whole batch.

The full logits of one 16,384-token row of a 151,936-word vocabulary are 10 GB in fp32, and the softmax and its
gradient hold two more copies. Here the tokens are cut into chunks; each chunk's logits are computed, reduced to
a summed loss, and dropped (torch.utils.checkpoint recomputes them in the backward pass, one chunk at a time),
so the peak is one chunk's logits whatever the sequence length. Chunks without a target are skipped.
`bench/train_memory.py` measures the peak against the full logits; tests/training check the loss and the
gradients equal the full computation's.

`liger` uses Liger-Kernel's fused linear cross-entropy (Triton, GPU only) where it is installed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from thinktoggle.training.data import IGNORE


class LastHidden(torch.nn.Module):
    """A causal LM without its output layer: the last hidden state (after the final norm). What the ranks run
    (and DDP wraps: every weight, the output embedding included, is registered here for the all-reduce)."""

    def __init__(self, causal_lm: torch.nn.Module) -> None:
        super().__init__()
        self.causal_lm = causal_lm

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        out = self.causal_lm.base_model(input_ids=input_ids, position_ids=position_ids, use_cache=False)
        return out.last_hidden_state


def _chunk_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = F.linear(hidden, weight).float()  # bf16 under autocast; the softmax in fp32
    return F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")


def cross_entropy_sum(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, *, chunk_tokens: int, kernel: str = "chunked"
) -> torch.Tensor:
    """Summed cross-entropy of `labels` ([B, T], IGNORE where no loss) under logits = hidden @ weight.T.

    `hidden` [B, T, H] is the model's last hidden state (after its final norm), `weight` [V, H] its output
    embedding. kernel: chunked (`chunk_tokens` tokens at a time), full (one chunk, kept for the backward:
    the reference), liger (fused kernel).
    """
    hidden, labels = hidden.flatten(0, 1), labels.flatten()
    if kernel == "liger":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        return LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE, reduction="sum")(weight, hidden, labels)
    if kernel == "full" or hidden.shape[0] <= chunk_tokens:  # one chunk: nothing to save by recomputing it
        return _chunk_loss(hidden, weight, labels)
    total = None
    for start in range(0, hidden.shape[0], chunk_tokens):
        chunk = labels[start : start + chunk_tokens]
        if not bool((chunk != IGNORE).any()):
            continue
        loss = checkpoint(_chunk_loss, hidden[start : start + chunk_tokens], weight, chunk, use_reentrant=False)
        total = loss if total is None else total + loss
    if total is None:  # no target at all (a rank's padding row): a zero that still reaches every weight
        total = _chunk_loss(hidden[:1], weight, labels[:1].clamp(min=0)) * 0.0
    return total
