"""Benchmark: CPU engine throughput on the bundled SmolLM2-135M-Instruct, same prompts, same max tokens.

    .venv/bin/python bench/bench_engines.py [--prompts 8] [--max-tokens 48] [--rounds 3]
    .venv/bin/python bench/bench_engines.py --end-to-end 3     # the real workload, load time included

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

The engines run interleaved, round after round, and the median is reported, so that load
from other processes on a shared machine hits every engine alike. Model load time is
reported apart from generation. Output: markdown on stdout, bench/out/engines.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.config import build_config  # noqa: E402
from generators.engines.base import Request  # noqa: E402
from generators.seeds import load_seeds  # noqa: E402
from generators.self_instruct import SelfInstruct  # noqa: E402


def prompts(count: int, max_tokens: int) -> list[Request]:
    config = build_config(request_batch_size=count)
    algo = SelfInstruct(config, load_seeds(ROOT / "seeds"), {"name": "bench", "model": "bench"}, True, "bench")
    requests, _ = algo.build_requests(random.Random(0), 0)
    return [Request(r.prompt, max_tokens=max_tokens, temperature=0.0, chat=False, id=f"p{i}")
            for i, r in enumerate(requests)]


def measure(engine, requests: list[Request]) -> dict:
    start = time.perf_counter()
    results = engine.generate(requests)
    wall = time.perf_counter() - start
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    tokens_out = sum(r.tokens_out for r in results)
    return {"wall_s": wall, "tokens_out": tokens_out, "tokens_in": sum(r.tokens_in for r in results),
            "tok_per_s": tokens_out / wall}


def end_to_end(num_instructions: int) -> None:
    """The real workload: `generate` on the repo's seeds with each CPU engine, load time included."""
    import tempfile

    from generators.engines.factory import make_engine
    from generators.run import generate

    print(f"\nEnd to end: generate {num_instructions} instructions (self-instruct preset, batch size 2, seed 42), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| engine | wall incl. load (s) | model load (s) | requests | tokens in | tokens out | rows |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ("llamacpp", "transformers"):
        start = time.perf_counter()
        engine = make_engine(name)
        load = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as folder:
            config = build_config(num_instructions=num_instructions, request_batch_size=2)
            summary = generate(config, ROOT / "seeds", Path(folder) / "generated.jsonl", engine, progress=False)
        wall = time.perf_counter() - start
        t = summary.totals
        print(f"| {name} | {wall:.1f} | {load:.1f} | {t.requests} | {t.tokens_in} | {t.tokens_out} | {t.rows} |")
        print(f"{name}: {wall:.1f} s", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3, help="each round runs every engine once, interleaved")
    parser.add_argument("--end-to-end", type=int, default=0, metavar="N",
                        help="instead: time `generate` of N instructions with each CPU engine")
    args = parser.parse_args()
    if args.end_to_end:
        end_to_end(args.end_to_end)
        return
    requests = prompts(args.prompts, args.max_tokens)

    from generators.engines.llamacpp import LlamaCppEngine
    from generators.engines.transformers_local import TransformersEngine

    cores = os.cpu_count() or 1
    engines: dict[str, tuple[object, float, int | None]] = {}
    for threads in sorted({max(cores // 2, 1), cores}):
        start = time.perf_counter()
        engine = LlamaCppEngine(n_threads=threads)
        engines[f"llamacpp ({threads} thread{'s' if threads > 1 else ''})"] = (engine, time.perf_counter() - start, None)
    start = time.perf_counter()
    hf = TransformersEngine(batch_size=len(requests))
    load = time.perf_counter() - start
    engines[f"transformers batched ({len(requests)} per batch)"] = (hf, load, len(requests))
    engines["transformers one at a time"] = (hf, load, 1)

    runs: dict[str, list[dict]] = {name: [] for name in engines}
    for round_no in range(args.rounds):
        for name, (engine, _, batch_size) in engines.items():
            if batch_size is not None:
                engine.batch_size = batch_size
            run = measure(engine, requests)
            runs[name].append(run)
            print(f"round {round_no}: {name}: {run['tokens_out']} tokens in {run['wall_s']:.1f} s = "
                  f"{run['tok_per_s']:.1f} tok/s", file=sys.stderr)

    rows = []
    for name, (_, load, _) in engines.items():
        rates = sorted(r["tok_per_s"] for r in runs[name])
        rows.append({"engine": name, "load_s": load, "median_tok_per_s": statistics.median(rates), "runs": runs[name],
                     "tokens_out": runs[name][0]["tokens_out"]})
    baseline = rows[-1]["median_tok_per_s"]
    print(f"\nMachine: {platform.machine()}, {cores} cores, Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {len(requests)} prompts (mean "
          f"{runs[rows[0]['engine']][0]['tokens_in'] / len(requests):.0f} tokens), {args.max_tokens} max new tokens, "
          f"greedy; {args.rounds} interleaved rounds\n")
    print("| engine | tokens out per round | tokens/s (median) | tokens/s (all rounds) | vs one-at-a-time HF | model load (s) |")
    print("|---|---:|---:|---|---:|---:|")
    for r in rows:
        every = ", ".join(f"{x['tok_per_s']:.1f}" for x in r["runs"])
        print(f"| {r['engine']} | {r['tokens_out']} | {r['median_tok_per_s']:.1f} | {every} | "
              f"{r['median_tok_per_s'] / baseline:.2f}x | {r['load_s']:.1f} |")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "engines.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
