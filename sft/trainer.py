"""TRL's SFTTrainer with a loss that never builds the prompt tokens' logits, and an exact real-token count.

- ``compute_loss``: runs the model's backbone (no LM head), then ``curate.lm.loss.token_nll``
  applies the LM head and cross-entropy only where labels are not -100, in chunks. The loss is
  normalised by the trainable tokens of the whole optimizer step (``num_items_in_batch``), as
  transformers does, so gradient accumulation gives the same gradient as one big batch.
  The tutorial baseline (``baseline: tutorial``) and models with logit soft-capping keep the
  model's own loss.
- Real tokens: our collators say how many non-padding tokens each batch holds
  (``num_real_tokens``); that count feeds tokens/s, metrics.json and TRL's own log.
"""

from __future__ import annotations

from typing import Any

from trl import SFTTrainer

from curate.lm.loss import token_nll


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


def causal_lm_of(model: Any) -> Any:
    """The transformers ``*ForCausalLM`` under PEFT / accelerate wrappers."""
    inner = getattr(model, "module", model)
    return inner.get_base_model() if hasattr(inner, "get_base_model") else inner


def chunked_loss_applies(model: Any) -> bool:
    lm = causal_lm_of(model)
    config = getattr(lm, "config", None)
    if config is None or getattr(config, "final_logit_softcapping", None):
        return False
    return hasattr(lm, "get_decoder") and lm.get_output_embeddings() is not None


def sum_token_nll(model: Any, inputs: dict[str, Any]) -> tuple[Any, int]:
    """Summed NLL of the trainable tokens of a batch, and their count, without full logits."""
    from curate.lm.loss import shift_labels

    lm = causal_lm_of(model)
    targets = inputs.get("shift_labels")
    if targets is None:
        targets = shift_labels(inputs["labels"])
    forward = {key: inputs[key] for key in ("input_ids", "attention_mask", "position_ids", "doc_lengths")
               if inputs.get(key) is not None}
    hidden = lm.get_decoder()(**forward, use_cache=False).last_hidden_state
    head = lm.get_output_embeddings()
    nll = token_nll(hidden, head.weight, targets, getattr(head, "bias", None))
    return nll.sum(), int(nll.numel())


class CurateSFTTrainer(SFTTrainer):
    real_tokens_seen: int = 0
    use_model_loss: bool = False  # the tutorial baseline: the model's own full-logits loss

    def __init__(self, *args: Any, use_model_loss: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.use_model_loss = use_model_loss or not chunked_loss_applies(self.model)
        if not self.use_model_loss:
            # our loss divides by num_items_in_batch itself; the Trainer must not divide again
            self.model_accepts_loss_kwargs = True

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        real = real_tokens_in(inputs)
        if model.training:
            self.real_tokens_seen += real
        if self.use_model_loss or return_outputs:
            inputs.pop("shift_labels", None)  # labels are -100 at sample starts: the same targets
            total_before = self._total_train_tokens
            result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                          num_items_in_batch=num_items_in_batch)
            if model.training:  # replace TRL's count (mask entries) by the real one
                self._total_train_tokens = total_before + real * self.accelerator.num_processes
                self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
            return result
        total, count = sum_token_nll(model, inputs)
        if num_items_in_batch is not None:
            loss = total / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes  # as transformers: gradients are averaged over ranks
        else:
            loss = total / max(count, 1)
        if model.training:
            self._total_train_tokens += real * self.accelerator.num_processes
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Eval loss through the same chunked loss (the base class would ask for full logits)."""
        if self.use_model_loss:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        import torch

        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
