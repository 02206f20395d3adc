"""Locality-sensitive hashing over MinHash signatures: band keys and candidate pairs.

A signature of ``bands x rows`` values gives one 64-bit key per band; rows sharing a key in
any band are candidates (see :mod:`curate.filtering.dedup.config` for the S-curve).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate.filtering.dedup.config import DedupConfig
from curate.filtering.dedup.shingles import CHAR_SALT, POLY, mix64


def band_keys(cfg: DedupConfig, sig: np.ndarray) -> np.ndarray:
    """uint32 signatures (n x num_perm) -> uint64 band keys (n x bands)."""
    keys = np.zeros((sig.shape[0], cfg.bands), np.uint64)
    with np.errstate(over="ignore"):
        for band in range(cfg.bands):
            acc = np.full(sig.shape[0], band + 1, np.uint64)
            for col in range(band * cfg.rows, (band + 1) * cfg.rows):
                acc = acc * POLY + sig[:, col].astype(np.uint64)
            keys[:, band] = mix64(acc)
    return keys


def salted(keys: np.ndarray) -> np.ndarray:
    """Band keys in one key space: each band's keys salted by the band number (n x bands)."""
    bands = keys.shape[1]
    with np.errstate(over="ignore"):
        return keys ^ (np.arange(1, bands + 1, dtype=np.uint64) * CHAR_SALT)[None, :]


def candidate_pairs(cfg: DedupConfig, keys: np.ndarray, nodes: np.ndarray) -> pl.DataFrame:
    """Band keys of ``nodes`` (global row numbers) -> unique candidate pairs (a, b) with a < b.

    Buckets up to ``max_bucket_pairs`` rows give all their pairs, larger ones a star around
    their first row (enough for connected components; a bucket of 10,000 identical templates
    does not produce 50 million pairs).
    """
    n, bands = keys.shape
    if n < 2:
        return pl.DataFrame({"a": [], "b": []}, schema={"a": pl.Int64, "b": pl.Int64})
    buckets = pl.DataFrame({
        "node": np.tile(nodes.astype(np.int64), bands),
        "band": np.repeat(np.arange(bands, dtype=np.int32), n),
        "key": keys.T.reshape(-1),
    })
    buckets = buckets.with_columns(pl.len().over("band", "key").alias("size")).filter(pl.col("size") > 1)
    small = buckets.filter(pl.col("size") <= cfg.max_bucket_pairs)
    all_pairs = (
        small.join(small, on=["band", "key"], suffix="_b")
        .filter(pl.col("node") < pl.col("node_b"))
        .select(pl.col("node").alias("a"), pl.col("node_b").alias("b"))
    )
    large = buckets.filter(pl.col("size") > cfg.max_bucket_pairs)
    star = (
        large.with_columns(pl.col("node").min().over("band", "key").alias("root"))
        .filter(pl.col("node") != pl.col("root"))
        .select(pl.col("root").alias("a"), pl.col("node").alias("b"))
    )
    return pl.concat([all_pairs, star]).unique().sort("a", "b")
