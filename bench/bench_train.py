"""Benchmarks of `curate train` on CPU: does the default fit, how fast against the tutorial recipe, what is forgotten.

    .venv/bin/python bench/bench_train.py fit          [--steps 2 --counts 64,2000]
    .venv/bin/python bench/bench_train.py speed        [--records 500 --steps 2]  # defaults vs --config tutorial
    .venv/bin/python bench/bench_train.py forgetting   [--steps 8 --batch 2 --eval 60]

Data: GSM8K training problems (/work/shared/data/gsm8k_train_alpaca.json, imported with
`curate import`); the bundled SmolLM2-135M-Instruct. Every run is its own `curate train` process
under `/usr/bin/time -v`, so "peak RSS" is the whole process's maximum resident set (model
loading included). Figures are appended to bench/results/train.md with the load average
(the machine is shared: measured under load). Run outputs go to bench/out/train (ignored by git).

- fit: `curate train small.jsonl --out run --max-steps N` with every default on 64 and on 2,000
  records: completes? peak RSS, what the sizing chose.
- speed: real (non-padding, non-masked... i.e. tokens of the packed/padded rows that are not
  padding) tokens per second of the training steps, defaults against `--config tutorial` (QLoRA,
  every sample padded to 512, loss on all tokens, full-vocabulary logits), same 500 records.
- forgetting: lora, full and hft trained at the same budget (steps x rows x max_length) on GSM8K;
  per-record mean NLL of the reference answers of held-out GSM8K problems (what it learned) and of
  the user-oriented instructions' references (what it forgot), each against the base model, with
  95% bootstrap CIs of the paired difference.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "train"
RESULTS = ROOT / "bench" / "results" / "train.md"
GSM8K = Path("/work/shared/data/gsm8k_train_alpaca.json")
USER_ORIENTED = Path("/work/shared/data/user_oriented_instructions.jsonl")
CURATE = str(ROOT / ".venv" / "bin" / "curate")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def imported(source: Path, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / f"{name}.jsonl"
    if not target.exists():
        subprocess.run([CURATE, "import", str(source), "--out", str(target)], check=True, env=ENV)
    return target


def subset(source: Path, start: int, count: int, name: str) -> Path:
    lines = source.read_text().splitlines()[start:start + count]
    target = OUT / f"{name}.jsonl"
    target.write_text("".join(line + "\n" for line in lines))
    return target


def timed_train(name: str, data: Path, args: list[str]) -> dict:
    """One `curate train` process under /usr/bin/time -v; its metrics, peak RSS and wall time."""
    out = OUT / "runs" / name
    command = ["/usr/bin/time", "-v", CURATE, "train", str(data), "--out", str(out), "--overwrite", *args]
    print("$", " ".join(command[2:]), flush=True)
    before = load_average()
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr)
    result = {"name": name, "command": " ".join(command[2:]), "exit": done.returncode,
              "peak_rss_mb": round(int(rss.group(1)) / 1024) if rss else None, "wall": wall.group(1) if wall else None,
              "load_before": before, "load_after": load_average(),
              "sizing_line": next((ln for ln in done.stderr.splitlines() if ln.startswith("sizing:")), None)}
    if done.returncode != 0:
        result["error"] = done.stderr.strip().splitlines()[-3:]
        print(done.stderr[-2000:], file=sys.stderr)
        return result
    metrics = json.loads((out / "metrics.json").read_text())
    result.update({key: metrics.get(key) for key in ("steps", "tokens_seen", "tokens_per_second",
                                                     "tokens_per_cpu_second", "train_step_seconds",
                                                     "train_step_cpu_seconds", "final_eval_loss")})
    result["rss_during_training_mb"] = (metrics.get("peak_memory") or {}).get("cpu_rss_peak_during_training_mb")
    return result


def append(section: str) -> None:
    """Add a section to bench/results/train.md, above the previous figures (after the last appended section)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    text = RESULTS.read_text() if RESULTS.exists() else "# `curate train` benchmarks\n\n"
    marker = "## Previous figures"
    at = text.find(marker)
    at = len(text) if at < 0 else at
    RESULTS.write_text(text[:at] + section.rstrip() + "\n\n" + text[at:])
    print(section)


def fit(args: argparse.Namespace) -> None:
    everything = imported(GSM8K, "gsm8k")
    rows = []
    counts = [int(c) for c in args.counts.split(",")]
    for count in counts:
        data = subset(everything, 0, count, f"gsm8k_{count}")
        rows.append(timed_train(f"fit_{count}", data, ["--max-steps", str(args.steps)]))
    lines = [f"### Defaults fit ({datetime.date.today()}, measured under load)", "",
             "| records | command | exit | peak RSS (MB) | wall | tokens/s | load avg before / after |",
             "|---|---|---|---|---|---|---|"]
    for count, row in zip(counts, rows, strict=True):
        lines.append(f"| {count} | `{row['command']}` | {row['exit']} | {row['peak_rss_mb']} | {row['wall']} | "
                     f"{row.get('tokens_per_second')} | {row['load_before']} / {row['load_after']} |")
    lines += ["", f"Sizing line: `{rows[0]['sizing_line']}`"]
    append("\n".join(lines))


def speed(args: argparse.Namespace) -> None:
    data = subset(imported(GSM8K, "gsm8k"), 0, args.records, f"gsm8k_{args.records}")
    common = ["--max-steps", str(args.steps), "--eval-split", "0"]
    # --micro N: N micro-batches per step for both (the defaults' batch_size, the tutorial's rows per step), to
    # keep a loaded machine's run short; tokens/s does not depend on how many micro-batches make a step
    curate = timed_train("speed_default", data, [*common, *(["--set", f"batch_size={args.micro}"] if args.micro else [])])
    tutorial = timed_train("speed_tutorial", data, [*common, "--config", "tutorial", *(
        ["--set", f"sft.per_device_train_batch_size={args.micro}"] if args.micro else [])])
    ratio = (curate.get("tokens_per_cpu_second") or 0) / max(tutorial.get("tokens_per_cpu_second") or 1e-9, 1e-9)
    lines = [f"### Defaults vs tutorial recipe, {args.records} GSM8K records ({datetime.date.today()}, "
             "measured under load)", "",
             "| run | command | real tokens | real tokens per CPU-second | real tokens/s (wall) | peak RSS (MB) | "
             "wall | load avg before / after |", "|---|---|---|---|---|---|---|---|"]
    for row in (curate, tutorial):
        lines.append(f"| {row['name']} | `{row['command']}` | {row.get('tokens_seen')} | "
                     f"{row.get('tokens_per_cpu_second')} | {row.get('tokens_per_second')} | {row['peak_rss_mb']} | "
                     f"{row['wall']} | {row['load_before']} / {row['load_after']} |")
    lines += ["", f"Speed-up of the defaults: **{ratio:.1f}x** real tokens per CPU-second (the process's CPU time "
              "during the training steps, all threads: wall-clock tokens/s swings with the other agents' load)."]
    append("\n".join(lines))


def record_nll(model, tokenizer, records: list[dict], eot: str) -> list[float]:
    """Mean NLL per record of its assistant tokens (the reference answer), with curate.lm's rendering and loss."""
    import torch

    from curate.lm.loss import shift_labels, token_nll
    from curate.lm.render import render_records, truncate

    values = []
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    with torch.no_grad():
        for sample in render_records(tokenizer, records, eot):
            sample, _ = truncate(sample, 1024)
            ids = torch.tensor([sample.input_ids])
            hidden = lm.get_decoder()(input_ids=ids).last_hidden_state
            nll = token_nll(hidden, lm.get_output_embeddings().weight, shift_labels(torch.tensor([sample.labels])))
            if nll.numel():
                values.append(float(nll.mean()))
    return values


def paired_ci(deltas: list[float], seed: int = 0, rounds: int = 2000) -> tuple[float, float, float]:
    rng = random.Random(seed)
    mean = sum(deltas) / len(deltas)
    boots = sorted(sum(rng.choices(deltas, k=len(deltas))) / len(deltas) for _ in range(rounds))
    return mean, boots[int(0.025 * rounds)], boots[int(0.975 * rounds)]


def forgetting(args: argparse.Namespace) -> None:
    from sft.chat import load_run

    everything = imported(GSM8K, "gsm8k")
    train_data = subset(everything, 0, 2000, "gsm8k_2000")
    held = [json.loads(line) for line in everything.read_text().splitlines()[-args.eval:]]
    other = [json.loads(line) for line in imported(USER_ORIENTED, "user_oriented").read_text().splitlines()][:args.eval]
    budget = ["--max-steps", str(args.steps), "--eval-split", "0", "--set", f"batch_size={args.batch}",
              "--set", f"hft.round_steps={max(1, args.steps // 4)}"]
    runs = {method: timed_train(f"forget_{method}", train_data, [*budget, "--method", method])
            for method in ("lora", "full", "hft")}
    scores: dict[str, dict[str, list[float]]] = {}
    for name in ("base", "lora", "full", "hft"):
        loaded = load_run(OUT / "runs" / "forget_lora", base_only=True) if name == "base" else \
            load_run(OUT / "runs" / f"forget_{name}")
        eot = loaded.tokenizer.convert_ids_to_tokens(loaded.stop_ids[0])
        scores[name] = {"gsm8k": record_nll(loaded.model, loaded.tokenizer, held, eot),
                        "user": record_nll(loaded.model, loaded.tokenizer, other, eot)}
        print(name, {k: sum(v) / len(v) for k, v in scores[name].items()}, flush=True)
    lines = [f"### Forgetting: lora vs full vs hft ({datetime.date.today()}, measured under load)", "",
             f"Budget per method: {args.steps} optimizer steps x {args.batch} packed rows x 1,024 tokens on the first "
             f"2,000 GSM8K records (lr: lora 2e-4, full/hft 2e-5; hft rounds of {max(1, args.steps // 4)} steps). "
             f"NLL: mean per record over the reference answer's tokens; {args.eval} held-out GSM8K problems (the "
             f"last of the 7,473) and the first {args.eval} user-oriented instructions; delta = run - base, paired, "
             "95% bootstrap CI.", "",
             "| model | tokens trained | GSM8K NLL | delta GSM8K (learned: < 0) | user-oriented NLL | "
             "delta user-oriented (forgot: > 0) |", "|---|---|---|---|---|---|"]
    for name in ("base", "lora", "full", "hft"):
        row = scores[name]
        cells = [name, str(runs[name].get("tokens_seen")) if name in runs else "-"]
        for key in ("gsm8k", "user"):
            cells.append(f"{sum(row[key]) / len(row[key]):.3f}")
            if name == "base":
                cells.append("-")
            else:
                mean, low, high = paired_ci([a - b for a, b in zip(row[key], scores["base"][key], strict=True)])
                cells.append(f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Runs: " + "; ".join(f"{m}: exit {r['exit']}, peak RSS {r['peak_rss_mb']} MB, wall {r['wall']}, "
                                        f"load {r['load_before']}" for m, r in runs.items())]
    append("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["fit", "speed", "forgetting"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--eval", type=int, default=60)
    parser.add_argument("--micro", type=int, default=0, help="speed: micro-batches per step for both runs")
    parser.add_argument("--counts", default="64,2000", help="fit: record counts")
    args = parser.parse_args()
    {"fit": fit, "speed": speed, "forgetting": forgetting}[args.what](args)


if __name__ == "__main__":
    main()
