"""What breaks training: chat-template special tokens written as text, roles out of order, personal data.

* Special tokens: a response ending in the literal text ``<|endoftext|>`` becomes a real
  special token inside the assistant target once tokenized, and the model learns to emit
  the base EOS mid-answer. :data:`SPECIAL_TOKENS` lists the strings of common chat
  templates; :func:`strip_trailing_special` removes one trailing token from each assistant
  turn (``--strip-special-tokens``) instead of dropping the row.
* Roles: a valid record is an optional system message, then user/assistant exchanges
  (tool messages only after an assistant turn, answered by an assistant turn), ending on
  an assistant turn: :data:`ROLE_ORDER` over one letter per message.
* PII: e-mail addresses, phone numbers, IPv4 addresses, credit-card-like numbers and
  API-key-like strings (:data:`PII_PATTERNS`); rows are rejected (``--pii reject``) or the
  matches replaced by ``[EMAIL]``, ``[PHONE]``, ... (``--pii mask``).
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im_sep|>", "</s>", "<s>", "[INST]", "[/INST]", "<<SYS>>",
    "<</SYS>>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|begin_of_text|>", "<|end_of_text|>",
    "<|eom_id|>", "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>",
    "<|end|>", "<|endofprompt|>", "<|padding|>", "<pad>", "<unk>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>",
)
"""Special-token strings of common chat templates (GPT-2/Qwen/ChatML, Llama 2 and 3, Mistral, Gemma, Phi, DeepSeek)."""

ROLE_ORDER = r"^s?(?:ua(?:t+a)*)+$"
"""Valid role sequences, one letter per message: s(ystem) u(ser) a(ssistant) t(ool)."""

PII_PATTERNS: dict[str, tuple[str, str]] = {
    "email": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[EMAIL]"),
    "api_key": (r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]"
                r"{36,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})", "[API_KEY]"),
    "credit_card": (r"\b(?:\d{4}[ -]){3}\d{1,4}\b|\b(?:3[47]\d{13}|4\d{15}|5[1-5]\d{14}|6011\d{12})\b", "[CREDIT_CARD]"),
    "ip_address": (r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b",
                   "[IP_ADDRESS]"),
    "phone": (r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\b\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}\b", "[PHONE]"),
}
"""kind: (regex, mask). Checked in this order, so a credit-card number is not also a phone number."""


def special_token_regex(extra: list[str] | tuple[str, ...] = ()) -> str:
    return "(" + "|".join(re.escape(t) for t in (*SPECIAL_TOKENS, *extra)) + ")"


def _strip_one(text: str, tokens: tuple[str, ...]) -> str | None:
    body = text.rstrip()
    for token in tokens:
        if body.endswith(token):
            return body[: -len(token)].rstrip()
    return None


def strip_trailing_special(messages: list[dict[str, Any]], extra: tuple[str, ...] = ()
                           ) -> tuple[list[dict[str, Any]], bool]:
    """Messages with one trailing special token removed from each assistant turn, and whether any was."""
    tokens = (*SPECIAL_TOKENS, *extra)
    out, changed = [], False
    for message in messages:
        stripped = _strip_one(message["content"], tokens) if message["role"] == "assistant" else None
        if stripped is None:
            out.append(message)
        else:
            out.append({**message, "content": stripped})
            changed = True
    return out, changed


def pii_expr() -> pl.Expr:
    """PII kinds found in the prompt or the response, comma-separated, null when none."""
    found = [pl.when(pl.col("prompt").str.contains(rx) | pl.col("response").str.contains(rx)).then(pl.lit(kind))
             for kind, (rx, _) in PII_PATTERNS.items()]
    return pl.concat_str(found, separator=",", ignore_nulls=True).replace("", None)


def mask_text(text: str) -> str:
    for rx, mask in PII_PATTERNS.values():
        text = re.sub(rx, mask, text)
    return text


def _mask_expr(col: str) -> pl.Expr:
    expr = pl.col(col)
    for rx, mask in PII_PATTERNS.values():
        expr = expr.str.replace_all(rx, mask)
    return expr


def mask_pii(frame: pl.DataFrame) -> pl.DataFrame:
    """Prompt and response with PII replaced by its mask; ``pii`` names the kinds found (null: none)."""
    frame = frame.with_columns(pii_expr().alias("pii"))
    return frame.with_columns(
        pl.when(pl.col("pii").is_not_null()).then(_mask_expr(c)).otherwise(pl.col(c)).alias(c)
        for c in ("prompt", "response"))


def rewrite_record(row: dict[str, Any], strip: bool, mask: bool, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The record as the filter changed it (trailing special tokens stripped, PII masked), with its new id."""
    from curate.records import record_id

    messages = row["messages"]
    if strip:
        messages, _ = strip_trailing_special(messages, extra)
    if mask:
        messages = [{**m, "content": mask_text(m["content"])} for m in messages]
    return {**row, "id": record_id(messages), "messages": messages}
