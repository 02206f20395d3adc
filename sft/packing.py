"""Packing that cannot leak, without a dense mask: packed samples never attend to each other.

Packing several short samples into one row removes padding, but with a plain causal mask each
sample also attends to the samples before it, so the model trains on contexts it never sees.
Two ways keep them apart, neither of which builds an ``L x L`` mask or keeps every layer's
attention probabilities:

- FlashAttention (GPU): TRL's padding-free path (``padding_free=True``, ``cu_seq_lens``).
- Everywhere else (CPU, GPUs without FlashAttention): ``PackedCollator`` concatenates the
  micro-batch into one row without padding, with position ids that restart at 0 for every sample,
  and the ``curate_documents`` attention (registered with transformers) runs causal SDPA once
  per sample of that row. Causal SDPA with no mask takes PyTorch's flash kernel on CPU, which
  keeps only a log-sum-exp per query for the backward pass.

Measured against the dense block-diagonal mask this replaced: bench/results/train.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100
DOCUMENT_ATTENTION = "curate_documents"


@dataclass
class PackingPlan:
    mode: str  # "varlen" (FlashAttention), "documents" (per-sample SDPA over one row), "off"
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
    if attn_implementation in ("sdpa", "eager", DOCUMENT_ATTENTION):
        return PackingPlan("documents")
    return PackingPlan(
        "off",
        f"packing off: attention '{attn_implementation}' cannot keep packed samples apart here "
        "(use sdpa or flash_attention_2); batching by length instead",
    )


def _no_mask(*args: Any, **kwargs: Any) -> None:
    """The documents are separated inside the attention function, so transformers builds no mask."""
    return None


def document_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                       dropout: float = 0.0, scaling: float | None = None, doc_lengths: Any = None,
                       **kwargs: Any) -> tuple[Any, None]:
    """Causal SDPA separately over each sample of a packed row (query ``[B, H, L, D]``)."""
    import torch
    import torch.nn.functional as F

    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # grouped-query attention: each key/value head serves `groups` query heads
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    length = query.shape[2]
    bounds = [int(n) for n in doc_lengths.tolist()] if doc_lengths is not None else [length]
    if query.shape[0] != 1 and doc_lengths is not None:
        raise ValueError("document attention expects one packed row per micro-batch")
    outputs, start = [], 0
    for size in bounds:
        end = start + size
        outputs.append(F.scaled_dot_product_attention(
            query[:, :, start:end], key[:, :, start:end], value[:, :, start:end],
            is_causal=True, dropout_p=dropout if module.training else 0.0, scale=scaling))
        start = end
    if start < length:  # never happens with PackedCollator; keeps shapes right for a short doc list
        outputs.append(F.scaled_dot_product_attention(query[:, :, start:], key[:, :, start:], value[:, :, start:],
                                                      is_causal=True, scale=scaling))
    output = torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]
    return output.transpose(1, 2).contiguous(), None


def register_document_attention() -> str:
    """Make ``attn_implementation="curate_documents"`` known to transformers; returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(DOCUMENT_ATTENTION, document_attention)
    AttentionMaskInterface.register(DOCUMENT_ATTENTION, _no_mask)
    return DOCUMENT_ATTENTION


@dataclass
class PackedCollator:
    """Packed rows (``input_ids``, ``labels``, ``seq_lengths``) or plain samples -> one row, no padding.

    Returns ``input_ids``/``labels``/``position_ids`` of shape ``[1, N]``, ``shift_labels`` (what
    each position predicts; -100 where the next token starts another sample), ``doc_lengths`` for
    the attention, and ``num_real_tokens`` (popped by the trainer for tokens/s).
    """

    pad_token_id: int

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        lengths: list[int] = []
        for example in examples:
            row_ids, row_labels = list(example["input_ids"]), list(example["labels"])
            start = 0
            for size in list(example.get("seq_lengths") or [len(row_ids)]):
                sample_labels = row_labels[start:start + size]
                # The first token of a sample is never predicted from the previous sample.
                labels.extend([IGNORE_INDEX] + sample_labels[1:])
                ids.extend(row_ids[start:start + size])
                positions.extend(range(size))
                lengths.append(size)
                start += size
        input_ids = torch.tensor([ids], dtype=torch.long)
        label_tensor = torch.tensor([labels], dtype=torch.long)
        shifted = torch.full_like(label_tensor, IGNORE_INDEX)
        shifted[0, :-1] = label_tensor[0, 1:]  # a sample start's label is -100, so no cross-sample target
        return {
            "input_ids": input_ids,
            "labels": label_tensor,
            "shift_labels": shifted,
            "position_ids": torch.tensor([positions], dtype=torch.long),
            "doc_lengths": torch.tensor(lengths, dtype=torch.long),
            "num_real_tokens": torch.tensor(len(ids)),
        }
