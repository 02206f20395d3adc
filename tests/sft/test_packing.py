"""Packing isolation: a packed sample's logits equal the same sample run alone (CPU, SDPA and eager)."""

from __future__ import annotations

import pytest
import torch

from sft.packing import BlockDiagonalCollator, plan_packing


def _tiny_llama(attn: str, vocab: int = 300):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    config._attn_implementation = attn
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_sample_sees_only_itself(attn):
    model = _tiny_llama(attn)
    generator = torch.Generator().manual_seed(1)
    samples = [torch.randint(5, 300, (n,), generator=generator).tolist() for n in (13, 9, 21, 6, 17)]
    rows = [
        {"input_ids": samples[0] + samples[1] + samples[2], "labels": samples[0] + samples[1] + samples[2],
         "seq_lengths": [13, 9, 21]},
        {"input_ids": samples[3] + samples[4], "labels": samples[3] + samples[4], "seq_lengths": [6, 17]},
    ]
    batch = BlockDiagonalCollator(pad_token_id=0, eager=attn == "eager")(rows)
    assert int(batch.pop("num_real_tokens")) == sum(len(s) for s in samples)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"], use_cache=False).logits
        where = [(0, 0), (0, 13), (0, 22), (1, 0), (1, 6)]
        for sample, (row, start) in zip(samples, where, strict=True):
            alone = model(input_ids=torch.tensor([sample])).logits[0]
            torch.testing.assert_close(packed[row, start:start + len(sample)], alone, atol=1e-4, rtol=0)
        # the test can fail: with a plain causal mask the second sample sees the first
        naive = model(input_ids=torch.tensor([samples[0] + samples[1]])).logits[0, 13:]
        alone = model(input_ids=torch.tensor([samples[1]])).logits[0]
        assert (naive - alone).abs().max() > 1e-2


def test_labels_at_sample_starts_are_ignored():
    rows = [{"input_ids": [5, 6, 7, 8, 9], "labels": [5, 6, 7, 8, 9], "seq_lengths": [2, 3]}]
    batch = BlockDiagonalCollator(pad_token_id=0)(rows)
    assert batch["labels"].tolist() == [[-100, 6, -100, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1, 2]]


def test_padding_rows_stay_finite():
    rows = [{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = BlockDiagonalCollator(pad_token_id=0, eager=True)(rows)
    mask = batch["attention_mask"]
    assert mask.shape == (2, 1, 3, 3)
    # every query (padding included) may attend to at least one key, so softmax never divides by zero
    assert ((mask == 0).sum(-1) > 0).all()
    assert batch["labels"][1].tolist() == [-100, -100, -100]


@pytest.mark.parametrize("attn, mode", [
    ("sdpa", "block_diagonal"), ("eager", "block_diagonal"),
    ("flash_attention_2", "varlen"), ("flash_attention_3", "varlen"),
    ("flex_attention", "off"),
])
def test_packing_only_where_samples_are_isolated(attn, mode):
    plan = plan_packing(True, attn)
    assert plan.mode == mode
    assert (plan.notice is not None) == (mode == "off")
    assert plan_packing(False, attn).mode == "off"


@pytest.mark.gpu
def test_flash_attention_varlen_packing_is_isolated():
    """TRL's padding-free collator + FlashAttention: the packed sample equals the sample alone (GPU only)."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = _tiny_llama("flash_attention_2").to("cuda", torch.bfloat16)
    a, b = list(range(5, 30)), list(range(40, 57))
    collator = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    batch = collator([{"input_ids": a + b, "labels": a + b, "seq_lengths": [len(a), len(b)]}])
    batch = {k: (v.cuda() if torch.is_tensor(v) else v) for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        packed = model(**batch).logits[0, len(a):]
        alone = model(input_ids=torch.tensor([b], device="cuda")).logits[0]
    torch.testing.assert_close(packed.float(), alone.float(), atol=2e-2, rtol=0)
