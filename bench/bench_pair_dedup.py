#!/usr/bin/env python3
"""Pair-aware near-dedup benchmark: distinct tasks on shared passages plus planted edited copies.

Usage (from the repository root; writes into WORK, prints JSON lines and a markdown table):

    .venv/bin/python bench/bench_pair_dedup.py --work /tmp/bench_pair [--passages 500] [--seed 0]

The benchmark (built from ../shared/data/t0_prompt_completion.jsonl.gz, never copied into the
repository): T0 rows are grouped by their passage (rows sharing any prompt line of 40+ words,
joined transitively, so one example under several templates is one group; a question already
seen with the same answer under another template is the same task and is skipped); within a passage, one row per distinct normalized answer is a distinct task (T0 renders one
source example under several templates with the same answer: those are one task, not
several). ``--passages`` passages with 2+ tasks are drawn, at most 6 tasks each. Then about
40% of the tasks get 1-2 planted copies, edited the way ../shared/bench/make_neardup.py edits
(word deletions/substitutions/insertions up to 8%, casing/spacing/punctuation noise, a
preamble on 20% of answers). A task and its copies form one cluster.

Scored with ../shared/bench/score_dedup.py: precision, recall and F1 of the removals, and
``lost_clusters`` = distinct tasks with no row left. Tools: datasketch_baseline.py over
prompt + answer, and `curate filter --preset none` with --dedup-on both | response | pair,
each over a threshold grid at 5-grams (pair: prompt threshold x response threshold); the best
F1 of each is reported side by side.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dedup import CURATE, SHARED, baseline, kept_source_ids, ours, score, sh  # noqa: E402

sys.path.insert(0, str(SHARED / "bench"))
from make_neardup import make_copy  # noqa: E402

THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PAIR_PROMPT = (0.3, 0.4, 0.5, 0.6)  # --threshold (the prompts')
PAIR_RESPONSE = (0.4, 0.5, 0.6)  # --response-threshold


def run_ours(work: Path, records: Path, bench: Path, on: str, t: float, rt: float | None = None) -> dict:
    out_dir = work / f"curate_{on}_{t}_{rt}"
    extra = ["--response-threshold", str(rt)] if rt is not None else []
    ours(records, out_dir, t, 5, "--dedup-on", on, *extra)
    ids = kept_source_ids(out_dir / "curated.jsonl", work / "kept_ours.jsonl")
    label = f"curate --dedup-on {on}"
    return {"tool": label, "threshold": t if rt is None else f"{t} / {rt}", **score(bench, ids)}


def norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def long_lines(prompt: str) -> list[str]:
    return [norm(line) for line in prompt.split("\n") if len(line.split()) >= 40]


def tasks_by_passage(path: Path) -> dict[int, list[dict]]:
    """Rows joined into one passage group when they share any long line (union-find), so one
    source example rendered by several templates (passage on different lines) is one group."""
    rows, parent, owner = [], {}, {}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            lines = long_lines(row["prompt"])
            answer = row["completion"].replace("<|endoftext|>", "").strip()
            if not lines or not answer:
                continue
            i = len(rows)
            rows.append((row["prompt"], answer))
            parent[i] = i
            for key in lines:
                j = owner.setdefault(key, i)
                parent[find(i)] = find(j)
    groups: dict[int, dict[str, dict]] = defaultdict(dict)
    seen: set[tuple[str, str]] = set()
    for i, (prompt, answer) in enumerate(rows):
        task = (norm(answer), question_key(prompt) or str(find(i)))
        if task in seen:
            continue  # the same question with the same answer under another template: one task
        seen.add(task)
        groups[find(i)].setdefault(norm(answer), {"instruction": prompt, "input": "", "output": answer})
    return {g: list(t.values()) for g, t in groups.items() if len(t) >= 2}


def question_key(prompt: str) -> str | None:
    """Last six words of the last question in the prompt's short lines (templates word the rest differently)."""
    questions = [q for line in prompt.split("\n") if len(line.split()) < 40 for q in re.findall(r"[^\n?.:]*\?", line)]
    words = norm(questions[-1]).split() if questions else []
    return " ".join(words[-6:]) if words else None


def build(work: Path, passages: int, seed: int) -> Path:
    bench = work / "pair_bench.jsonl"
    if bench.exists():
        return bench
    rng = random.Random(seed)
    groups = tasks_by_passage(SHARED / "data" / "t0_prompt_completion.jsonl.gz")
    chosen = rng.sample(sorted(groups), min(passages, len(groups)))
    tasks = [t for p in chosen for t in rng.sample(groups[p], min(6, len(groups[p])))]
    vocab = [w for t in tasks[:500] for w in t["output"].split() if w.isalpha()] or ["the"]
    rows = []
    for cluster, task in enumerate(tasks):
        rows.append({"cluster": cluster, **task})
        if rng.random() < 0.4:
            for _ in range(rng.randint(1, 2)):
                copy, _ = make_copy(task, rng, 0.08, vocab)
                rows.append({"cluster": cluster, **copy})
    rng.shuffle(rows)
    with bench.open("w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            f.write(json.dumps({"id": f"pb-{i}", **row}, ensure_ascii=False) + "\n")
    print(json.dumps({"bench": str(bench), "rows": len(rows), "tasks": len(tasks), "passages": len(chosen),
                      "planted": len(rows) - len(tasks)}), flush=True)
    return bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/bench_pair")
    ap.add_argument("--passages", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    bench = build(work, args.passages, args.seed)
    records = bench.with_suffix(".records.jsonl")
    if not records.exists():
        sh(CURATE, "import", str(bench), "--out", str(records))
    rows = []
    for t in THRESHOLDS:
        kept = work / "kept_baseline.jsonl"
        baseline(bench, kept, t, 5)
        rows.append({"tool": "datasketch", "threshold": t, **score(bench, kept)})
        for on in ("both", "response"):
            rows.append(run_ours(work, records, bench, on, t))
        print(json.dumps(rows[-3:]), flush=True)
    for t in PAIR_PROMPT:
        for rt in PAIR_RESPONSE:
            rows.append(run_ours(work, records, bench, "pair", t, rt))
            print(json.dumps(rows[-1]), flush=True)
    best = {}
    for tool in dict.fromkeys(r["tool"] for r in rows):
        best[tool] = max((r for r in rows if r["tool"] == tool), key=lambda r: (r["f1"], -r["lost_clusters"]))
    (work / "pair_summary.json").write_text(json.dumps({"grid": rows, "best": best, "load": os.getloadavg()},
                                                       indent=2))
    print("\n| tool (best threshold) | threshold | precision | recall | F1 | distinct tasks lost |")
    print("|---|---|---|---|---|---|")
    for tool, r in best.items():
        print(f"| {tool} | {r['threshold']} | {r['precision']} | {r['recall']} | {r['f1']} | {r['lost_clusters']} |")
    print(f"\nload average {os.getloadavg()}")


if __name__ == "__main__":
    main()
