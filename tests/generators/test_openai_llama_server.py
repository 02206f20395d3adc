"""The openai engine against a REAL OpenAI-compatible server: llama-cpp-python's server on the
bundled SmolLM2-135M-Instruct GGUF, started on a free 127.0.0.1 port. Includes a server that is
killed mid-run and restarted: the run finishes with every row accounted for."""

from __future__ import annotations

import json
import threading
import time

import pytest

from curate.records import validate_record
from generators.config import build_config
from generators.engines.base import Request
from generators.engines.openai_server import OpenAIEngine
from generators.run import generate

pytestmark = pytest.mark.slow

def small_config(**overrides):
    config = build_config(**{"request_batch_size": 1, "prompt_style": "completion", "stall_batches": 40, **overrides})
    config.instructions.max_tokens = 96
    config.instances.max_tokens = 96
    config.instances_classification_max_tokens = 96
    return config


def engine(server, **options) -> OpenAIEngine:
    defaults = {"retry_initial_wait": 0.5, "retry_max_wait": 2.0, "max_retries": 30, "timeout": 120.0}
    return OpenAIEngine(base_url=server.base_url, api_key="none", **{**defaults, **options})


def test_chat_and_completion_on_the_real_server(llama_server):
    client = engine(llama_server)
    assert client.model  # the server's only model, found by listing /v1/models
    chat, completion, cut = client.generate([
        Request("Name a colour.", max_tokens=16, temperature=0.0, id="chat"),
        Request("The capital of France is", max_tokens=8, temperature=0.0, chat=False, id="completion"),
        Request("Count from one to fifty in words:", max_tokens=4, temperature=0.0, chat=False, id="cut"),
    ])
    assert chat.ok and chat.completions[0].text.strip() and chat.tokens_in > 5 and chat.tokens_out > 0
    assert completion.ok and completion.completions[0].text.strip()
    assert cut.ok and cut.completions[0].finish_reason == "length" and cut.tokens_out == 4


def test_server_killed_mid_run_and_restarted_loses_nothing(llama_server, seeds_file, tmp_path):
    out = tmp_path / "generated.jsonl"
    client = engine(llama_server)
    outcome: dict = {}

    def run():
        try:
            outcome["summary"] = generate(small_config(num_instructions=3), seeds_file, out, client, progress=False)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = err

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (tmp_path / "manifest.json").exists() and worker.is_alive():
        time.sleep(0.1)
    assert worker.is_alive(), f"the run ended before the kill: {outcome}"
    llama_server.kill()
    time.sleep(2.0)
    llama_server.start()
    worker.join(timeout=200)
    assert not worker.is_alive() and "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert summary.status == "complete"
    assert client.retries >= 1  # requests did hit the dead server and were retried

    records = [json.loads(line) for line in out.read_text().splitlines()]
    for record in records:
        validate_record(record)
    assert len({r["id"] for r in records}) == len(records)
    assert len({r["meta"]["instruction"] for r in records}) == 3
    errors = [json.loads(line) for line in (tmp_path / "errors.jsonl").read_text().splitlines()]
    rejected = [json.loads(line) for line in (tmp_path / "rejected_candidates.jsonl").read_text().splitlines()]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    totals = manifest["totals"]
    assert totals["rows"] == len(records) and totals["errors"] == len(errors) == totals["failed_requests"]
    assert totals["rejected_total"] == len(rejected)
    assert totals["requests"] >= 3 and totals["tokens_in"] > 0 and totals["tokens_out"] > 0
    assert manifest["engine"]["name"] == "openai" and records[0]["meta"]["teacher"] == client.model
