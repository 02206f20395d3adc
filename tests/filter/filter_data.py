"""Helpers that build small synthetic record sets for the filter tests (no shared data)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from curate.records import make_record

VOCAB = ["river", "mountain", "quiet", "engine", "paper", "orange", "window", "signal", "garden", "copper", "violin", "harbor", "pencil", "meadow", "rocket", "silver", "thunder", "candle", "forest", "marble", "lantern", "puzzle", "saddle", "velvet", "winter", "yellow", "anchor", "bridge", "castle", "dragon", "falcon", "glacier", "helmet", "island", "jungle", "kettle", "ladder", "magnet", "needle", "ocean", "palace", "quartz", "ribbon", "shadow", "temple", "umbrella", "valley", "wagon", "zephyr", "basket", "cactus", "desert", "feather", "ginger", "hammer"]


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(words)).capitalize() + "."


def edit(text: str, rng: random.Random, changes: int = 2) -> str:
    words = text.split(" ")
    for _ in range(changes):
        words[rng.randrange(len(words))] = rng.choice(VOCAB)
    return " ".join(words)


def record(prompt: str, response: str, **meta: object) -> dict:
    scores = meta.pop("scores", None)
    return make_record([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                       meta={"source": "test", **meta}, scores=scores)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


