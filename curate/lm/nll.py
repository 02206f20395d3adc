"""Masked token negative log-likelihood of a causal LM, batched and padding-aware.

One function, :func:`token_nll`, answers "how surprised is the model by these tokens?" for a
list of sequences, each given as ``(input_ids, labels)`` with ``labels[t] == input_ids[t]`` on
the tokens to score and ``-100`` (:data:`curate.lm.render.IGNORE_INDEX`) elsewhere, which is
exactly what :func:`curate.lm.render.render_record` produces. Scoring (IFD, perplexity) and
evaluation (completion-only NLL of references) both call it, so they agree token for token.

Why it is written this way:

* Sequences are sorted by length and cut into batches under a token budget, so padding is
  small and a long row does not blow up memory.
* Position ids are computed from the attention mask, so left and right padding give the same
  numbers (many models otherwise number a left-padded row's tokens from the pad).
* The vocabulary projection runs only on the positions that predict a scored token, a chunk at
  a time (:func:`curate.lm.loss.token_nll`, the same head + cross-entropy training uses): the
  logits of a 49k-token vocabulary over every prompt token are most of the memory and a good
  part of the time of a small model. Models whose head does more than a linear layer (logit
  soft-capping, logit scaling) get full logits instead.
* Everything is float32 log-softmax over the selected rows; nothing masked is multiplied by
  zero (a NaN on a pad position could not leak into a sum).

    from curate.lm.nll import token_nll
    scored = token_nll(model, render_records(tokenizer, records), pad_id=tokenizer.pad_token_id)
    scored[0].nll, scored[0].tokens, scored[0].mean, scored[0].values   # sum, count, mean, per token
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IGNORE_INDEX = -100  # same value as curate.lm.render.IGNORE_INDEX (the Hugging Face convention)


@dataclass
class TokenNLL:
    """The NLL (nats) of each scored token of one sequence, in order, and its sum, count and mean."""

    values: np.ndarray

    @property
    def nll(self) -> float:
        """Summed NLL of the scored tokens."""
        return float(self.values.sum())

    @property
    def tokens(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        """Mean token cross-entropy (NaN when no token was scored)."""
        return float(self.values.mean()) if self.values.size else float("nan")


def batches_by_length(lengths: Sequence[int], batch_size: int, max_batch_tokens: int | None = None) -> list[list[int]]:
    """Indices sorted by length (longest first, ties by index) cut into batches.

    A batch holds at most ``batch_size`` sequences and, when ``max_batch_tokens`` is given, at
    most that many tokens counting padding (one over-long sequence still gets its own batch).
    Depends only on the lengths, so the same input always gives the same batches.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        width = lengths[current[0]] if current else lengths[index]
        too_many = len(current) >= batch_size
        too_big = max_batch_tokens is not None and current and width * (len(current) + 1) > max_batch_tokens
        if current and (too_many or too_big):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def _plain_head(model: Any) -> bool:
    """True when logits are just ``lm_head(last hidden state)`` (no soft-capping or scaling)."""
    config = getattr(model, "config", None)
    for attr in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale", "logits_scaling"):
        value = getattr(config, attr, None)
        if value not in (None, 1, 1.0):
            return False
    return callable(getattr(model, "get_decoder", None)) and model.get_output_embeddings() is not None


def _pad(sequences: Sequence[Sequence[int]], pad_id: int, side: str, fill: int) -> Any:
    import torch

    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), fill, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if side == "left":
            out[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
        else:
            out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
    return out, mask


def _batch_nll(model: Any, ids: list[list[int]], labels: list[list[int]], pad_id: int, side: str) -> list[np.ndarray]:
    import torch

    device = next(model.parameters()).device
    input_ids, mask = _pad(ids, pad_id, side, pad_id)
    label_ids, _ = _pad(labels, pad_id, side, IGNORE_INDEX)
    input_ids, mask, label_ids = input_ids.to(device), mask.to(device), label_ids.to(device)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    # Position t predicts token t+1: targets are the labels shifted left by one.
    targets = label_ids[:, 1:]
    rows, cols = torch.nonzero(targets != IGNORE_INDEX, as_tuple=True)
    with torch.inference_mode():
        if _plain_head(model):
            from curate.lm.loss import token_nll as head_nll

            hidden = model.get_decoder()(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                                         use_cache=False).last_hidden_state
            head = model.get_output_embeddings()
            nll = head_nll(hidden[:, :-1], head.weight, targets, getattr(head, "bias", None))
        else:
            logits = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                           use_cache=False).logits[rows, cols]
            nll = torch.nn.functional.cross_entropy(logits.float(), targets[rows, cols], reduction="none")
    values = nll.cpu().numpy().astype(np.float64)
    counts = np.bincount(rows.cpu().numpy(), minlength=len(ids))
    return np.split(values, np.cumsum(counts)[:-1])


def _ids_and_labels(item: Any) -> tuple[Sequence[int], Sequence[int]]:
    """A ``Rendered`` (``.input_ids``, ``.labels``) or an ``(input_ids, labels)`` pair."""
    if hasattr(item, "input_ids") and hasattr(item, "labels"):
        return item.input_ids, item.labels
    ids, labels = item
    return ids, labels


def token_nll(
    model: Any,
    sequences: Sequence[Any],
    pad_id: int | None = None,
    batch_size: int = 16,
    max_batch_tokens: int | None = 16384,
    padding_side: str = "right",
) -> list[TokenNLL]:
    """The NLL (nats) of each labelled token of each sequence, in input order.

    ``sequences`` are :class:`curate.lm.render.Rendered` samples or ``(input_ids, labels)``
    pairs of equal length; the first token cannot be
    scored (nothing predicts it) and is skipped if labelled. ``pad_id`` defaults to 0: padded
    positions are masked out of attention and never scored, so its value does not matter.
    The result does not depend on ``batch_size``, ``max_batch_tokens`` or ``padding_side``
    beyond float rounding (tested to 1e-4).
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    sequences = [_ids_and_labels(item) for item in sequences]
    for index, (ids, labels) in enumerate(sequences):
        if len(ids) != len(labels):
            raise ValueError(f"sequence {index}: {len(ids)} input ids but {len(labels)} labels")
    pad = 0 if pad_id is None else int(pad_id)
    out: list[np.ndarray] = [np.zeros(0)] * len(sequences)
    lengths = [len(ids) for ids, _ in sequences]
    for batch in batches_by_length(lengths, batch_size, max_batch_tokens):
        empty = [i for i in batch if lengths[i] == 0]
        batch = [i for i in batch if lengths[i] > 0]
        for i in empty:
            out[i] = np.zeros(0)
        if not batch:
            continue
        results = _batch_nll(model, [list(sequences[i][0]) for i in batch], [list(sequences[i][1]) for i in batch],
                             pad, padding_side)
        for i, values in zip(batch, results, strict=True):
            out[i] = values
    return [TokenNLL(values) for values in out]
