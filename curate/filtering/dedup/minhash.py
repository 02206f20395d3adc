"""MinHash signatures from hashed shingles: the product's engine and datasketch's own hashing.

* ``oph`` (default): one-permutation hashing with rotation densification, O(shingles) instead
  of O(shingles x num_perm); collision probability per slot equals the Jaccard similarity.
* ``datasketch``: datasketch 2.0's affine32 scheme on SHA-1 shingle hashes, bit-identical to
  ``datasketch.MinHash``, used to reproduce datasketch's decisions.

Other engines (rensa, numpy multiply-shift, a Polars group-by) were measured once and live in
``bench/minhash_engines.py``; their figures are in bench/RESULTS.md.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate.filtering.dedup.config import DedupConfig

EMPTY = 0xFFFFFFFF
"""Signature value of an empty slot; a row without shingles is all EMPTY and never enters LSH."""
_MAX32 = np.uint64(0xFFFFFFFF)


def signatures(cfg: DedupConfig, shingle_frame: pl.DataFrame, n_rows: int) -> np.ndarray:
    """(row, h) shingles -> uint32 matrix (n_rows x num_perm); rows without shingles are all EMPTY."""
    if cfg.engine == "datasketch":  # reduces over contiguous runs of a row
        shingle_frame = shingle_frame.sort("row", maintain_order=True)
    row = shingle_frame["row"].to_numpy().astype(np.int64)
    h = shingle_frame["h"].to_numpy()
    engine = {"oph": signatures_oph, "datasketch": signatures_datasketch}[cfg.engine]
    return engine(cfg, row, h, n_rows)


def _densify(sub: np.ndarray, k: int) -> np.ndarray:
    """Fill each empty bin from the next non-empty bin to its right (circularly), salted with the distance."""
    filled = sub != EMPTY
    # next filled bin to the right: a running minimum over the reversed, doubled positions (int16: k <= 8192)
    position = np.where(filled, np.arange(k, dtype=np.int16), np.int16(2 * k))
    doubled = np.concatenate([position, position + np.int16(k)], axis=1)[:, ::-1]
    nxt = np.minimum.accumulate(doubled, axis=1)[:, ::-1][:, :k]
    distance = (nxt - np.arange(k, dtype=np.int16)).astype(np.uint32)
    donor = np.take_along_axis(sub, (nxt % k).astype(np.intp), axis=1)
    with np.errstate(over="ignore"):
        return np.where(filled, sub, donor + distance * np.uint32(0x9E3779B1))


def signatures_oph(cfg: DedupConfig, row: np.ndarray, h: np.ndarray, n_rows: int) -> np.ndarray:
    """One-permutation hashing: one hash per shingle, split into num_perm bins, min per bin.

    Empty bins (texts with few shingles) are filled by rotation densification (Shrivastava
    and Li, 2014), so two rows with the same bins fill them identically and the collision
    probability stays the Jaccard similarity. Shingle hashes come mixed and seeded.
    """
    k = cfg.num_perm
    bits = k.bit_length() - 1
    sig = np.full((n_rows, k), EMPTY, np.uint32)
    if len(h) == 0:
        return sig
    bins = (h >> np.uint64(64 - bits)).astype(np.int64)
    values = np.minimum((h & _MAX32).astype(np.uint32), np.uint32(EMPTY - 1))
    np.minimum.at(sig.reshape(-1), row * k + bins, values)
    empty = sig == EMPTY
    sparse = np.flatnonzero(empty.any(axis=1) & ~empty.all(axis=1))
    if len(sparse):
        sig[sparse] = _densify(sig[sparse], k)
    return sig


def signatures_datasketch(cfg: DedupConfig, row: np.ndarray, h: np.ndarray, n_rows: int) -> np.ndarray:
    """datasketch 2.0's MinHash (scheme affine32): MurmurHash3 fmix32 of the SHA-1 value, then
    ``a * h + b`` mod 2**32 per permutation, with datasketch's own parameter draw."""
    gen = np.random.RandomState(cfg.seed)
    a = gen.randint(0, 1 << 31, cfg.num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, cfg.num_perm, dtype=np.uint32)
    sig = np.full((n_rows, cfg.num_perm), EMPTY, np.uint32)
    if len(h) == 0:
        return sig
    x = h.astype(np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x85EBCA6B)
        x = x ^ (x >> np.uint32(13))
        x = x * np.uint32(0xC2B2AE35)
        x = x ^ (x >> np.uint32(16))
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        for p in range(cfg.num_perm):
            sig[row[starts], p] = np.minimum.reduceat(x * a[p] + b[p], starts)
    return sig


def estimated_jaccard(sig: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """Fraction of equal signature values for each pair (a[i], b[i])."""
    out = np.empty(len(a), np.float32)
    for start in range(0, len(a), chunk):
        sl = slice(start, start + chunk)
        out[sl] = (sig[a[sl]] == sig[b[sl]]).mean(axis=1)
    return out


def exact_jaccard(shingle_frame: pl.DataFrame, pairs: pl.DataFrame) -> pl.Series:
    """Exact Jaccard of the shingle sets of each pair (a, b), in one Polars join."""
    sets = shingle_frame.unique(["row", "h"])
    sizes = sets.group_by("row").len("n")
    indexed = pairs.with_row_index("pair")
    inter = (
        indexed.join(sets.rename({"row": "a"}), on="a")
        .join(sets.rename({"row": "b", "h": "h_b"}), left_on=["b", "h"], right_on=["b", "h_b"])
        .group_by("pair")
        .len("common")
    )
    common = pl.col("common").fill_null(0)
    scored = (
        indexed.join(inter, on="pair", how="left")
        .join(sizes.rename({"row": "a", "n": "n_a"}), on="a", how="left")
        .join(sizes.rename({"row": "b", "n": "n_b"}), on="b", how="left")
        .sort("pair")
        .select((common / (pl.col("n_a") + pl.col("n_b") - common)).fill_null(0.0).fill_nan(0.0).alias("jaccard"))
    )
    return scored["jaccard"]
