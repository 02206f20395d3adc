"""Redaction: known secrets (env, registered) and secret-shaped strings never survive redact()."""

from __future__ import annotations

import json

import pytest

from curate.runs.redact import MASK, contains_secret, redact, redact_text, register_secret

KEY = "sk-proj-Abc123Def456Ghi789Jkl0"
HF = "hf_AbCdEfGhIjKlMnOpQrStUvWx"


def test_env_keys_and_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "plain-key-without-shape-42")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "zzzzzzzzzz")
    text = ('upstream said 401: {"headers": {"Authorization": "Bearer plain-key-without-shape-42"}} '
            f"also {KEY} and {HF} and token zzzzzzzzzz and https://x/y?api_key=abcdef&x=1")
    out = redact_text(text)
    for secret in ("plain-key-without-shape-42", KEY, HF, "zzzzzzzzzz", "abcdef"):
        assert secret not in out
    assert "x=1" in out and MASK in out
    assert not contains_secret(out)
    assert redact_text(out) == out  # idempotent


def test_registered_cli_key_and_nested_objects() -> None:
    register_secret("cli-given-key-0042")
    row = {"error": "HTTP 500: you sent cli-given-key-0042", "request": {"api_key": "anything", "n": 3},
           "headers": [["Authorization", "Basic dXNlcjpwYXNz"]], "tokens": {"in": 5}, "max_tokens": 16}
    out = redact(row)
    dumped = json.dumps(out)
    assert "cli-given-key-0042" not in dumped and "anything" not in dumped
    assert out["request"]["n"] == 3 and out["tokens"] == {"in": 5} and out["max_tokens"] == 16
    assert row["request"]["api_key"] == "anything"  # a copy: the caller's object is untouched


def test_ordinary_text_is_left_alone() -> None:
    text = "Bearer instruments and sk-learn are fine; the token count was 1234; authorization rules differ."
    assert redact_text(text).startswith("Bearer instruments and sk-learn are fine")
