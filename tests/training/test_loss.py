"""The chunked cross-entropy equals the full-logits one: the loss and the gradients of the hidden state and of
the output embedding, with ignored tokens and chunks without a target; a rank's padding row gives zero."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from thinktoggle.training.loss import IGNORE, cross_entropy_sum  # noqa: E402


def case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, 50, 16, generator=g, dtype=torch.float32)
    weight = torch.randn(97, 16, generator=g, dtype=torch.float32)
    labels = torch.randint(0, 97, (2, 50), generator=g)
    labels[0, :20] = IGNORE  # a prompt: no target in the first chunks of row 0
    labels[1, 7:9] = IGNORE
    return hidden.requires_grad_(), weight.requires_grad_(), labels


def full_loss(hidden, weight, labels):
    logits = hidden.flatten(0, 1) @ weight.T
    return F.cross_entropy(logits, labels.flatten(), ignore_index=IGNORE, reduction="sum")


@pytest.mark.parametrize("chunk_tokens", [1, 7, 64, 1000])
def test_chunked_loss_and_gradients_equal_the_full_logits(chunk_tokens):
    hidden, weight, labels = case()
    expected = full_loss(hidden, weight, labels)
    grads = torch.autograd.grad(expected, [hidden, weight])
    hidden2, weight2, _ = case()
    loss = cross_entropy_sum(hidden2, weight2, labels, chunk_tokens=chunk_tokens)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(torch.autograd.grad(loss, [hidden2, weight2]), grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_a_row_without_targets_gives_zero_loss_and_zero_gradients():
    hidden, weight, labels = case()
    labels[:] = IGNORE
    loss = cross_entropy_sum(hidden, weight, labels, chunk_tokens=7)
    assert loss.item() == 0.0
    for grad in torch.autograd.grad(loss, [hidden, weight]):  # connected to every weight (DDP needs it) yet zero
        assert grad is not None and not grad.any()


def test_full_kernel_is_the_reference():
    hidden, weight, labels = case(1)
    torch.testing.assert_close(
        cross_entropy_sum(hidden, weight, labels, chunk_tokens=3, kernel="full"), full_loss(hidden, weight, labels)
    )
