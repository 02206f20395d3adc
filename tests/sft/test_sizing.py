"""Sizing a run to the machine: smaller micro-batches (and then checkpointing) when there is less memory."""

from __future__ import annotations

import pytest

from curate.errors import CurateError
from sft.sizing import GB, Machine, ModelShape, plan_batch

SMOLLM2_135M = ModelShape(params=134_515_008, hidden=576, intermediate=1536, layers=30, vocab=49152)
LLAMA_8B = ModelShape(params=8_030_261_248, hidden=4096, intermediate=14336, layers=32, vocab=128256)


def _plan(machine, shape=LLAMA_8B, **kwargs):
    args = {"max_length": 1024, "batch_size": 8, "method": "qlora", "quantization": "nf4", "dtype": "bfloat16"}
    return plan_batch(machine, shape, **{**args, **kwargs})


def test_less_gpu_memory_gives_a_smaller_micro_batch_with_the_same_effective_batch():
    big = _plan(Machine("cuda", 80 * GB))
    small = _plan(Machine("cuda", 32 * GB))
    smaller = _plan(Machine("cuda", 24 * GB))
    assert smaller.micro_batch < small.micro_batch
    assert small.micro_batch < big.micro_batch
    for plan in (big, small, smaller):
        assert plan.micro_batch * plan.accumulation == 8 and plan.estimate_bytes <= plan.budget_bytes


def test_checkpointing_only_when_one_row_does_not_fit():
    roomy = _plan(Machine("cuda", 80 * GB))
    tight = _plan(Machine("cuda", 12 * GB))
    assert not roomy.activation_checkpointing
    assert tight.activation_checkpointing
    with pytest.raises(CurateError):  # because one row without it would not fit
        _plan(Machine("cuda", 12 * GB), pinned_micro=1, pinned_checkpointing=False)


def test_cpu_takes_one_packed_row_and_fits_small_model_defaults():
    plan = _plan(Machine("cpu", 20 * GB), SMOLLM2_135M, method="lora", quantization="none", dtype="bfloat16")
    assert (plan.micro_batch, plan.accumulation, plan.activation_checkpointing) == (1, 8, False)
    assert plan.estimate_bytes < 4 * GB
    starved = _plan(Machine("cpu", 4 * GB), SMOLLM2_135M, method="lora", quantization="none", dtype="float32")
    assert starved.activation_checkpointing


def test_a_pinned_micro_batch_that_cannot_fit_is_an_error_naming_value_and_estimate():
    with pytest.raises(CurateError, match=r"per_device_train_batch_size=8 with max_length=1024 needs about [\d.]+ GB"):
        _plan(Machine("cuda", 16 * GB), pinned_micro=8, pinned_checkpointing=False)
    assert _plan(Machine("cuda", 80 * GB), pinned_micro=2).micro_batch == 2


def test_nothing_fits_is_an_error_that_says_what_to_lower():
    with pytest.raises(CurateError, match="lower sft.max_length"):
        _plan(Machine("cuda", 4 * GB), method="full", quantization="none")


def test_shape_from_a_config_counts_parameters():
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
    assert abs(ModelShape.from_config(config).params - SMOLLM2_135M.params) / SMOLLM2_135M.params < 0.02
