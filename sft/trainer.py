"""TRL's SFTTrainer plus an exact count of the real (non-padding) tokens trained on.

TRL logs ``num_tokens`` from ``attention_mask.sum()``, which is meaningless for the 4-D
block-diagonal masks of ``sft.packing``; our collators say how many real tokens each batch
holds (``num_real_tokens``), and that count feeds tokens/s, metrics.json and TRL's own log.
"""

from __future__ import annotations

from typing import Any

from trl import SFTTrainer


def real_tokens_in(inputs: dict[str, Any]) -> int:
    """Non-padding tokens in a batch, whichever collator built it."""
    if "num_real_tokens" in inputs:
        return int(inputs.pop("num_real_tokens"))
    mask = inputs.get("attention_mask")
    if mask is not None and mask.dim() == 2:
        return int(mask.sum())
    if "position_ids" in inputs:  # padding-free: one flattened row, no padding
        return int(inputs["position_ids"].numel())
    return int(inputs["input_ids"].numel())


class CurateSFTTrainer(SFTTrainer):
    real_tokens_seen: int = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        real = real_tokens_in(inputs)
        if model.training:
            self.real_tokens_seen += real
        total_before = self._total_train_tokens
        result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                      num_items_in_batch=num_items_in_batch)
        if model.training:  # replace TRL's count (mask entries for 4-D masks) by the real one
            self._total_train_tokens = total_before + real * self.accelerator.num_processes
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return result
