"""Texts to hashed shingles: the normalization, word hashes, word and character n-grams.

* words: lower-cased ``\\w+`` words, each hashed once (Polars, streaming engine so both
  cores work on the regex). The same pass gives each row's exact-dedup key (the hash of
  its normalized words joined by spaces).
* shingles: word n-grams hashed by a rolling polynomial over the word hashes (numpy). Short
  texts (fewer than ``char_shingle_below`` words) also get character n-grams, and a text
  with fewer than ``ngram`` words is one shingle made of all its words: the explicit rule,
  so a two-word answer is not an empty set. A text with no word gets no shingle and never
  enters LSH (exact dedup still sees it).
* datasketch_shingles: the SHA-1 of each n-gram string, exactly as datasketch's users build
  them, so ``--minhash-engine datasketch`` reproduces datasketch's decisions.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate.filtering.dedup.config import DedupConfig

POLY = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier for rolling hashes (golden ratio)
CHAR_SALT = np.uint64(0xD6E8FEB86659FD93)  # keeps character shingles apart from word shingles
_WORD = r"\w+"


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads polynomial hashes over all 64 bits (on a copy)."""
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def normalized_words(text: pl.Expr) -> pl.Expr:
    """Lower-cased ``\\w+`` words: the normalization exact and near dedup share."""
    return text.str.to_lowercase().str.extract_all(_WORD)


def word_ngram_hashes(hashes: np.ndarray, row: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of ``n`` consecutive words within a row (none for shorter rows)."""
    return ngram_hashes(hashes, row, n, whole_if_short=False)


def _short_row_hashes(padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray, n: int) -> np.ndarray:
    """One hash of all the tokens of each row shorter than ``n`` (zero-padded to n positions)."""
    total = len(padded) - n
    whole = np.zeros(len(starts), np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            take = k < lengths
            whole = whole * POLY + np.where(take, padded[np.minimum(starts + k, total)], 0)
    return whole


def ngram_hashes(hashes: np.ndarray, row: np.ndarray, n: int, whole_if_short: bool) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of ``n`` consecutive tokens inside one row.

    ``hashes``/``row`` are flat token hashes and their row ids (rows contiguous, in order).
    With ``whole_if_short``, a row with fewer than ``n`` tokens yields one hash of all its
    tokens, so short texts still have a shingle.
    """
    total = len(hashes)
    if total == 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    padded = np.concatenate([hashes, np.zeros(n, np.uint64)])
    acc = padded[:total].copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):  # unmasked: windows crossing a row boundary are dropped below
            acc *= POLY
            acc += padded[k : k + total]
    ends = np.concatenate([row[n - 1 :], np.full(min(n - 1, total), -1, row.dtype)])
    keep = ends == row
    if whole_if_short:
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        lengths = np.diff(np.r_[starts, total])
        short = lengths < n
        if short.any():
            acc[starts[short]] = _short_row_hashes(padded, starts[short], lengths[short], n)
            keep[starts[short]] = True
    return mix64(acc[keep]), row[keep]


def words(cfg: DedupConfig, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (row, text) -> one line per word: (row, h) with h a 64-bit word hash."""
    return words_and_exact_keys(cfg, frame)[0]


def words_and_exact_keys(cfg: DedupConfig, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """Word hashes (row, h) and each row's exact key, from one pass of the word regex.

    The two queries share their ``extract_all`` subplan, which Polars computes once.
    """
    base = frame.lazy().select("row", normalized_words(pl.col("text")).alias("w"))
    word_query = base.explode("w").drop_nulls("w").select("row", pl.col("w").hash(seed=cfg.seed).alias("h"))
    exact_query = base.select(pl.col("w").list.join(" ").hash(seed=cfg.seed).alias("exact_key"))
    word_frame, exact = pl.collect_all([word_query, exact_query], engine="streaming")
    return word_frame, exact["exact_key"]


def datasketch_shingles(cfg: DedupConfig, frame: pl.DataFrame) -> pl.DataFrame:
    """(row, h) with h = datasketch's sha1_hash32 of each word n-gram string, as the baseline builds them."""
    import hashlib
    import struct

    n = cfg.ngram
    grams = (
        frame.lazy()
        .select("row", normalized_words(pl.col("text")).alias("w"))
        .select("row", pl.when(pl.col("w").list.len() >= n)
                .then(pl.col("w").list.eval(pl.concat_str([pl.element().shift(-k) for k in range(n)],
                                                          separator=" ").drop_nulls()))
                .otherwise(pl.concat_list(pl.col("w").list.join(" "))).alias("g"))
        .explode("g")
        .collect()
    )
    unpack = struct.Struct("<I").unpack
    h = np.fromiter((unpack(hashlib.sha1(g.encode()).digest()[:4])[0] for g in grams["g"].to_list()),
                    np.uint64, grams.height)
    return pl.DataFrame({"row": grams["row"], "h": h}, schema={"row": pl.Int64, "h": pl.UInt64})


def _char_shingles(cfg: DedupConfig, frame: pl.DataFrame, short: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    chars = (
        frame.lazy()
        .filter(pl.col("row").is_in(pl.Series(short).implode()))
        .select("row", normalized_words(pl.col("text")).list.join(" ").str.split("").alias("c"))
        .explode("c")
        .drop_nulls("c")
        .select("row", pl.col("c").hash(seed=cfg.seed + 1).alias("h"))
        .collect(engine="streaming")
    )
    c_row = chars["row"].to_numpy().astype(np.int64)
    c_h, c_r = ngram_hashes(chars["h"].to_numpy(), c_row, cfg.char_ngram, whole_if_short=True)
    return c_h ^ CHAR_SALT, c_r


def shingles(cfg: DedupConfig, frame: pl.DataFrame, word_frame: pl.DataFrame | None = None) -> pl.DataFrame:
    """``frame`` (row, text) -> (row, h): hashed word n-grams, plus character n-grams for short texts.

    ``word_frame`` is :func:`words` of the same frame when the caller already has it. Rows are
    contiguous within the word part and within the character part, not across them.
    """
    if cfg.engine == "datasketch":
        return datasketch_shingles(cfg, frame)
    word_frame = words(cfg, frame) if word_frame is None else word_frame  # explode keeps row order
    row = word_frame["row"].to_numpy().astype(np.int64)
    h, r = ngram_hashes(word_frame["h"].to_numpy(), row, cfg.ngram, whole_if_short=True)
    parts_h, parts_row = [h], [r]
    n_rows = int(frame["row"].max() or 0) + 1 if frame.height else 0
    counts = np.bincount(row, minlength=n_rows) if len(row) else np.zeros(0, np.int64)
    short = np.flatnonzero((counts > 0) & (counts < cfg.char_shingle_below))
    if len(short):
        c_h, c_r = _char_shingles(cfg, frame, short)
        parts_h.append(c_h)
        parts_row.append(c_r)
    return pl.DataFrame({"row": np.concatenate(parts_row), "h": np.concatenate(parts_h)},
                        schema={"row": pl.Int64, "h": pl.UInt64})
