"""Fixtures for the sft tests: the shared tiny tokenizer and model of tests/tiny_lm.py, saved as a normal model folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_lm import CHATML, WORDS, build_model_dir, build_tokenizer, make_records  # noqa: F401 (re-exported to the tests)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("tiny-llama"), tiny_tokenizer)


@pytest.fixture
def records_file(tmp_path) -> Path:
    path = tmp_path / "curated.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in make_records(40)))
    return path
