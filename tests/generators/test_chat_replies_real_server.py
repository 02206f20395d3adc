"""Chat replies collected live from a REAL OpenAI-compatible server (llama-cpp-python's server on the
bundled SmolLM2-135M-Instruct): the Self-Instruct and Alpaca instruction prompts sent as chat, with the
`\\n\\n` stop removed as ``curate generate`` does, and every reply that holds tasks parses to some."""

from __future__ import annotations

import random
import re

import pytest

from generators.config import build_config
from generators.engines.base import Request
from generators.engines.openai_server import OpenAIEngine
from generators.parsing import parse_alpaca_tasks, parse_instruction_list
from generators.seeds import load_seeds
from generators.self_instruct import PoolTask, SelfInstruct

pytestmark = pytest.mark.slow


def _prompts(preset: str, count: int) -> list[str]:
    config = build_config(preset=preset)
    algo = SelfInstruct(config, load_seeds(), {"name": "test", "model": "bundled"}, False, "test")
    rng = random.Random(5)
    return [algo.render_instruction_prompt([PoolTask(t.id, t.instruction, t.input, t.output)
                                            for t in rng.sample(algo.seeds, config.num_prompt_instructions)])
            for _ in range(count)]


@pytest.mark.parametrize("preset", ["self-instruct", "alpaca"])
def test_live_chat_replies_that_hold_tasks_parse_to_tasks(llama_server, preset):
    client = OpenAIEngine(base_url=llama_server.base_url, api_key="none", timeout=300.0, max_retries=3)
    stop = ["\n16", "16.", "16 ."] if preset == "self-instruct" else ["\n20", "20."]
    requests = [Request(p, max_tokens=160, temperature=0.7, top_p=0.9, stop=stop, seed=k, id=f"r{k}")
                for k, p in enumerate(_prompts(preset, 3))]
    results = client.generate(requests)
    assert all(r.ok for r in results)
    held = 0
    for result in results:
        completion = result.completions[0]
        text, truncated = completion.text, completion.finish_reason == "length"
        if preset == "alpaca":
            holds = re.search(r"Instruction\s*\**\s*:[^\n]*\S", text) and re.search(r"Output\s*\**\s*:", text)
            tasks = parse_alpaca_tasks(text, 4, truncated=False, completion=False)
            if holds and not truncated:
                assert tasks, text
        else:
            holds = re.search(r"(?m)^\s*\**\d+[.)]\s*\S", text)
            if holds:
                held += 1
                assert parse_instruction_list(text, 9, 15, completion=False), text
    if preset == "self-instruct":
        assert held, "the bundled model answers the Self-Instruct prompt with a numbered list"
