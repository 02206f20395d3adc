"""Packing that cannot leak: samples packed into one row never attend to each other.

Packing several short samples into one row removes padding, but with a plain causal mask
each sample also attends to the samples before it in the row, so the model trains on
contexts it will never see (on CPU and any non-FlashAttention backend). So:

- FlashAttention (GPU): TRL's own padding-free path (``padding_free=True``, ``cu_seq_lens``)
  keeps samples apart in the kernel.
- SDPA / eager: ``BlockDiagonalCollator`` builds the mask itself: a [batch, 1, L, L]
  causal mask that is block-diagonal over the samples of a row, and position ids that
  restart at 0 for every sample, so each sample's logits equal those of the sample alone.
- Anything else: packing off, with a one-line notice, and length-grouped batches instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100
BLOCK_DIAGONAL_ATTENTION = ("sdpa", "eager")


@dataclass
class PackingPlan:
    mode: str  # "varlen" (FlashAttention), "block_diagonal" (our mask), "off"
    notice: str | None = None

    @property
    def packing(self) -> bool:
        return self.mode != "off"


def is_flash(attn_implementation: str) -> bool:
    return "flash" in attn_implementation


def plan_packing(requested: bool, attn_implementation: str) -> PackingPlan:
    """Where packing may run and how; never a packed batch whose samples can see each other."""
    if not requested:
        return PackingPlan("off")
    if is_flash(attn_implementation):
        return PackingPlan("varlen")
    if attn_implementation in BLOCK_DIAGONAL_ATTENTION:
        return PackingPlan("block_diagonal")
    return PackingPlan(
        "off",
        f"packing off: attention '{attn_implementation}' cannot keep packed samples apart here "
        "(use sdpa, eager or flash_attention_2); batching by length instead",
    )


def segment_ids(lengths: list[int], total: int):
    """Sample index of every position of a row; -1 for padding after the last sample."""
    import torch

    ids = torch.full((total,), -1, dtype=torch.long)
    start = 0
    for index, length in enumerate(lengths):
        ids[start:start + length] = index
        start += length
    return ids


def position_ids_for(lengths: list[int], total: int):
    """Positions restart at 0 for every sample: RoPE then sees exactly what it sees for the sample alone."""
    import torch

    positions = torch.zeros(total, dtype=torch.long)
    start = 0
    for length in lengths:
        positions[start:start + length] = torch.arange(length)
        start += length
    if start < total:  # padding keeps counting, so it never looks like a new sample
        positions[start:] = torch.arange(total - start)
    return positions


def block_diagonal_mask(segments, additive_dtype=None):
    """[B, 1, L, L] mask: causal, and only within a sample. Padding attends to itself (finite softmax).

    Boolean (True = attend) for SDPA; with ``additive_dtype``, 0 / -inf-like floats for eager attention,
    which adds the mask to the scores.
    """
    import torch

    length = segments.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    same = segments[:, :, None] == segments[:, None, :]
    mask = (same & causal)[:, None]
    if additive_dtype is None:
        return mask
    additive = torch.zeros(mask.shape, dtype=additive_dtype)
    return additive.masked_fill(~mask, torch.finfo(additive_dtype).min)


@dataclass
class BlockDiagonalCollator:
    """Collates packed rows (``input_ids``, ``labels``, ``seq_lengths``) or plain samples for SDPA/eager.

    Rows stay separate (no flattening of the batch into one long row), so attention costs
    B * L^2, not (B * L)^2. ``num_real_tokens`` (non-padding) is popped by the trainer for tokens/s.
    """

    pad_token_id: int
    eager: bool = False
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(len(example["input_ids"]) for example in examples)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = len(examples)
        input_ids = torch.full((batch, longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, longest), IGNORE_INDEX, dtype=torch.long)
        positions = torch.zeros((batch, longest), dtype=torch.long)
        segments = torch.full((batch, longest), -1, dtype=torch.long)
        real = 0
        for row, example in enumerate(examples):
            ids = example["input_ids"]
            lengths = list(example.get("seq_lengths") or [len(ids)])
            size = len(ids)
            real += size
            input_ids[row, :size] = torch.tensor(ids)
            labels[row, :size] = torch.tensor(example["labels"])
            positions[row] = position_ids_for(lengths, longest)
            segments[row] = segment_ids(lengths, longest)
            # The label at a sample's first token would be predicted from the previous sample's last token.
            labels[row][positions[row] == 0] = IGNORE_INDEX
        mask = block_diagonal_mask(segments, torch.float32 if self.eager else None)
        return {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": positions,
            "attention_mask": mask,
            "num_real_tokens": torch.tensor(real),
        }
