"""Token NLL from hidden states without building the full logits: the LM head in chunks, only where needed.

A causal LM's logits are ``[tokens, vocabulary]`` (49,152 columns for SmolLM2): for a batch of
8,192 tokens that is 1.6 GB in float32, and as much again for its gradient, although the loss
only needs the positions whose label is not -100 (the assistant's tokens). ``token_nll`` takes
the final hidden states, keeps the labelled positions, and applies the LM head and the
cross-entropy a chunk at a time; under autograd each chunk is recomputed in the backward pass
(activation checkpointing) so only one chunk's logits exist at any moment.

Shared by training (sft) and scoring/evaluation, so both compute the same per-token NLL.
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100
DEFAULT_CHUNK = 256


def _chunk_nll(hidden: Any, weight: Any, bias: Any, targets: Any) -> Any:
    import torch
    import torch.nn.functional as F

    logits = F.linear(hidden, weight, bias)
    if logits.dtype in (torch.float16, torch.bfloat16):  # the softmax in float32, as transformers does
        logits = logits.float()
    return F.cross_entropy(logits, targets, reduction="none")


def token_nll(hidden: Any, weight: Any, targets: Any, bias: Any = None, chunk: int = DEFAULT_CHUNK) -> Any:
    """NLL (nats) of ``targets`` at every position where ``targets != -100``, as a 1-D tensor (float32, or float64 for float64 inputs).

    ``hidden``: ``[..., d]`` final hidden states (already aligned with ``targets``: position i predicts
    ``targets[i]``, i.e. labels shifted by one); ``weight``/``bias``: the LM head. Positions are returned
    in row-major order of the kept positions.
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_targets = targets.reshape(-1)
    keep = flat_targets != IGNORE_INDEX
    selected = flat_hidden[keep]
    wanted = flat_targets[keep]
    if selected.shape[0] == 0:
        return selected.new_zeros(0, dtype=torch.float32)
    needs_grad = torch.is_grad_enabled() and (selected.requires_grad or weight.requires_grad)
    pieces = []
    for start in range(0, selected.shape[0], chunk):
        part, part_targets = selected[start:start + chunk], wanted[start:start + chunk]
        if needs_grad:
            pieces.append(checkpoint(_chunk_nll, part, weight, bias, part_targets, use_reentrant=False))
        else:
            pieces.append(_chunk_nll(part, weight, bias, part_targets))
    return torch.cat(pieces)


def shift_labels(labels: Any) -> Any:
    """Labels aligned with the position that predicts them (``labels[:, 1:]``, -100 appended)."""
    import torch.nn.functional as F

    return F.pad(labels[..., 1:], (0, 1), value=IGNORE_INDEX)
