"""Tiny real components for the scoring tests (helpers; fixtures in conftest.py): the shared tiny tokenizer,
model and records of tests/tiny_lm.py, and small record files."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_lm import CHATML, WORDS, build_tokenizer, make_records  # noqa: F401 (re-exported to the tests)
from tiny_lm import build_model as _tiny_model


def build_model(tokenizer):
    """The shared tiny Llama, untied embeddings, in eval mode."""
    return _tiny_model(tokenizer, tie_word_embeddings=False).eval()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
