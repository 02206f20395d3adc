"""Records -> token ids and labels, with the loss only on what the assistant says.

The tokenizer's own chat template is used exactly as inference uses it: for each assistant
turn we render the conversation up to it with ``add_generation_prompt=True`` (what `curate
chat` and any server feed the model) and up to its end. The characters in between are the
assistant's reply plus its end-of-turn token; tokens that start inside that span are
trained, everything else (system, user, the assistant header, the newline after the
end-of-turn token) gets label -100.

A template that is not prefix-preserving (rendering a longer conversation changes how an
earlier part is rendered) would train on text the model never sees at inference, so it is
an error naming the record, not a silent mismatch. TRL's own ``assistant_only_loss`` needs a
template with ``{% generation %}`` markers and swaps in a *different* training template for
the models it knows; rendering this way works with the template the model actually ships.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from curate.errors import CurateError

IGNORE_INDEX = -100


@dataclass
class Rendered:
    """One record as the model sees it."""

    record_id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def trainable(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def chat_template_of(tokenizer: Any) -> str:
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    if not template:
        raise CurateError(
            "the tokenizer has no chat template: pick an instruct/chat model, or give one with "
            "`sft: {chat_template_path: FILE.jinja}` in the recipe"
        )
    return template


def template_hash(tokenizer: Any) -> str:
    """Short fingerprint of the chat template, written with the run and checked by `curate chat`."""
    return hashlib.sha256(chat_template_of(tokenizer).encode()).hexdigest()[:16]


def _render(tokenizer: Any, messages: Sequence[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)


def end_of_turn_token(tokenizer: Any) -> str:
    """The token the template closes an assistant turn with (``<|im_end|>``, ``<|eot_id|>``, ``</s>``...).

    Found by rendering a probe conversation: the first special token after the reply text.
    Falls back to the tokenizer's EOS token when the template closes turns with plain text.
    """
    probe = [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}]
    prompt = _render(tokenizer, probe[:1], True)
    full = _render(tokenizer, probe, False)
    tail = full[len(prompt):] if full.startswith(prompt) else full
    after_reply = tail[tail.find("pong") + len("pong"):]
    special = sorted(
        (token for token in tokenizer.all_special_tokens + list(tokenizer.get_added_vocab()) if token),
        key=len, reverse=True,
    )
    best: tuple[int, str] | None = None
    for token in special:
        at = after_reply.find(token)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, token)
    if best is not None:
        return best[1]
    if tokenizer.eos_token:
        return tokenizer.eos_token
    raise CurateError("cannot find the end-of-turn token of this chat template, and the tokenizer has no EOS token")


def assistant_spans(
    tokenizer: Any, messages: Sequence[dict[str, str]], eot: str, record_id: str = "?"
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans to train on (reply + end-of-turn token)."""
    full = _render(tokenizer, messages, False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:index], True) if index else ""
        through = _render(tokenizer, messages[: index + 1], False)
        if not (through.startswith(before) and full.startswith(through)):
            raise CurateError(
                f"record {record_id}: the chat template renders turn {index} differently once later turns are "
                "added, so training would not match inference; use a prefix-preserving template "
                "(`sft: {chat_template_path: ...}`)"
            )
        start, end = len(before), len(through)
        # Train up to and including the end-of-turn token, not the whitespace the template adds after it:
        # the model stops at that token and never generates what follows.
        eot_at = full.rfind(eot, start, end)
        if eot_at >= 0:
            end = eot_at + len(eot)
        spans.append((start, end))
    return full, spans


def render_record(tokenizer: Any, record: dict[str, Any], eot: str) -> Rendered:
    """Token ids and labels for one record (not truncated; see ``truncate``)."""
    text, spans = assistant_spans(tokenizer, record["messages"], eot, record.get("id", "?"))
    # The template already holds any BOS it wants; adding special tokens again would double it,
    # which is also what apply_chat_template(tokenize=True) avoids.
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoded["input_ids"])
    labels = [IGNORE_INDEX] * len(input_ids)
    span_index = 0
    for position, (start, end) in enumerate(encoded["offset_mapping"]):
        if end <= start:
            continue
        while span_index < len(spans) and spans[span_index][1] <= start:
            span_index += 1
        if span_index < len(spans) and spans[span_index][0] <= start < spans[span_index][1]:
            labels[position] = input_ids[position]
    return Rendered(record.get("id", "?"), input_ids, labels)


def render_records(tokenizer: Any, records: Sequence[dict[str, Any]], eot: str | None = None) -> list[Rendered]:
    if not getattr(tokenizer, "is_fast", False):
        raise CurateError("a fast (Rust) tokenizer is needed to map tokens to characters; this model has a slow one")
    eot = eot or end_of_turn_token(tokenizer)
    return [render_record(tokenizer, record, eot) for record in records]


def truncate(rendered: Rendered, max_length: int | None) -> tuple[Rendered, int]:
    """Keep the start (as TRL's ``truncation_mode='keep_start'``); return the sample and tokens cut."""
    if max_length is None or len(rendered.input_ids) <= max_length:
        return rendered, 0
    cut = len(rendered.input_ids) - max_length
    return Rendered(rendered.record_id, rendered.input_ids[:max_length], rendered.labels[:max_length]), cut
