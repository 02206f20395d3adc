"""Secrets never reach disk: redact every secret the process knows from a string or JSON-able object.

    from curate.runs.redact import redact, register_secret
    register_secret(api_key)                 # a key given on the command line (--api-key)
    errors.write_many([redact(row)])          # before anything is written: errors, logs, manifests, cards

What counts as a secret:
- the values of ``OPENAI_API_KEY``, ``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN`` and any environment
  variable named ``*_API_KEY``, ``*_TOKEN``, ``*_SECRET`` or ``*_PASSWORD`` (8 characters or more);
- every value passed to :func:`register_secret` (CLI-given keys);
- anything shaped like one: ``Bearer <token>``, ``Authorization: <value>``, ``sk-…``, ``hf_…``,
  ``api_key=`` / ``token=`` URL parameters;
- the value of a mapping key named like a credential (``api_key``, ``authorization``, ``token``, ...).

Known values are matched literally (a server that echoes the Authorization header back, as some
proxies do, cannot smuggle the key into ``errors.jsonl``); the shapes catch keys the process was
never told about. Environment values are read at each call, so a key set after import counts.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

MASK = "[REDACTED]"
_MIN_LEN = 8
_ENV_NAMES = ("OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "ANTHROPIC_API_KEY")
_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_ACCESS_KEY")
_SECRET_KEYS = re.compile(
    r"^(api[_-]?key|x-api-key|authorization|proxy-authorization|token|access[_-]?token|hf[_-]?token|"
    r"auth[_-]?token|password|secret|client[_-]?secret|bearer)$", re.IGNORECASE)
_SHAPES = [
    # Authorization: Bearer xyz / Basic xyz  (header lines, echoed error bodies)
    (re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*[\"']?)(?:bearer|basic|token)?\s*[^\s\"',;}]+"),
     r"\g<1>" + MASK),
    # a bearer token has a digit, "_" or "-" in it: "bearer instruments" in a card's example stays
    (re.compile(r"(?i)\b(bearer\s+)(?=[A-Za-z._~+/=]*[0-9_-])[A-Za-z0-9._~+/=-]{8,}"), r"\g<1>" + MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{16,}"), MASK),
    (re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token|auth)=)[^&#\s\"']+"), r"\g<1>" + MASK),
]

_lock = threading.Lock()
_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret the process was given (e.g. ``--api-key``) so it is redacted everywhere."""
    if value and len(value.strip()) >= 4:
        with _lock:
            _registered.add(value.strip())


def known_secrets() -> list[str]:
    """Every literal secret value known right now, longest first (so a key containing another is masked whole)."""
    values = set(_registered)
    for name, value in os.environ.items():
        named = name in _ENV_NAMES or name.endswith(_ENV_SUFFIXES)
        if named and value and len(value.strip()) >= _MIN_LEN:
            values.add(value.strip())
    return sorted(values, key=len, reverse=True)


_cache: tuple[tuple[str, ...], re.Pattern[str] | None] = ((), None)


def _literal_pattern() -> re.Pattern[str] | None:
    global _cache
    secrets = tuple(known_secrets())
    if secrets != _cache[0]:
        _cache = (secrets, re.compile("|".join(map(re.escape, secrets))) if secrets else None)
    return _cache[1]


def redact_text(text: str) -> str:
    """``text`` with every known secret and every secret-shaped token replaced by ``[REDACTED]``."""
    if not text:
        return text
    literal = _literal_pattern()
    if literal is not None:
        text = literal.sub(MASK, text)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """A copy of a JSON-able value (str, dict, list, ...) with every secret redacted; other types pass through."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and _SECRET_KEYS.match(key) and isinstance(item, str) and item:
                out[key] = MASK
            else:
                out[redact_text(key) if isinstance(key, str) else key] = redact(item)
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(redact(item) for item in value)
    return value


def contains_secret(text: str) -> bool:
    """True when ``text`` still holds a known secret or a secret-shaped token (for tests and checks)."""
    return redact_text(text) != text
