#!/usr/bin/env python3
"""`curate filter` at scale: wall time and peak memory at 10k, 100k and 1M rows (full filter, sft preset).

Usage (from the repository root):

    .venv/bin/python bench/make_filter_scale_data.py ../shared/data/t0_prompt_completion.jsonl.gz /tmp/scale_1m.jsonl
    .venv/bin/python bench/bench_filter_scale.py /tmp/scale_1m.jsonl --work /tmp/bench_scale [--sizes 10000,100000,1000000]
        [-- extra curate filter flags, e.g. --strip-special-tokens --trust-ids]

The scale file is T0: its answers end in the literal `<|endoftext|>`, which the `sft` preset rejects
(`special_token_text`); pass `-- --strip-special-tokens` to measure the filter on rows that survive it.
Each size is the first N rows of the scale file, run as its own process under /usr/bin/time -v
(peak RSS = "Maximum resident set size"). Prints one JSON line per size and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CURATE = str(ROOT / ".venv" / "bin" / "curate")


def head(src: Path, dest: Path, rows: int) -> Path:
    if dest.exists():
        return dest
    with src.open("rb") as f, dest.open("wb") as out:
        for i, line in enumerate(f):
            if i >= rows:
                break
            out.write(line)
    return dest


def run(inp: Path, out_dir: Path, extra: list[str]) -> dict:
    cmd = ["/usr/bin/time", "-v", CURATE, "filter", str(inp), "--out", str(out_dir / "curated.jsonl"), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    report = json.loads((out_dir / "filter_report.json").read_text())
    return {"rows": report["in"], "kept": report["kept"], "rejected": report["rejected"],
            "reconciles": report["reconciles"], "wall_s": round(wall, 1), "peak_rss_gib": round(rss_kb / 2**20, 2),
            "stage_s": {s["stage"]: s["seconds"] for s in report["stages"]},
            "read_s": report["seconds"]["read"], "write_s": report["seconds"]["write"],
            "by_reason": report["rejected_by_reason"], "load_after": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scale_file")
    ap.add_argument("--work", default="/tmp/bench_scale")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    args, extra = ap.parse_known_args()  # anything else goes to `curate filter` (e.g. -- --trust-ids)
    args.extra = [e for e in extra if e != "--"]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        inp = head(Path(args.scale_file), work / f"scale_{size}.jsonl", size)
        result = {"size": size, "flags": args.extra, "load_before": os.getloadavg()[0],
                  **run(inp, work / f"out_{size}", args.extra)}
        print(json.dumps(result), flush=True)
        rows.append(result)
    print("\n| rows | wall s | peak RSS GiB | read s | filter s | exact s | near s | write s | kept |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        s = r["stage_s"]
        print(f"| {r['rows']:,} | {r['wall_s']} | {r['peak_rss_gib']} | {r['read_s']} | {s['filter']} | "
              f"{s['exact_dedup']} | {s['near_dedup']} | {r['write_s']} | {r['kept']:,} |")


if __name__ == "__main__":
    main()
