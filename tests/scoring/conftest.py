"""Fixtures for the scoring tests: a tiny tokenizer and random Llama (built, never downloaded) and record files."""

from __future__ import annotations

from pathlib import Path

import pytest
from scoring_fixtures import build_model, build_tokenizer, make_records, write_jsonl


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    return build_model(tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer, tiny_model) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def records_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "curated.jsonl", make_records(24))
