"""Benchmark: the ROUGE-L novelty filter, ours vs the published per-candidate approach.

    .venv/bin/python bench/bench_novelty.py [--sizes 1000,2000,5000,10000,20000] [--orig-candidates 4]

Pool material: the 175 Self-Instruct seed instructions, the 7,473 GSM8K questions, then
single GSM8K question sentences until the largest size (../shared/data). Candidates:
user-oriented instructions (mostly novel) and GSM8K questions with one word dropped
(near-copies, rejected at 0.7). For each pool size this measures the time per candidate of

- ``ours``: ``generators.novelty.NoveltyIndex.check`` (all scores, top 10, average);
- ``self-instruct``: yizhongw/self-instruct's loop body: a ``multiprocessing.Pool(4)`` per
  candidate mapping ``rouge_scorer.score`` over the pool (re-tokenizing every pool entry);
- ``alpaca``: stanford_alpaca's loop body: a ``Pool(num_cpus)`` per candidate mapping
  ``rouge_scorer._score_lcs`` over pre-tokenized pool entries;

and checks that every score (hence every decision) is identical to rouge-score's. Results
go to stdout as markdown and to bench/out/novelty.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from rouge_score import rouge_scorer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from generators.novelty import NoveltyIndex  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pool_material(limit: int) -> list[str]:
    seeds = [json.loads(line)["instruction"] for line in (DATA / "self_instruct_seed_tasks.jsonl").read_text().splitlines()]
    questions = [row["instruction"] for row in json.loads((DATA / "gsm8k_train_alpaca.json").read_text())]
    sentences = [s.strip() for q in questions for s in re.split(r"(?<=[.?!])\s+", q) if len(s.split()) > 3]
    texts = list(dict.fromkeys(seeds + questions[:7000] + sentences))
    return texts[:limit]


def candidates(count: int, rng: random.Random) -> list[str]:
    novel = [json.loads(line)["instruction"] for line in (DATA / "user_oriented_instructions.jsonl").read_text().splitlines()]
    questions = [row["instruction"] for row in json.loads((DATA / "gsm8k_train_alpaca.json").read_text())][:7000]
    near = []
    for q in rng.sample(questions, count // 4):
        words = q.split()
        del words[rng.randrange(len(words))]
        near.append(" ".join(words))
    out = rng.sample(novel, count - len(near)) + near
    rng.shuffle(out)
    return out


def original_self_instruct(scorer, candidate: str, pool: list[str]) -> list[float]:
    with Pool(4) as p:
        scores = p.map(partial(scorer.score, candidate), pool)
    return [s["rougeL"].fmeasure for s in scores]


def original_alpaca(scorer, candidate: str, pool_tokens: list[list[str]], num_cpus: int) -> list[float]:
    tokens = scorer._tokenizer.tokenize(candidate)
    with Pool(num_cpus) as p:
        scores = p.map(partial(rouge_scorer._score_lcs, tokens), pool_tokens)
    return [s.fmeasure for s in scores]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,2000,5000,10000,20000")
    parser.add_argument("--candidates", type=int, default=40, help="candidates timed with ours, per size")
    parser.add_argument("--orig-candidates", type=int, default=4, help="candidates timed with each original, per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(0)
    material = pool_material(max(sizes))
    cands = candidates(args.candidates, rng)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    num_cpus = os.cpu_count() or 1
    rows = []
    mismatches = 0
    checked = 0
    for size in sizes:
        pool = material[:size]
        start = time.perf_counter()
        index = NoveltyIndex(pool)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        checks = [index.check(c) for c in cands]
        ours = (time.perf_counter() - start) / len(cands)

        timed = cands[: args.orig_candidates]
        start = time.perf_counter()
        reference = [original_self_instruct(scorer, c, pool) for c in timed]
        si = (time.perf_counter() - start) / len(timed)
        pool_tokens = [scorer._tokenizer.tokenize(t) for t in pool]
        start = time.perf_counter()
        reference_alpaca = [original_alpaca(scorer, c, pool_tokens, num_cpus) for c in timed]
        alpaca = (time.perf_counter() - start) / len(timed)
        for check, ref, ref_a in zip(checks, reference, reference_alpaca, strict=False):
            checked += 1
            mismatches += int(not np.array_equal(check.scores, np.array(ref)) or ref != ref_a)
        rejected = sum(not c.is_novel(0.7) for c in checks)
        rows.append({"pool": size, "ours_ms": ours * 1e3, "self_instruct_ms": si * 1e3, "alpaca_ms": alpaca * 1e3,
                     "speedup_vs_self_instruct": si / ours, "speedup_vs_alpaca": alpaca / ours,
                     "index_build_s": build_s, "rejected_of_candidates": f"{rejected}/{len(cands)}"})
        print(f"pool {size}: ours {ours * 1e3:.2f} ms, self-instruct {si * 1e3:.0f} ms, alpaca {alpaca * 1e3:.0f} ms",
              file=sys.stderr)

    # decisions on every candidate at the largest pool, against plain rouge-score (2 processes)
    pool = material[: max(sizes)]
    index = NoveltyIndex(pool)
    with Pool(num_cpus) as p:
        full = p.starmap(_all_scores, [(c, pool) for c in cands])
    decision_mismatch = sum(index.check(c).is_novel(0.7) != (not max(ref) > 0.7) for c, ref in zip(cands, full, strict=True))
    score_mismatch = sum(not np.array_equal(index.check(c).scores, np.array(ref)) for c, ref in zip(cands, full, strict=True))

    print(f"\nMachine: {platform.machine()}, {num_cpus} cores, Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| pool size | ours (ms/candidate) | self-instruct original (ms) | alpaca original (ms) | "
          "speed-up vs self-instruct | vs alpaca | index build (s) | rejected at 0.7 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pool']:,} | {r['ours_ms']:.2f} | {r['self_instruct_ms']:.0f} | {r['alpaca_ms']:.0f} | "
              f"{r['speedup_vs_self_instruct']:.0f}x | {r['speedup_vs_alpaca']:.0f}x | {r['index_build_s']:.2f} | "
              f"{r['rejected_of_candidates']} |")
    print(f"\nScores identical to rouge-score on {checked - mismatches}/{checked} timed candidate x pool runs; "
          f"at pool {max(sizes):,}: all {len(cands)} candidates' score vectors identical: "
          f"{score_mismatch == 0} ({score_mismatch} differ), decisions identical: {decision_mismatch == 0}.")
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "novelty.json").write_text(json.dumps({"rows": rows, "mismatches": mismatches,
                                                  "decision_mismatch": decision_mismatch,
                                                  "score_mismatch": score_mismatch}, indent=2))


def _all_scores(candidate: str, pool: list[str]) -> list[float]:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [scorer.score(candidate, p)["rougeL"].fmeasure for p in pool]


if __name__ == "__main__":
    main()
