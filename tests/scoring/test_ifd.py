"""IFD, its perplexity variant and perplexity from a tiny random Llama, checked against a by-hand computation."""

from __future__ import annotations

import math

import pytest
from scoring_fixtures import build_tokenizer, make_records

from curate.lm.nll import token_nll
from curate.lm.render import render_records
from curate.records import make_record
from curate.scoring.ifd import LMConfig, LMScorer


def hand_loss(model, tokenizer, messages) -> float:
    """Mean cross-entropy of the last assistant reply (+ its <|im_end|>) given everything before it,
    computed the plain Hugging Face way: model(input_ids, labels=...).loss."""
    import torch

    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    reply = messages[-1]["content"] + "<|im_end|>"
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + reply_ids])
    labels = torch.tensor([[-100] * len(prompt_ids) + reply_ids])
    with torch.no_grad():
        return float(model(input_ids=ids, labels=labels).loss)


def test_ifd_by_hand_matches_scorer_for_two_rows(tiny_model, tiny_tokenizer):
    rows = [make_record([{"role": "user", "content": "what is two plus three"},
                         {"role": "assistant", "content": "five"}], meta={}),
            make_record([{"role": "user", "content": "name a color please"},
                         {"role": "assistant", "content": "red and blue and green"}], meta={})]
    scorer = LMScorer(LMConfig(batch_size=4), model=tiny_model, tokenizer=tiny_tokenizer)
    results = scorer(rows)
    for row, result in zip(rows, results, strict=True):
        cond = hand_loss(tiny_model, tiny_tokenizer, row["messages"])
        alone = hand_loss(tiny_model, tiny_tokenizer, [{"role": "user", "content": ""}, row["messages"][1]])
        assert result["scores"]["ifd"] == pytest.approx(cond / alone, rel=1e-5)
        assert result["scores"]["ifd_ppl"] == pytest.approx(math.exp(cond) / math.exp(alone), rel=1e-5)
        assert result["scores"]["perplexity"] == pytest.approx(math.exp(cond), rel=1e-5)


def test_multi_turn_is_token_weighted_over_turns(tiny_model, tiny_tokenizer):
    messages = [{"role": "user", "content": "what is two plus three"}, {"role": "assistant", "content": "five"},
                {"role": "user", "content": "and four plus six"}, {"role": "assistant", "content": "ten is the answer"}]
    record = make_record(messages, meta={})
    result = LMScorer(model=tiny_model, tokenizer=tiny_tokenizer)([record])[0]
    # each turn given its history, and each turn alone, as summed losses over their tokens
    turns = [messages[:2], messages]
    n_tokens = [len(tiny_tokenizer(m[-1]["content"] + "<|im_end|>", add_special_tokens=False)["input_ids"])
                for m in turns]
    cond = sum(n * hand_loss(tiny_model, tiny_tokenizer, m) for n, m in zip(n_tokens, turns, strict=True))
    alone = sum(n * hand_loss(tiny_model, tiny_tokenizer, [{"role": "user", "content": ""}, m[-1]])
                for n, m in zip(n_tokens, turns, strict=True))
    assert result["scores"]["ifd"] == pytest.approx(cond / alone, rel=1e-5)


def test_values_finite_batched_equals_one_at_a_time_and_padding_side_irrelevant(tiny_model, tiny_tokenizer):
    rows = make_records(17)
    batched = LMScorer(LMConfig(batch_size=8), model=tiny_model, tokenizer=tiny_tokenizer)(rows)
    single = LMScorer(LMConfig(batch_size=1), model=tiny_model, tokenizer=tiny_tokenizer)(rows)
    left = LMScorer(LMConfig(batch_size=8), model=tiny_model, tokenizer=build_tokenizer("left"),
                    padding_side="left")(rows)
    tight = LMScorer(LMConfig(batch_size=8, max_batch_tokens=64), model=tiny_model, tokenizer=tiny_tokenizer)(rows)
    for b, s, lft, t in zip(batched, single, left, tight, strict=True):
        for key in ("ifd", "ifd_ppl", "perplexity"):
            assert math.isfinite(b["scores"][key])
            assert b["scores"][key] == pytest.approx(s["scores"][key], abs=1e-4)
            assert b["scores"][key] == pytest.approx(lft["scores"][key], abs=1e-4)
            assert b["scores"][key] == pytest.approx(t["scores"][key], abs=1e-4)


def test_too_long_and_empty_reply_are_row_errors_not_exceptions(tiny_model, tiny_tokenizer):
    long = make_record([{"role": "user", "content": "the cat " * 200}, {"role": "assistant", "content": "yes"}], meta={})
    fine = make_records(1)[0]
    results = LMScorer(LMConfig(max_length=128), model=tiny_model, tokenizer=tiny_tokenizer)([long, fine])
    assert "above max_length 128" in results[0]["error"]
    assert "scores" in results[1]


def test_token_nll_takes_rendered_or_pairs_and_matches_full_logits(tiny_model, tiny_tokenizer):
    import torch

    rendered = render_records(tiny_tokenizer, make_records(5))
    a = token_nll(tiny_model, rendered, pad_id=tiny_tokenizer.pad_token_id)
    b = token_nll(tiny_model, [(r.input_ids, r.labels) for r in rendered], batch_size=2, padding_side="left")
    for sample, x, y in zip(rendered, a, b, strict=True):
        assert x.tokens == sample.trainable - 0 and x.values == pytest.approx(y.values, abs=1e-5)
        with torch.no_grad():
            loss = tiny_model(input_ids=torch.tensor([sample.input_ids]), labels=torch.tensor([sample.labels])).loss
        assert x.mean == pytest.approx(float(loss), rel=1e-5)
