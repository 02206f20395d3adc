"""The models `curate eval` scores: a trained run (base + adapter) or the untrained base, with their answers.

A run is loaded exactly as `curate chat` loads it (:func:`sft.chat.load_run`): the tokenizer
saved with the run, so its chat template, end-of-turn token and template hash are the ones
training used. The base model is scored with the same tokenizer (the run's copy of the base
tokenizer), so the two differ only in the adapter.

Answers are greedy by default, generated in length-sorted batches with left padding; an
answer "ended by itself" when an end-of-turn token appears before the token cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.lm.nll import TokenNLL, token_nll
from curate.lm.render import render_records, template_hash


@dataclass
class Scored:
    """A loaded model with the ids that describe it in eval.json."""

    name: str
    model: Any
    tokenizer: Any
    stop_ids: list[int]
    model_id: str
    template_id: str
    eot: str


def load_model(run_dir: str | Path, base_only: bool = False, name: str | None = None) -> Scored:
    import yaml

    from sft.chat import load_run
    from sft.merge import run_base

    run_dir = Path(run_dir)
    loaded = load_run(run_dir, base_only=base_only)
    run = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("run") or {}
    base = run_base(run_dir)
    model_id = f"base:{base}" if base_only else f"run:{run_dir.resolve()}"
    eot = run.get("end_of_turn_token") or loaded.tokenizer.eos_token
    return Scored(name or ("base" if base_only else run_dir.name), loaded.model, loaded.tokenizer, loaded.stop_ids,
                  model_id, template_hash(loaded.tokenizer), eot)


def load_base_model(model: str, name: str = "base") -> Scored:
    """The untrained base model (``bundled``, a folder or a hub id) with its own tokenizer; for compare."""
    import torch

    from sft import modeling

    base = modeling.resolve_base(model)
    tokenizer = modeling.load_tokenizer(base)
    loaded = modeling.load_model(base, "none", "float32", "sdpa", torch.cuda.is_available())
    loaded.eval()
    from curate.lm.render import end_of_turn_token

    eot = end_of_turn_token(tokenizer)
    stops = [tokenizer.convert_tokens_to_ids(eot)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in stops:
        stops.append(tokenizer.eos_token_id)
    return Scored(name, loaded, tokenizer, stops, f"base:{base}", template_hash(tokenizer), eot)


def reference_nll(scored: Scored, messages: Sequence[list[dict[str, str]]], batch_size: int = 8) -> list[TokenNLL]:
    """Completion-only NLL of each conversation's assistant tokens (the references), with the run's template.

    Only the last assistant turn is labelled: earlier assistant turns are context, not the answer.
    """
    records = [{"id": str(i), "messages": list(m)} for i, m in enumerate(messages)]
    rendered = render_records(scored.tokenizer, records, scored.eot)
    for sample, conversation in zip(rendered, messages, strict=True):
        if sum(1 for m in conversation if m["role"] == "assistant") > 1:
            _keep_last_turn(sample)
    if any(sample.trainable == 0 for sample in rendered):
        raise CurateError("an eval reference renders to no assistant token; check the eval set and chat template")
    pad = scored.tokenizer.pad_token_id if scored.tokenizer.pad_token_id is not None else scored.stop_ids[0]
    return token_nll(scored.model, rendered, pad_id=pad, batch_size=batch_size)


def _keep_last_turn(sample: Any) -> None:
    """Unlabel every assistant span but the last one (spans are runs of labelled tokens)."""
    labels = sample.labels
    last_start = None
    for i in range(len(labels)):
        if labels[i] != -100 and (i == 0 or labels[i - 1] == -100):
            last_start = i
    for i in range(last_start or 0):
        labels[i] = -100


def generate(scored: Scored, prompts: Sequence[list[dict[str, str]]], max_new_tokens: int = 256,
             batch_size: int = 8, temperature: float = 0.0, seed: int = 0) -> list[dict[str, Any]]:
    """Answers to each prompt (in order): text, tokens (before the stop) and whether it ended by itself."""
    import torch

    tokenizer = scored.tokenizer
    texts = [tokenizer.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True) for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else scored.stop_ids[0]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out: list[dict[str, Any]] = [{}] * len(texts)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    torch.manual_seed(seed)
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(scored.model.device) for k, v in enc.items()}
            with torch.no_grad():
                generated = scored.model.generate(**enc, max_new_tokens=max_new_tokens, eos_token_id=scored.stop_ids,
                                                  pad_token_id=pad, **sampling)
            new = generated[:, enc["input_ids"].shape[1]:].tolist()
            for row, i in enumerate(batch):
                tokens = new[row]
                stop_at = next((k for k, t in enumerate(tokens) if t in scored.stop_ids), None)
                kept = tokens if stop_at is None else tokens[:stop_at]
                out[i] = {"answer": tokenizer.decode(kept, skip_special_tokens=True).strip(),
                          "tokens": len(kept), "ended": stop_at is not None}
    finally:
        tokenizer.padding_side = side
    return out
