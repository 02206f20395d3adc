#!/usr/bin/env python3
"""`curate filter` with the local executor against `--executor ray` on one machine: time, peak memory, shuffle.

Usage: .venv/bin/python bench/bench_ray.py RECORDS.jsonl [--dedup-on pair] [--out-dir /tmp/ray_bench/out]

Each run is a fresh `curate filter` process (the Ray one starts its own local cluster with every
CPU, as a user's first run would). Peak memory is sampled every 0.5 s as the summed PSS of the
process tree (the driver, raylet, GCS and workers; PSS counts the shared object store once).
The Ray run's shuffle figures come from its `ray: {...}` stderr line. Checks that the two runs
kept and rejected the same rows, then prints one JSON line per run and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def tree_pss(root: psutil.Process) -> int:
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().pss
    return total


def run(args: list[str], out: Path) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(ROOT / ".venv/bin/curate"), "filter", *args, "--out", str(out)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_pss(root))
        time.sleep(0.5)
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    shuffle = next((json.loads(line[5:]) for line in stderr.splitlines() if line.startswith("ray: {")), None)
    report = json.loads((out.parent / "filter_report.json").read_text())
    digest = hashlib.sha256(out.read_bytes() + (out.parent / "rejected.jsonl").read_bytes()).hexdigest()[:16]
    return {"seconds": round(seconds, 1), "peak_pss_gib": round(peak / 2**30, 2), "kept": report["kept"],
            "in": report["in"], "outputs_sha256": digest, "shuffle": shuffle, "stdout": stdout.strip()[-200:]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("records")
    parser.add_argument("--dedup-on", default="pair")
    parser.add_argument("--out-dir", default="/tmp/ray_bench/out")
    opts = parser.parse_args()
    base = [opts.records, "--dedup-on", opts.dedup_on, "--trust-ids", "--strip-special-tokens"]  # T0 ends in <|endoftext|>
    results = {}
    for executor in ("local", "ray"):
        load = os.getloadavg()
        results[executor] = run([*base, "--executor", executor], Path(opts.out_dir) / executor / "curated.jsonl")
        results[executor]["load_before"] = [round(x, 1) for x in load]
        results[executor]["load_after"] = [round(x, 1) for x in os.getloadavg()]
        print(json.dumps({"executor": executor, **results[executor]}), flush=True)
    same = results["local"]["outputs_sha256"] == results["ray"]["outputs_sha256"]
    print(json.dumps({"same_outputs": same, "cpus": os.cpu_count(),
                      "overhead_seconds": round(results["ray"]["seconds"] - results["local"]["seconds"], 1)}))
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
