"""The chunked LM-head loss equals the full-logits loss (value and gradients) to 1e-5."""

from __future__ import annotations

import torch

from curate.lm.loss import shift_labels, token_nll


def test_chunked_loss_equals_full_loss_and_gradients():
    torch.manual_seed(0)
    hidden = torch.randn(2, 37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(300, 16, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 300, (2, 37))
    labels[:, :10] = -100  # the prompt
    labels[1, 30:] = -100
    targets = shift_labels(labels)

    chunked = token_nll(hidden, weight, targets, chunk=7)
    chunked_mean = chunked.sum() / chunked.numel()
    grads = torch.autograd.grad(chunked_mean, (hidden, weight))

    logits = hidden @ weight.T
    full = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 300), labels[:, 1:].reshape(-1),
                                             ignore_index=-100)
    full_grads = torch.autograd.grad(full, (hidden, weight))
    assert chunked.numel() == int((labels[:, 1:] != -100).sum())
    torch.testing.assert_close(chunked_mean, full, atol=1e-5, rtol=0)
    for mine, theirs in zip(grads, full_grads, strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


def test_no_trainable_token_gives_an_empty_result():
    hidden = torch.randn(1, 4, 8)
    out = token_nll(hidden, torch.randn(20, 8), torch.full((1, 4), -100))
    assert out.numel() == 0
