"""MinHash engines measured against the product's ``oph`` engine and kept here, out of the product.

``rensa`` (Rust, needs ``pip install rensa``), ``numpy`` (k independent multiply-shift
hashes) and ``polars`` (the same k hashes as a Polars group-by). Each takes the flat
(row, h) shingle arrays that :func:`curate.filtering.dedup.shingles.shingles` gives (rows
contiguous and sorted) and returns a uint32 (n_rows x num_perm) signature matrix, like
:func:`curate.filtering.dedup.minhash.signatures`. Figures: bench/RESULTS.md.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate.filtering.dedup.config import DedupConfig
from curate.filtering.dedup.minhash import EMPTY


def _perm_params(cfg: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(cfg.seed)
    a = rng.randint(1, 2**62, cfg.num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.randint(0, 2**62, cfg.num_perm, dtype=np.uint64)
    return a, b


def signatures_rensa(cfg: DedupConfig, row: np.ndarray, h: np.ndarray, n_rows: int) -> np.ndarray:
    import rensa

    offsets = np.searchsorted(row, np.arange(n_rows + 1)).astype(np.uint64)
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(h, offsets, cfg.num_perm, cfg.seed)
    return np.array(matrix.to_rows(), dtype=np.uint32).reshape(n_rows, cfg.num_perm)


def signatures_numpy(cfg: DedupConfig, row: np.ndarray, h: np.ndarray, n_rows: int) -> np.ndarray:
    sig = np.full((n_rows, cfg.num_perm), EMPTY, np.uint32)
    if len(h) == 0:
        return sig
    a, b = _perm_params(cfg)
    starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
    rows_present = row[starts]
    with np.errstate(over="ignore"):
        for p in range(cfg.num_perm):
            values = ((h * a[p] + b[p]) >> np.uint64(32)).astype(np.uint32)
            sig[rows_present, p] = np.minimum.reduceat(values, starts)
    return sig


def signatures_polars(cfg: DedupConfig, row: np.ndarray, h: np.ndarray, n_rows: int) -> np.ndarray:
    sig = np.full((n_rows, cfg.num_perm), EMPTY, np.uint32)
    if len(h) == 0:
        return sig
    a, b = _perm_params(cfg)
    shift = pl.lit(2**32, pl.UInt64)
    exprs = [
        ((pl.col("h") * pl.lit(int(a[p]), pl.UInt64) + pl.lit(int(b[p]), pl.UInt64)) // shift).min().alias(f"p{p}")
        for p in range(cfg.num_perm)
    ]
    mins = pl.DataFrame({"row": row, "h": h}).group_by("row").agg(exprs)
    sig[mins["row"].to_numpy()] = mins.drop("row").to_numpy().astype(np.uint32)
    return sig


ENGINES = {"rensa": signatures_rensa, "numpy": signatures_numpy, "polars": signatures_polars}


def signatures(cfg: DedupConfig, engine: str, shingle_frame: pl.DataFrame, n_rows: int) -> np.ndarray:
    """Like the product's ``signatures`` for one of the bench engines (shingles sorted by row first)."""
    frame = shingle_frame.sort("row", maintain_order=True)
    return ENGINES[engine](cfg, frame["row"].to_numpy().astype(np.int64), frame["h"].to_numpy(), n_rows)
