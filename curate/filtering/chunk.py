"""One chunk through the per-row stages: rules, decontamination, dedup features. Pure, so any executor can run it.

``process_chunk(cfg, frame, eval_sets)`` returns the chunk's slim decisions frame (row,
line, id, reason, detail, stage, eval_id, exact_key, length, score, stripped, pii_masked),
its dedup :class:`~curate.filtering.dedup.steps.Features` and the seconds each stage took.
The texts are not in the result: what crosses back to the driver is a few numbers per row.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curate.filtering import hazards, rules
from curate.filtering.dedup import steps
from curate.filtering.settings import FilterConfig

SLIM = ("row", "line", "id", "reason", "detail", "stage", "eval_id", "exact_key", "length", "score", "stripped",
        "pii", "pii_masked")


@dataclass
class ChunkResult:
    slim: pl.DataFrame
    features: steps.Features
    seconds: Counter[str]


def decontaminate(frame: pl.DataFrame, eval_sets: list[Any]) -> pl.DataFrame:
    """Mark rows still alive that share an n-gram with an evaluation set (reason ``contamination``)."""
    from curate.filtering.decontam import find_contamination

    for eval_set in eval_sets:
        alive = frame.filter(pl.col("reason").is_null()).select("row", "prompt", "response")
        hits = find_contamination(alive, eval_set).rename({"eval_id": "hit_id", "detail": "hit_detail"})
        hit = pl.col("hit_id").is_not_null()
        frame = frame.join(hits, on="row", how="left").with_columns(
            pl.when(hit).then(pl.lit("contamination")).otherwise("reason").alias("reason"),
            pl.when(hit).then(pl.lit("decontaminate")).otherwise("stage").alias("stage"),
            pl.coalesce("hit_detail", "detail").alias("detail"),
            pl.coalesce("hit_id", "eval_id").alias("eval_id"),
        ).drop("hit_id", "hit_detail")
    return frame


def _dedup_texts(cfg: FilterConfig, frame: pl.DataFrame) -> pl.DataFrame:
    if "dedup_prompt" in frame.columns:
        return frame.select(pl.col("dedup_prompt").alias("prompt"), pl.col("dedup_response").alias("response"))
    return frame.select("prompt", "response")


def process_chunk(cfg: FilterConfig, frame: pl.DataFrame, eval_sets: list[Any]) -> ChunkResult:
    """Rules, decontamination and dedup features of one chunk (rows numbered globally in ``row``)."""
    seconds: Counter[str] = Counter()
    start = time.perf_counter()
    if cfg.pii == "mask":
        frame = hazards.mask_pii(frame)
    frame = rules.apply_filters(frame, cfg.filters or [], cfg.thresholds)
    if "pii" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("pii"))
    frame = frame.with_columns(
        pl.when(pl.col("reason").is_not_null()).then(pl.lit("filter")).alias("stage"),
        pl.lit(None, pl.String).alias("eval_id"),
        (pl.col("pii").is_not_null() & pl.lit(cfg.pii == "mask")).alias("pii_masked"))
    seconds["filter"] += time.perf_counter() - start
    if eval_sets:
        start = time.perf_counter()
        frame = decontaminate(frame, eval_sets)
        seconds["decontaminate"] += time.perf_counter() - start
    alive = frame["reason"].is_null()
    if cfg.exact_dedup or cfg.dedup is not None:
        feats = steps.features(cfg.dedup, _dedup_texts(cfg, frame), alive, int(frame["row"][0]))
        seconds.update(feats.seconds or {})
        frame = frame.with_columns(pl.Series("exact_key", feats.exact_key))
    else:
        feats = steps.Features(np.zeros(frame.height, np.uint64))
        frame = frame.with_columns(pl.lit(None, pl.UInt64).alias("exact_key"))
    return ChunkResult(frame.select(*SLIM), feats, seconds)


def against_features(cfg: FilterConfig, frame: pl.DataFrame) -> ChunkResult:
    """Rows of an earlier dataset: exact keys and signatures only, they are never filtered or written."""
    alive = pl.Series([True] * frame.height)
    feats = steps.features(cfg.dedup, _dedup_texts(cfg, frame), alive, int(frame["row"][0]))
    slim = frame.select("row", "id", "length", "score", pl.Series("exact_key", feats.exact_key))
    return ChunkResult(slim, feats, Counter(feats.seconds or {}))
