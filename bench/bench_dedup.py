#!/usr/bin/env python3
"""Near-duplicate removal: `curate filter` against datasketch_baseline.py, accuracy and speed, one run.

Usage (from the repository root; writes into WORK, prints a JSON summary and markdown tables):

    .venv/bin/python bench/bench_dedup.py --work /tmp/bench_dedup [--skip-speed] [--skip-accuracy]

Accuracy: labelled near-duplicate sets built with ../shared/bench/make_neardup.py from GSM8K,
and from GSM8K plus a 3,000-row T0 sample (hard negatives: one passage under many templates).
Both tools run over thresholds 0.4-0.8 and n-grams 3-5; ../shared/bench/score_dedup.py scores
them (F1, clusters lost). Ours runs as the product does: `curate filter --preset none`, and the
kept rows are mapped back to the benchmark ids through meta.source_id.

Speed: the whole T0 file (55,185 rows) at threshold 0.7, 5-grams, 128 permutations. The
baseline times its own loop (after loading JSON); ours reports the same scope (exact + near
dedup stages, from filter_report.json) and the whole command's wall time (read, validate,
dedup, write). Each product engine (oph; datasketch's hashing) is run, and each kept set is compared with the
baseline's row by row; datasketch run with a second seed shows how much two runs of the
baseline itself agree. The engines that left the product (rensa, numpy, polars) are in
bench/minhash_engines.py; their figures stay in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PY = str(ROOT / ".venv" / "bin" / "python")
CURATE = str(ROOT / ".venv" / "bin" / "curate")
THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8)
NGRAMS = (3, 4, 5)


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def build_benchmarks(work: Path) -> dict[str, Path]:
    gsm = SHARED / "data" / "gsm8k_train_alpaca.json"
    t0 = SHARED / "data" / "t0_prompt_completion.jsonl.gz"
    make = str(SHARED / "bench" / "make_neardup.py")
    sample = work / "t0_sample_3000.jsonl"
    if not sample.exists():
        with gzip.open(t0, "rt", encoding="utf-8") as f:
            lines = [line for line in f if line.strip()]
        random.Random(0).shuffle(lines)
        sample.write_text("".join(lines[:3000]), encoding="utf-8")
    benches = {"gsm8k": work / "nd_gsm8k.jsonl", "gsm8k+t0": work / "nd_gsm8k_t0.jsonl"}
    if not benches["gsm8k"].exists():
        sh(PY, make, str(gsm), str(benches["gsm8k"]), "--seed", "0")
    if not benches["gsm8k+t0"].exists():
        sh(PY, make, str(gsm), str(sample), str(benches["gsm8k+t0"]), "--seed", "0", "--bases", "4000")
    for path in benches.values():
        records = path.with_suffix(".records.jsonl")
        if not records.exists():
            sh(CURATE, "import", str(path), "--out", str(records))
    return benches


def score(bench: Path, kept: Path) -> dict:
    return json.loads(sh(PY, str(SHARED / "bench" / "score_dedup.py"), str(bench), str(kept), "--json"))


def baseline(inp: Path, kept: Path, threshold: float, ngram: int, script: str | None = None) -> dict:
    script = script or str(SHARED / "bench" / "datasketch_baseline.py")
    out = sh(PY, script, str(inp), str(kept), "--threshold", str(threshold), "--ngram", str(ngram),
             "--num-perm", "128")
    return json.loads(out)


def ours(inp: Path, out_dir: Path, threshold: float, ngram: int, *extra: str) -> dict:
    out = out_dir / "curated.jsonl"
    start = time.perf_counter()
    sh(CURATE, "filter", str(inp), "--out", str(out), "--preset", "none", "--threshold", str(threshold),
       "--ngram", str(ngram), "--num-perm", "128", *extra)
    wall = time.perf_counter() - start
    report = json.loads((out_dir / "filter_report.json").read_text())
    stages = {s["stage"]: s["seconds"] for s in report["stages"]}
    return {"wall_s": round(wall, 2), "dedup_s": round(stages["exact_dedup"] + stages["near_dedup"], 2),
            "kept": report["kept"], "rows": report["in"], "report": report}


def kept_source_ids(curated: Path, dest: Path) -> Path:
    with curated.open(encoding="utf-8") as f, dest.open("w", encoding="utf-8") as out:
        for line in f:
            out.write(json.dumps({"id": json.loads(line)["meta"]["source_id"]}) + "\n")
    return dest


def accuracy(work: Path, benches: dict[str, Path], variants: dict[str, list[str]]) -> dict:
    results: dict = {}
    for name, bench in benches.items():
        records = bench.with_suffix(".records.jsonl")
        rows = []
        for t in THRESHOLDS:
            for n in NGRAMS:
                kept = work / "kept_baseline.jsonl"
                baseline(bench, kept, t, n)
                rows.append({"tool": "datasketch_baseline", "threshold": t, "ngram": n, **score(bench, kept)})
                for label, extra in variants.items():
                    out_dir = work / f"acc_{name}_{label}"
                    ours(records, out_dir, t, n, *extra)
                    ids = kept_source_ids(out_dir / "curated.jsonl", work / "kept_ours.jsonl")
                    rows.append({"tool": f"curate:{label}", "threshold": t, "ngram": n, **score(bench, ids)})
        best = {}
        for tool in sorted({r["tool"] for r in rows}):
            mine = [r for r in rows if r["tool"] == tool]
            top = max(mine, key=lambda r: (r["f1"], -r["lost_clusters"]))
            best[tool] = {k: top[k] for k in ("threshold", "ngram", "f1", "precision", "recall", "lost_clusters")}
        results[name] = {"best": best, "grid": rows}
    return results


def agreement(kept_a: set, kept_b: set, all_ids: list) -> float:
    same = sum(1 for i in all_ids if (i in kept_a) == (i in kept_b))
    return same / len(all_ids)


def speed(work: Path) -> dict:
    t0_records = work / "t0.records.jsonl"
    if not t0_records.exists():
        sh(CURATE, "import", str(SHARED / "data" / "t0_prompt_completion.jsonl.gz"), "--out", str(t0_records))
    ids = [json.loads(line)["id"] for line in t0_records.open(encoding="utf-8")]
    result: dict = {}
    base_kept = work / "t0_kept_baseline.jsonl"
    base = baseline(t0_records, base_kept, 0.7, 5)
    base_ids = {json.loads(line)["id"] for line in base_kept.open()}
    result["datasketch_baseline"] = {**base, "agreement": 1.0}
    seed2 = work / "datasketch_seed2.py"
    seed2.write_text((SHARED / "bench" / "datasketch_baseline.py").read_text().replace(
        "MinHash(num_perm=args.num_perm)", "MinHash(num_perm=args.num_perm, seed=2)"))
    other_kept = work / "t0_kept_baseline_seed2.jsonl"
    other = baseline(t0_records, other_kept, 0.7, 5, str(seed2))
    other_ids = {json.loads(line)["id"] for line in other_kept.open()}
    result["datasketch_baseline_seed2"] = {**other, "agreement": round(agreement(base_ids, other_ids, ids), 4)}
    both = ["--dedup-on", "both"]  # the baseline's text: prompt and answer together
    variants = {
        "oph --dedup-on both": both,
        "oph --dedup-on both --trust-ids": [*both, "--trust-ids"],
        "datasketch-hash, verify none": [*both, "--minhash-engine", "datasketch", "--verify", "none"],
        "oph, components": [*both, "--clustering", "components"],
        "oph --dedup-on pair 0.7/0.7": ["--dedup-on", "pair", "--response-threshold", "0.7"],
    }
    for label, extra in variants.items():
        out_dir = work / f"speed_{abs(hash(label))}"
        r = ours(t0_records, out_dir, 0.7, 5, *extra)
        kept = {json.loads(line)["id"] for line in (out_dir / "curated.jsonl").open()}
        result[f"curate {label}"] = {
            "rows": r["rows"], "kept": r["kept"], "dedup_s": r["dedup_s"], "wall_s": r["wall_s"],
            "dedup_docs_per_s": round(r["rows"] / r["dedup_s"], 1), "wall_docs_per_s": round(r["rows"] / r["wall_s"], 1),
            "x_baseline_dedup": round(r["rows"] / r["dedup_s"] / base["docs_per_s"], 1),
            "x_baseline_wall": round(r["rows"] / r["wall_s"] / base["docs_per_s"], 1),
            "agreement": round(agreement(base_ids, kept, ids), 4),
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/bench_dedup")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    summary: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(), "load_at_start": os.getloadavg()}}
    if not args.skip_accuracy:
        benches = build_benchmarks(work)
        summary["accuracy"] = accuracy(work, benches, {"both": ["--dedup-on", "both"],
                                                       "both verify-exact": ["--dedup-on", "both", "--verify", "exact"],
                                                       "pair": ["--dedup-on", "pair"]})
    if not args.skip_speed:
        summary["speed"] = speed(work)
    summary["machine"]["load_at_end"] = os.getloadavg()
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "accuracy"}, indent=2))
    for name, res in summary.get("accuracy", {}).items():
        print(f"\n{name}: best per tool")
        for tool, b in res["best"].items():
            print(f"  {tool:32s} t={b['threshold']} n={b['ngram']} F1={b['f1']} P={b['precision']} "
                  f"R={b['recall']} lost={b['lost_clusters']}")


if __name__ == "__main__":
    sys.exit(main())
