#!/usr/bin/env python3
"""Build N curate records from the T0 file with light edits, for the `curate filter` scale benchmark.

Usage: .venv/bin/python bench/make_filter_scale_data.py ../shared/data/t0_prompt_completion.jsonl.gz OUT.jsonl [--rows 1000000]

Row i is T0 row (i mod 55,185); every pass after the first edits it lightly so the copies are
near-duplicates, not exact ones: 1 to 3 word substitutions, deletions or insertions in the
prompt and the completion, and sometimes case or spacing noise. Deterministic (--seed).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.records import make_record  # noqa: E402
from curate.records.jsonl import dumps  # noqa: E402


def light_edit(text: str, rng: random.Random, vocab: list[str]) -> str:
    words = text.split(" ")
    for _ in range(rng.randint(1, 3)):
        if not words:
            break
        at = rng.randrange(len(words))
        op = rng.random()
        if op < 0.4:
            words[at] = rng.choice(vocab)
        elif op < 0.7 and len(words) > 1:
            del words[at]
        else:
            words.insert(at, rng.choice(vocab))
    out = " ".join(words)
    noise = rng.random()
    if noise < 0.1:
        out = out.lower()
    elif noise < 0.2:
        out = out.replace(". ", ".  ")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with gzip.open(args.source, "rt", encoding="utf-8") as f:
        base = [json.loads(line) for line in f if line.strip()]
    vocab = [w for row in base[:2000] for w in row["completion"].split() if w.isalpha()] or ["the"]
    with open(args.out, "w", encoding="utf-8") as out:
        for i in range(args.rows):
            row = base[i % len(base)]
            prompt, completion = row["prompt"], row["completion"]
            if i >= len(base):
                prompt = light_edit(prompt, rng, vocab)
                completion = light_edit(completion, rng, vocab)
            record = make_record([{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
                                 meta={"source": "t0-scale", "base": i % len(base)})
            out.write(dumps(record) + "\n")
    print(f"{args.rows} records -> {args.out}")


if __name__ == "__main__":
    main()
