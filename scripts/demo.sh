#!/usr/bin/env bash
# The main job at demo size on the bundled SmolLM2-135M-Instruct, all on CPU.
# Each stage resumes or rewrites atomically, so running it twice is safe.
set -euo pipefail
out=${1:-demo}
curate=.venv/bin/curate
export HF_HUB_OFFLINE=1
mkdir -p "$out"

echo "== import: the seed tasks as records"
$curate import seeds/seed_tasks.jsonl --out "$out/seeds.jsonl"
