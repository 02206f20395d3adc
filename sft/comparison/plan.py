"""What a `curate compare` grid trains on, fixed before anything trains: the eval set, the arms' orderings, budgets.

* The eval set is frozen first: ``--eval FILE`` (human references), or a held-out slice of
  the pool stratified by the score (so it spans the score range). Either way it is
  near-deduplicated against the training pool with the filter's MinHash (prompt text;
  an eval prompt that nearly repeats a pool prompt is dropped and counted), written to
  ``eval.jsonl`` and its hash recorded. A resumed grid reuses that file.
* Each arm is an ordering of the pool, so the size-N subsets of an arm nest:
  ``quality`` (best score first), ``bottom`` (worst first), ``longest`` (response tokens),
  ``random`` (a seeded permutation per seed), ``all`` (the whole pool).
* The budget rule sets every cell's training length: ``fixed-steps`` (same optimizer steps,
  so every run sees the same number of training rows), ``fixed-tokens`` (steps scaled so
  each run sees about the same number of tokens), ``fixed-epochs`` (LIMA's setting: bigger
  or longer subsets get more compute).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.errors import CurateError

ARMS = ("quality", "random", "longest", "all", "bottom")
BUDGETS = ("fixed-steps", "fixed-tokens", "fixed-epochs")
SCORED_ARMS = ("quality", "bottom")


@dataclass
class CompareConfig:
    """Settings of one `curate compare` grid; written to plan.json."""

    pool: str
    out: str
    by: str | None = None
    sizes: list[int] = field(default_factory=lambda: [128, 256, 512])
    arms: list[str] = field(default_factory=lambda: ["quality", "random"])
    seeds: list[int] = field(default_factory=lambda: [1])
    budget: str = "fixed-steps"
    eval: str | None = None
    eval_size: int = 100
    recipe: str | None = "demo"
    overrides: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    dedup_threshold: float = 0.7
    generate: bool = False
    max_new_tokens: int = 128
    batch_size: int = 8
    resamples: int = 1000

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise CurateError(f"--arms: unknown arm {unknown[0]!r} (choose from {', '.join(ARMS)})")
        if self.budget not in BUDGETS:
            raise CurateError(f"--budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}")
        if any(a in SCORED_ARMS for a in self.arms) and not self.by:
            raise CurateError("--by SCORE is needed for the quality and bottom arms")
        if not self.sizes or any(s < 1 for s in self.sizes):
            raise CurateError("--sizes must be positive integers, e.g. 128,256,512")
        if not self.seeds:
            raise CurateError("--seeds needs at least one seed")
        self.sizes = sorted(set(self.sizes))


def score_of(record: dict[str, Any], by: str, line: int) -> float:
    value = (record.get("scores") or {}).get(by)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise CurateError(f"pool line {line}: scores.{by}: missing or not a number (score the pool with "
                          f"`curate score` first)")
    return float(value)


def stratified_slice(scores: Sequence[float] | None, count: int, seed: int, strata: int = 5) -> list[int]:
    """``count`` indexes spread evenly over score quantile bins (random within a bin); plain random without scores."""
    n = len(scores) if scores is not None else 0
    rng = random.Random(seed)
    if scores is None:
        raise ValueError("scores needed")
    order = sorted(range(n), key=lambda i: (scores[i], i))
    bins = [order[k * n // strata:(k + 1) * n // strata] for k in range(strata)]
    chosen: list[int] = []
    for k, members in enumerate(bins):
        take = count * (k + 1) // strata - count * k // strata
        chosen.extend(rng.sample(members, min(take, len(members))))
    return sorted(chosen)


def held_out(pool: list[dict[str, Any]], scores: list[float] | None, count: int, seed: int) -> list[int]:
    if count >= len(pool):
        raise CurateError(f"--eval-size {count} leaves nothing to train on (the pool has {len(pool)} rows)")
    if scores is None:
        return sorted(random.Random(seed).sample(range(len(pool)), count))
    return stratified_slice(scores, count, seed)


def first_user(record: dict[str, Any]) -> str:
    return next((m["content"] for m in record["messages"] if m["role"] == "user"), "")


def near_duplicates_of_pool(eval_texts: Sequence[str], pool_texts: Sequence[str], threshold: float) -> list[int]:
    """Indexes of eval texts whose MinHash Jaccard with some pool text reaches ``threshold`` (the filter's MinHash)."""
    import polars as pl

    try:  # the dedup package split into stage modules; older trees had them all in minhash.py
        from curate.filtering.dedup.config import DedupConfig
        from curate.filtering.dedup.lsh import band_keys
        from curate.filtering.dedup.minhash import signatures
        from curate.filtering.dedup.shingles import shingles
    except ImportError:
        from curate.filtering.dedup.minhash import DedupConfig, band_keys, shingles, signatures  # type: ignore

    cfg = DedupConfig(threshold=threshold)
    texts = list(pool_texts) + list(eval_texts)
    frame = pl.DataFrame({"row": np.arange(len(texts), dtype=np.int64), "text": texts})
    sig = signatures(cfg, shingles(cfg, frame), len(texts))
    keys = band_keys(cfg, sig)
    n_pool = len(pool_texts)
    pool_buckets = [dict() for _ in range(cfg.bands)]
    for row in range(n_pool):
        for band in range(cfg.bands):
            pool_buckets[band].setdefault(int(keys[row, band]), []).append(row)
    found = []
    for e in range(len(eval_texts)):
        row = n_pool + e
        if (sig[row] == 0xFFFFFFFF).all():
            continue
        candidates = {p for band in range(cfg.bands) for p in pool_buckets[band].get(int(keys[row, band]), [])}
        if any((sig[row] == sig[p]).mean() >= threshold for p in candidates):
            found.append(e)
    return found


def ordering(arm: str, n: int, seed: int, scores: Sequence[float] | None, lengths: Sequence[int]) -> list[int]:
    """The arm's order of pool indexes, deterministic: score arms rank as `curate select` does
    (:func:`curate.selection.rank`), ties by position here since the scores are given as a list."""
    if arm in ("quality", "bottom"):
        from curate.selection import rank

        rows = [{"scores": {"s": value}} for value in scores]
        return rank(rows, range(n), "s", ascending=arm == "bottom")
    if arm == "longest":
        return sorted(range(n), key=lambda i: (-lengths[i], i))
    if arm == "random":
        order = list(range(n))
        random.Random(seed).shuffle(order)
        return order
    return list(range(n))  # all


def descriptors(subset: Sequence[int], scores: Sequence[float] | None, response_tokens: Sequence[int],
                record_tokens: Sequence[int], longest: Sequence[int]) -> dict[str, Any]:
    """Size, mean score, mean response tokens, total training tokens, overlap with the longest-N subset."""
    size = len(subset)
    longest_n = set(longest[:size])
    return {
        "size": size,
        "mean_score": float(np.mean([scores[i] for i in subset])) if scores is not None else None,
        "mean_response_tokens": float(np.mean([response_tokens[i] for i in subset])),
        "train_tokens": int(sum(record_tokens[i] for i in subset)),
        "overlap_longest": len(longest_n.intersection(subset)) / size if size else 0.0,
    }


def cell_steps(budget: str, sft: dict[str, Any], subset_mean_tokens: float, pool_mean_tokens: float) -> dict[str, Any]:
    """The `sft` overrides that implement the budget rule for one cell."""
    steps = int(sft.get("max_steps") or -1)
    if budget == "fixed-epochs":
        return {"max_steps": -1, "num_train_epochs": float(sft.get("num_train_epochs") or 1)}
    if steps <= 0:
        raise CurateError(f"--budget {budget} needs a step count: give --max-steps (or sft.max_steps in the recipe)")
    if budget == "fixed-steps":
        return {"max_steps": steps}
    # fixed-tokens: as many tokens as `steps` rows of average pool length per step would be
    return {"max_steps": max(1, round(steps * pool_mean_tokens / max(subset_mean_tokens, 1.0)))}
