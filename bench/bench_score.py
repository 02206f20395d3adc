"""Benchmarks of `curate score`: do the scores tell good pairs from bad, and how fast is IFD on CPU?

    .venv/bin/python bench/bench_score.py auc [--rows 252] [--judge-rows 40] [--out bench/results/score_auc.json]
    .venv/bin/python bench/bench_score.py judge [--rows 252] [--judge-rows 24]
    .venv/bin/python bench/bench_score.py throughput [--rows 48] [--batch-size 16]
    .venv/bin/python bench/bench_score.py diversity --neardup NEARDUP.jsonl [--rows 300]

``auc``: from ../shared/data/user_oriented_instructions.jsonl (252 expert-written instruction/answer
pairs; read in place, never copied) builds a mixed set: every clean pair plus corrupted copies:

* ``truncated``: the answer cut mid-sentence at about half its words (answers of 8+ words);
* ``swapped``: the answer of another instruction (a fixed derangement);
* ``refusal``: the answer replaced by a refusal or boilerplate line (rotating through five);
* ``first_sentence``: the answer cut to its first sentence (answers of 2+ sentences).

Each scorer's ROC-AUC of clean vs corrupted (overall and per type) is computed in its natural
direction, the one a selection would use: ``ifd``/``ifd_ppl`` high = keep (Cherry LLM and
Superfiltering keep the top), ``perplexity`` low = keep, ``length`` long = keep (the "Long Is
More" baseline), ``judge`` high = keep. AUC below 0.5 means the direction is wrong for that
corruption. The judge (bundled 135M through the CPU engine) runs on a seeded subsample.

``throughput``: IFD rows/s with the bundled model on CPU, batched vs one row at a time (the
same scorer with batch_size=1), and vs a naive reference (batch 1, full-vocabulary logits, the
two passes run separately, as the published scripts do).

``diversity``: which similarity should `curate select --diversity` use? On a labelled near-duplicate
set (``../shared/bench/make_neardup.py``; rows sharing a ``cluster`` are copies), ROC-AUC of
duplicate vs non-duplicate pairs for MinHash Jaccard (the filter's signatures) and for the cosine
of mean-pooled SmolLM2 hidden states, and what the greedy gate does at a few thresholds: clusters
that keep more than one member (duplicates let through) and distinct rows refused (clusters lost).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "user_oriented_instructions.jsonl"
REFUSALS = [
    "I'm sorry, but I can't help with that request.",
    "As an AI language model, I do not have personal opinions or the ability to do that.",
    "Sure! Here is the answer to your question.",
    "I cannot provide an answer to this question. Please consult a professional.",
    "Thank you for your question. I hope this helps! Let me know if you have any other questions.",
]
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def load_pairs(path: Path = DATA) -> list[tuple[str, str]]:
    pairs = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        instance = row["instances"][0]
        prompt = row["instruction"] + (f"\n\n{instance['input']}" if instance.get("input", "").strip() else "")
        pairs.append((prompt, instance["output"]))
    return pairs


def corruptions(pairs: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(prompt, answer, kind) for every clean pair and its corrupted copies."""
    out = [(p, a, "clean") for p, a in pairs]
    n = len(pairs)
    for i, (prompt, answer) in enumerate(pairs):
        words = answer.split()
        if len(words) >= 8:
            out.append((prompt, " ".join(words[: len(words) // 2]), "truncated"))
        out.append((prompt, pairs[(i + n // 2 + 1) % n][1], "swapped"))
        out.append((prompt, REFUSALS[i % len(REFUSALS)], "refusal"))
        sentences = SENTENCE.split(answer.strip())
        if len(sentences) >= 2:
            out.append((prompt, sentences[0], "first_sentence"))
    return out


def records(items: list[tuple[str, str, str]]) -> list[dict]:
    from curate.records import make_record

    rows = []
    for prompt, answer, kind in items:
        row = make_record([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                          meta={"corruption": kind})
        rows.append(row)
    return rows


def roc_auc(positive: list[float], negative: list[float]) -> float:
    """P(score of a clean row > score of a corrupted one), ties counting one half (Mann-Whitney)."""
    import numpy as np
    from scipy.stats import rankdata

    values = np.array(positive + negative, dtype=float)
    ranks = rankdata(values)
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


DIRECTION = {"ifd": 1, "ifd_ppl": 1, "perplexity": -1, "length": 1, "judge": 1}


def auc_table(rows: list[dict], results: dict[str, list[float | None]]) -> dict[str, dict[str, float]]:
    kinds = sorted({r["meta"]["corruption"] for r in rows} - {"clean"})
    table = {}
    for name, values in results.items():
        sign = DIRECTION[name]
        by_kind: dict[str, list[float]] = {}
        for row, value in zip(rows, values, strict=True):
            if value is not None:
                by_kind.setdefault(row["meta"]["corruption"], []).append(sign * value)
        clean = by_kind.get("clean", [])
        corrupted = [v for k in kinds for v in by_kind.get(k, [])]
        entry = {"all": roc_auc(clean, corrupted), "n_clean": len(clean), "n_corrupted": len(corrupted)}
        for kind in kinds:
            if by_kind.get(kind):
                entry[kind] = roc_auc(clean, by_kind[kind])
        table[name] = entry
    return table


def judge_sample(rows: list[dict], size: int) -> list[int]:
    """A seeded sample, half clean and half corrupted (so an AUC has both sides)."""
    rng = random.Random(0)
    clean = [i for i, r in enumerate(rows) if r["meta"]["corruption"] == "clean"]
    bad = [i for i, r in enumerate(rows) if r["meta"]["corruption"] != "clean"]
    return sorted(rng.sample(clean, min(size // 2, len(clean))) + rng.sample(bad, min(size - size // 2, len(bad))))


def run_judge(args: argparse.Namespace) -> dict:
    """The judge alone (bundled model, CPU engine) on a stratified sample, with length on the same rows."""
    from curate.scoring.judge import JudgeScorer
    from curate.scoring.length import LengthScorer

    rows = records(corruptions(load_pairs()[: args.rows]))
    sub = [rows[i] for i in judge_sample(rows, args.judge_rows)]
    out: dict = {"rows": len(sub), "load_before": os.getloadavg()}
    began = time.perf_counter()
    judged = JudgeScorer()(sub)
    out["judge_seconds"] = round(time.perf_counter() - began, 1)
    out["judge_errors"] = sum(1 for r in judged if "error" in r)
    out["judge_parsed_from"] = dict(Counter(r["meta"]["parsed_from"] for r in judged if "meta" in r))
    lengths = [r["scores"]["length"] for r in LengthScorer()(sub)]
    out["table"] = auc_table(sub, {"judge": [r["scores"]["judge"] if "scores" in r else None for r in judged],
                                   "length": lengths})
    out["examples"] = [{"corruption": s["meta"]["corruption"], "raw": (r.get("meta") or {}).get("raw"),
                        "error": r.get("error")} for s, r in list(zip(sub, judged, strict=True))[:8]]
    out["load_after"] = os.getloadavg()
    return out


def run_auc(args: argparse.Namespace) -> dict:
    from curate.scoring.ifd import LMConfig, LMScorer
    from curate.scoring.judge import JudgeScorer
    from curate.scoring.length import LengthScorer

    pairs = load_pairs()[: args.rows]
    rows = records(corruptions(pairs))
    out: dict = {"rows": len(rows), "clean": len(pairs), "load_before": os.getloadavg()}
    results: dict[str, list[float | None]] = {}
    began = time.perf_counter()
    lm = LMScorer(LMConfig(batch_size=args.batch_size))
    scored = []
    for start in range(0, len(rows), 64):
        scored.extend(lm(rows[start:start + 64]))
    for key in ("ifd", "ifd_ppl", "perplexity"):
        results[key] = [r["scores"][key] if "scores" in r else None for r in scored]
    out["lm_seconds"] = time.perf_counter() - began
    length = LengthScorer(tokenizer=lm.tokenizer)
    results["length"] = [r["scores"]["length"] for r in length(rows)]
    out["table"] = auc_table(rows, results)
    print(json.dumps({"lm_seconds": out["lm_seconds"], "table": out["table"]}), file=sys.stderr, flush=True)
    if args.judge_rows:
        sample = judge_sample(rows, args.judge_rows)
        sub = [rows[i] for i in sample]
        began = time.perf_counter()
        judged = JudgeScorer()(sub)
        out["judge_seconds"] = time.perf_counter() - began
        out["judge_errors"] = sum(1 for r in judged if "error" in r)
        out["judge_parsed_from"] = {}
        for r in judged:
            if "meta" in r:
                how = r["meta"]["parsed_from"]
                out["judge_parsed_from"][how] = out["judge_parsed_from"].get(how, 0) + 1
        judge_values = [r["scores"]["judge"] if "scores" in r else None for r in judged]
        out["judge_table"] = auc_table(sub, {"judge": judge_values})
        sub_results = {k: [v[i] for i in sample] for k, v in results.items()}
        out["same_subsample_table"] = auc_table(sub, sub_results)
        out["judge_examples"] = [{"corruption": s["meta"]["corruption"], "raw": (r.get("meta") or {}).get("raw"),
                                  "error": r.get("error")} for s, r in list(zip(sub, judged, strict=True))[:6]]
    out["load_after"] = os.getloadavg()
    return out


def naive_ifd(model, tokenizer, record) -> float:
    """The published scripts' way: batch 1, full logits, the two passes one after the other."""
    import torch

    messages = record["messages"]
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    alone = tokenizer.apply_chat_template([{"role": "user", "content": ""}], tokenize=False, add_generation_prompt=True)
    reply = tokenizer(messages[1]["content"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
    losses = []
    for head in (prompt, alone):
        head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([head_ids + reply])
        labels = torch.tensor([[-100] * len(head_ids) + reply])
        with torch.no_grad():
            losses.append(float(model(input_ids=ids, labels=labels).loss))
    return losses[0] / losses[1]


def run_throughput(args: argparse.Namespace) -> dict:
    from curate.scoring.ifd import LMConfig, LMScorer

    rows = records([(p, a, "clean") for p, a in load_pairs()[: args.rows]])
    batched = LMScorer(LMConfig(batch_size=args.batch_size))
    model, tokenizer = batched.model, batched.tokenizer
    single = LMScorer(LMConfig(batch_size=1), model=model, tokenizer=tokenizer)
    out: dict = {"rows": len(rows), "batch_size": args.batch_size, "load_before": os.getloadavg()}
    batched(rows[:4])  # warm-up
    for name, fn in (("batched", lambda: batched(rows)), ("one_at_a_time", lambda: single(rows)),
                     ("naive_reference", lambda: [naive_ifd(model, tokenizer, r) for r in rows])):
        began = time.perf_counter()
        values = fn()
        seconds = time.perf_counter() - began
        out[name] = {"seconds": round(seconds, 2), "rows_per_s": round(len(rows) / seconds, 3)}
        print(name, out[name], os.getloadavg(), file=sys.stderr, flush=True)  # partial results under load
        if name == "naive_reference":
            mine = [r["scores"]["ifd"] for r in batched(rows)]
            out["max_abs_diff_vs_naive"] = max(abs(a - b) for a, b in zip(mine, values, strict=True))
    out["speedup_vs_one_at_a_time"] = round(out["batched"]["rows_per_s"] / out["one_at_a_time"]["rows_per_s"], 2)
    out["speedup_vs_naive"] = round(out["batched"]["rows_per_s"] / out["naive_reference"]["rows_per_s"], 2)
    out["load_after"] = os.getloadavg()
    out["torch_threads"] = __import__("torch").get_num_threads()
    return out


def run_diversity(args: argparse.Namespace) -> dict:
    import numpy as np

    from curate.records import make_record
    from curate.selection import Gate, lm_embeddings, minhash_signatures, row_text

    every = [json.loads(line) for line in args.neardup.read_text().splitlines() if line.strip()]
    by_cluster: dict[str, list[dict]] = {}
    for row in every:  # whole clusters, in order of first appearance, so every planted copy has its original
        by_cluster.setdefault(row["cluster"], []).append(row)
    rows = []
    for members in by_cluster.values():
        if len(rows) >= args.rows:
            break
        rows.extend(members)
    records = []
    for r in rows:
        prompt = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
        records.append(make_record([{"role": "user", "content": prompt}, {"role": "assistant", "content": r["output"]}],
                                   meta={"cluster": r["cluster"]}))
    clusters = np.array([hash(r["cluster"]) for r in rows])
    texts = [row_text(r) for r in records]
    out: dict = {"rows": len(rows), "clusters": int(len(set(clusters.tolist()))), "load_before": os.getloadavg()}
    began = time.perf_counter()
    sig = minhash_signatures(texts)
    out["minhash_seconds"] = round(time.perf_counter() - began, 2)
    began = time.perf_counter()
    emb = lm_embeddings(texts)
    out["embedding_seconds"] = round(time.perf_counter() - began, 2)
    n = len(rows)
    a, b = np.triu_indices(n, k=1)
    same = clusters[a] == clusters[b]
    sims = {"minhash": (sig[a] == sig[b]).mean(axis=1), "embedding": np.einsum("ij,ij->i", emb[a], emb[b])}
    out["pairs"] = {"duplicate": int(same.sum()), "distinct": int((~same).sum())}
    out["auc"] = {k: roc_auc(v[same].tolist(), v[~same].tolist()) for k, v in sims.items()}
    rng = np.random.default_rng(0)
    order = rng.permutation(n)  # the gate walks a ranking; a random one here
    gates = {}
    for kind, features, thresholds in (("minhash", sig, (0.3, 0.5, 0.7)), ("embedding", emb, (0.9, 0.95, 0.98))):
        for threshold in thresholds:
            gate = Gate(features, kind, threshold)
            for i in order:
                gate.admit(int(i))
            kept = clusters[gate.members]
            values, counts = np.unique(kept, return_counts=True)
            gates[f"{kind}@{threshold}"] = {
                "chosen": len(gate.members),
                "duplicates_let_through": int((counts - 1).sum()),
                "clusters_lost": int(out["clusters"] - len(values)),
            }
    out["gate"] = gates
    out["load_after"] = os.getloadavg()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["auc", "judge", "throughput", "diversity"])
    parser.add_argument("--neardup", type=Path, help="diversity: a make_neardup.py output")
    parser.add_argument("--rows", type=int, default=252, help="clean pairs used (auc) / rows timed (throughput)")
    parser.add_argument("--judge-rows", type=int, default=40, help="auc: rows judged by the bundled model (0: none)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    modes = {"auc": run_auc, "judge": run_judge, "throughput": run_throughput, "diversity": run_diversity}
    result = modes[args.mode](args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
