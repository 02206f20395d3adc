#!/usr/bin/env bash
# The main job at demo size, on CPU, with the bundled SmolLM2-135M-Instruct as teacher and student:
# seeds -> generate -> filter -> train -> chat -> eval (vs the base model) -> export -> report. Safe to run
# twice: generation resumes where it stopped, later stages rewrite their outputs atomically.
set -euo pipefail
out=${1:-demo}
instructions=${DEMO_INSTRUCTIONS:-16}
steps=${DEMO_STEPS:-4}
curate=.venv/bin/curate
export HF_HUB_OFFLINE=1
mkdir -p "$out"

echo "== generate: Self-Instruct from seeds/ with the bundled model ($instructions instructions)"
$curate generate --seeds seeds/ --out "$out/generated.jsonl" --num-instructions "$instructions" --batch-size 2 --seed 0

echo "== filter: quality rules, exact and near-duplicate removal"
$curate filter "$out/generated.jsonl" --out "$out/curated.jsonl"

echo "== train: LoRA on the curated records with every default, sized to this machine ($steps steps)"
$curate train "$out/curated.jsonl" --out "$out/runs/demo" --max-steps "$steps" --overwrite

echo "== chat: what the adapter learned"
printf 'Give three tips for writing a clear email.\nWhat is 15%% of 80?\n' > "$out/prompts.txt"
$curate chat "$out/runs/demo" --prompts "$out/prompts.txt" --max-new-tokens 80

echo "== eval: the demo run vs the base model on ${DEMO_EVAL:-8} held-out human-written seed tasks (never trained on)"
$curate import seeds/seed_tasks.jsonl --out "$out/seed_tasks.jsonl"
head -n "${DEMO_EVAL:-8}" "$out/seed_tasks.jsonl" > "$out/eval_set.jsonl"
$curate eval "$out/runs/demo" --base --eval "$out/eval_set.jsonl" --out "$out/eval/demo" --max-new-tokens 48

echo "== export: hub-ready folder (Parquet shards + dataset card)"
$curate export "$out/curated.jsonl" --out "$out/dataset" --split-eval 0.1

echo "== report: one self-contained HTML page"
$curate report "$out" --out "$out/report.html"
echo "done: open $out/report.html"
