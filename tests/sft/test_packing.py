"""Packing isolation: a packed sample's logits equal the same sample run alone; no dense mask is built."""

from __future__ import annotations

import pytest
import torch

from sft.packing import DOCUMENT_ATTENTION, PackedCollator, plan_packing, register_document_attention


def _tiny_llama(attn: str, vocab: int = 300):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    config._attn_implementation = attn
    return LlamaForCausalLM(config).eval()


def _samples():
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(5, 300, (n,), generator=generator).tolist() for n in (13, 9, 21, 6, 17)]


def test_packed_sample_sees_only_itself():
    register_document_attention()
    model = _tiny_llama(DOCUMENT_ATTENTION)
    alone_model = _tiny_llama("sdpa")
    samples = _samples()
    rows = [
        {"input_ids": samples[0] + samples[1] + samples[2], "labels": samples[0] + samples[1] + samples[2],
         "seq_lengths": [13, 9, 21]},
        {"input_ids": samples[3] + samples[4], "labels": samples[3] + samples[4], "seq_lengths": [6, 17]},
    ]
    batch = PackedCollator(pad_token_id=0)(rows)
    assert int(batch.pop("num_real_tokens")) == sum(len(s) for s in samples)
    assert batch["input_ids"].shape == (1, 66) and "attention_mask" not in batch  # one row, no padding, no mask
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       doc_lengths=batch["doc_lengths"], use_cache=False).logits[0]
        start = 0
        for sample in samples:
            alone = alone_model(input_ids=torch.tensor([sample])).logits[0]
            torch.testing.assert_close(packed[start:start + len(sample)], alone, atol=1e-4, rtol=0)
            start += len(sample)
        # the test can fail: without the document boundaries the second sample sees the first
        naive = alone_model(input_ids=torch.tensor([samples[0] + samples[1]])).logits[0, 13:]
        alone = alone_model(input_ids=torch.tensor([samples[1]])).logits[0]
        assert (naive - alone).abs().max() > 1e-2


def test_labels_at_sample_starts_are_ignored_and_shifted():
    rows = [{"input_ids": [5, 6, 7, 8, 9], "labels": [5, 6, 7, 8, 9], "seq_lengths": [2, 3]}]
    batch = PackedCollator(pad_token_id=0)(rows)
    assert batch["labels"].tolist() == [[-100, 6, -100, 8, 9]]
    assert batch["shift_labels"].tolist() == [[6, -100, 8, 9, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1, 2]]
    assert batch["doc_lengths"].tolist() == [2, 3]


def test_plain_samples_are_concatenated_without_padding():
    rows = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = PackedCollator(pad_token_id=0)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8]]
    assert batch["doc_lengths"].tolist() == [3, 1]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100]]


@pytest.mark.parametrize("attn, mode", [
    ("sdpa", "documents"), ("eager", "documents"),
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
