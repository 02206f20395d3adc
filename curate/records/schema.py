"""The one record schema every stage reads and writes.

A record is a JSON object::

    {"id": "<hash of normalized content>",
     "messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "meta": {...},            # provenance; source-specific fields live here
     "scores": {"judge": 8.0}} # optional, numbers only

``messages`` is the Hugging Face conversational format. ``id`` depends only on the
normalized roles and contents, so the same example always gets the same id whatever
its provenance: resume and dedup bookkeeping key on it.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Mapping
from typing import Any

from curate.errors import RecordError

ROLES = ("system", "user", "assistant", "tool")
RECORD_KEYS = ("id", "messages", "meta", "scores")


def normalize_text(text: str) -> str:
    """NFC, collapsed whitespace, stripped: the form ids are computed on.

    ``str.split()`` splits on exactly the Unicode whitespace that ``\\s`` matches, and the
    NFC check skips the costly normalization for the usual already-normalized text.
    """
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def record_id(messages: list[Mapping[str, str]]) -> str:
    """Stable content hash of a conversation (32 hex chars of SHA-256)."""
    digest = hashlib.sha256()
    for message in messages:
        digest.update(message["role"].encode())
        digest.update(b"\x1f")
        digest.update(normalize_text(message["content"]).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()[:32]


def make_record(
    messages: list[Mapping[str, str]],
    meta: Mapping[str, Any] | None = None,
    scores: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Build a valid record; raises RecordError when the parts break the schema."""
    record: dict[str, Any] = {
        "id": "",
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "meta": dict(meta or {}),
    }
    if scores:
        record["scores"] = dict(scores)
    _check_messages(record["messages"])
    record["id"] = record_id(record["messages"])
    return record


def validate_record(obj: Any, *, check_id: bool = True) -> dict[str, Any]:
    """Check ``obj`` against the schema and return it; raise RecordError naming the field."""
    if not isinstance(obj, dict):
        raise RecordError("<record>", f"expected a JSON object, got {_type_name(obj)}")
    unknown = sorted(set(obj) - set(RECORD_KEYS) - {"reject"})
    if unknown:
        raise RecordError(unknown[0], f"unknown top-level field (allowed: {', '.join(RECORD_KEYS)}); "
                          "rows in another format (Alpaca, ShareGPT, ...): `curate import` converts them")
    if "messages" not in obj:
        raise RecordError("messages", "missing")
    _check_messages(obj["messages"])
    if "id" not in obj:
        raise RecordError("id", "missing")
    if not isinstance(obj["id"], str) or not obj["id"]:
        raise RecordError("id", f"expected a non-empty string, got {_type_name(obj['id'])}")
    if check_id and obj["id"] != record_id(obj["messages"]):
        raise RecordError("id", "does not match the hash of the messages (edited by hand? run `curate import`)")
    if "meta" not in obj:
        raise RecordError("meta", "missing")
    if not isinstance(obj["meta"], dict):
        raise RecordError("meta", f"expected an object, got {_type_name(obj['meta'])}")
    scores = obj.get("scores")
    if scores is not None:
        if not isinstance(scores, dict):
            raise RecordError("scores", f"expected an object, got {_type_name(scores)}")
        for name, value in scores.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RecordError(f"scores.{name}", f"expected a finite number, got {value!r}")
    return obj


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise RecordError("messages", f"expected a list, got {_type_name(messages)}")
    if not messages:
        raise RecordError("messages", "is empty")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RecordError(where, f"expected an object, got {_type_name(message)}")
        role = message.get("role")
        if role not in ROLES:
            raise RecordError(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
        content = message.get("content")
        if not isinstance(content, str):
            raise RecordError(f"{where}.content", f"expected a string, got {_type_name(content)}")
    roles = {m["role"] for m in messages}
    if "user" not in roles:
        raise RecordError("messages", "has no user turn")
    if "assistant" not in roles:
        raise RecordError("messages", "has no assistant turn")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def user_text(record: Mapping[str, Any]) -> str:
    """All user turns joined by blank lines (the prompt side of a record)."""
    return "\n\n".join(m["content"] for m in record["messages"] if m["role"] == "user")


def assistant_text(record: Mapping[str, Any]) -> str:
    """All assistant turns joined by blank lines (the response side of a record)."""
    return "\n\n".join(m["content"] for m in record["messages"] if m["role"] == "assistant")
