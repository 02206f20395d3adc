"""The CPU default engine on the bundled SmolLM2-135M-Instruct: `curate generate` end to end
with no engine flag (auto -> llama.cpp where there is no GPU)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from curate.cli import cli
from curate.records import validate_record
from generators.engines.factory import resolve_engine_name

pytestmark = pytest.mark.slow


def test_generate_on_the_bundled_model_with_default_engine(seeds_file, tmp_path):
    assert resolve_engine_name("auto") in ("llamacpp", "vllm")
    out = tmp_path / "generated.jsonl"
    result = CliRunner().invoke(cli, ["generate", "--seeds", str(seeds_file.parent), "--out", str(out), "-n", "2",
                                      "--batch-size", "2", "-q"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({r["meta"]["instruction"] for r in records}) == 2
    for record in records:
        validate_record(record)
        meta = record["meta"]
        assert meta["engine"] == "llamacpp" and "SmolLM2-135M-Instruct" in meta["teacher"]
        assert meta["prompt_style"] == "completion" and meta["tokens_in"] > 0
        assert record["messages"][1]["content"].strip()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["engine"]["name"] == "llamacpp"
    assert manifest["totals"]["tokens_out"] > 0
