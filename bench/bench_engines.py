"""Benchmark: CPU engine throughput on the bundled SmolLM2-135M-Instruct, same prompts, same max tokens.

    .venv/bin/python bench/bench_engines.py [--prompts 8] [--max-tokens 64]

The prompts are Self-Instruct instruction-generation prompts (8 in-context seed
instructions each, completion style) built by ``generators.self_instruct`` from
``seeds/seed_tasks.jsonl``. Greedy decoding, no stop sequences, so every engine does the
same work. Measured side by side in one run:

- ``llamacpp``: ``llama_cpp.Llama`` on the bundled Q4_1 GGUF, one request after another
  (threads: llama-cpp-python's default of half the cores, and all cores);
- ``transformers batched``: ``model.generate`` on the de-quantized model, 8 prompts per batch,
  left padding;
- ``transformers one at a time``: the same, one request per ``generate`` call (the usual
  baseline).

Model load time is reported apart from generation. Output: markdown on stdout,
bench/out/engines.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.config import build_config  # noqa: E402
from generators.engine import Request  # noqa: E402
from generators.seeds import load_seeds  # noqa: E402
from generators.self_instruct import SelfInstruct  # noqa: E402


def prompts(count: int, max_tokens: int) -> list[Request]:
    config = build_config(request_batch_size=count)
    algo = SelfInstruct(config, load_seeds(ROOT / "seeds"), {"name": "bench", "model": "bench"}, True, "bench")
    requests, _ = algo.build_requests(random.Random(0), 0)
    return [Request(r.prompt, max_tokens=max_tokens, temperature=0.0, chat=False, id=f"p{i}")
            for i, r in enumerate(requests)]


def measure(name: str, engine, requests: list[Request], load_s: float) -> dict:
    start = time.perf_counter()
    results = engine.generate(requests)
    wall = time.perf_counter() - start
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    tokens_out = sum(r.tokens_out for r in results)
    tokens_in = sum(r.tokens_in for r in results)
    row = {"engine": name, "load_s": load_s, "wall_s": wall, "tokens_in": tokens_in, "tokens_out": tokens_out,
           "tok_per_s": tokens_out / wall}
    print(f"{name}: {tokens_out} tokens in {wall:.1f} s = {tokens_out / wall:.1f} tok/s (load {load_s:.1f} s)",
          file=sys.stderr)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    requests = prompts(args.prompts, args.max_tokens)
    rows = []

    from generators.llamacpp_engine import LlamaCppEngine

    cores = os.cpu_count() or 1
    for threads in sorted({max(cores // 2, 1), cores}):
        start = time.perf_counter()
        engine = LlamaCppEngine(n_threads=threads)
        load = time.perf_counter() - start
        rows.append(measure(f"llamacpp ({threads} thread{'s' if threads > 1 else ''})", engine, requests, load))
        engine.close()

    from generators.hf_engine import TransformersEngine

    start = time.perf_counter()
    engine = TransformersEngine(batch_size=len(requests))
    load = time.perf_counter() - start
    rows.append(measure(f"transformers batched ({len(requests)} per batch)", engine, requests, load))
    engine.batch_size = 1
    rows.append(measure("transformers one at a time", engine, requests, load))

    baseline = rows[-1]["tok_per_s"]
    print(f"\nMachine: {platform.machine()}, {cores} cores, Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {len(requests)} prompts, "
          f"{requests[0].max_tokens} max new tokens, greedy, mean prompt "
          f"{sum(r['tokens_in'] for r in rows[:1]) / len(requests):.0f} tokens\n")
    print("| engine | tokens out | generate (s) | tokens/s | vs one-at-a-time HF | model load (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['engine']} | {r['tokens_out']} | {r['wall_s']:.1f} | {r['tok_per_s']:.1f} | "
              f"{r['tok_per_s'] / baseline:.1f}x | {r['load_s']:.1f} |")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "engines.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
