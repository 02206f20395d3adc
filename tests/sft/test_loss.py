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


def test_trainer_loss_equals_the_models_own_loss_on_a_packed_batch():
    """sft.trainer.sum_token_nll (backbone + chunked head) against the model's full-logits loss, per sample."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from sft.packing import DOCUMENT_ATTENTION, PackedCollator, register_document_attention
    from sft.trainer import sum_token_nll

    register_document_attention()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    config._attn_implementation = DOCUMENT_ATTENTION
    model = LlamaForCausalLM(config).eval()
    samples = [list(range(10, 30)), list(range(40, 51))]
    labels = [[-100] * 8 + s[8:] for s in samples]
    batch = PackedCollator(pad_token_id=0)([{"input_ids": s, "labels": lab} for s, lab in zip(samples, labels,
                                                                                               strict=True)])
    with torch.no_grad():
        total, count = sum_token_nll(model, batch)
        config._attn_implementation = "sdpa"
        expected = [model(input_ids=torch.tensor([s]), labels=torch.tensor([lab])) for s, lab in zip(
            samples, labels, strict=True)]
    counts = [sum(1 for x in lab[1:] if x != -100) for lab in labels]
    assert count == sum(counts)
    reference = sum(out.loss * n for out, n in zip(expected, counts, strict=True))
    torch.testing.assert_close(total, reference, atol=1e-5, rtol=1e-5)
