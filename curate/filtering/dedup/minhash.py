"""Exact and near-duplicate (MinHash LSH) detection over SFT records, vectorized.

The near-duplicate path is a chain of plain ``(config, frame) -> frame`` stages, in the
style of text-dedup, each one testable on its own::

    texts ──words──▶ words ──shingles──▶ shingles ──signatures──▶ signatures
          ──band_keys──▶ bands ──candidate_pairs──▶ pairs ──verify──▶ pairs
          ──components──▶ clusters ──representatives──▶ decisions

* ``words``: lower-cased ``\\w+`` words, hashed once each (Polars, streaming engine so
  both cores work on the regex).
* ``shingles``: word n-grams hashed by a rolling polynomial over the word hashes (numpy).
  Short texts (fewer than ``char_shingle_below`` words) also get character n-grams, and a
  text with fewer than ``ngram`` words is one shingle made of all its words: the explicit
  rule, so a two-word answer is not an empty set. A text with no word at all gets no
  shingle and never enters LSH (exact dedup still sees it).
* ``signatures``: MinHash, ``num_perm`` values per row. Engines: ``rensa`` (Rust), ``oph``
  (one-permutation hashing with densification in numpy: O(shingles), not
  O(shingles x num_perm)), ``numpy`` (k independent multiply-shift hashes), ``polars``
  (the same k hashes as a Polars group-by). ``bench/bench_dedup.py`` compares them.
* ``band_keys``: ``bands`` x ``rows`` chosen from the threshold by datasketch's own
  optimisation (minimising the weighted false positive/negative areas), or given. A pair
  with Jaccard ``s`` collides in at least one band with probability ``1 - (1 - s**r)**b``:
  :func:`s_curve` tabulates it for the report.
* ``candidate_pairs``: rows sharing a band key. Small buckets give all pairs, large ones a
  star around their first row (enough for connected components, and it keeps a bucket of
  10,000 identical templates from producing 50 million pairs).
* ``verify`` (optional): keep a pair only when its Jaccard, estimated from the full
  signatures (``signature``) or exact on the shingle sets (``exact``), reaches the threshold.
* ``components`` + ``representatives``: connected components (scipy), then one survivor per
  cluster chosen by ``keep``: ``first`` (input order), ``longest`` (characters of the
  dedup text) or ``best-score`` (a ``scores`` field; rows without it rank last). Ties go
  to the earlier row, so the result is deterministic for a given ``seed``.

Rows of an earlier dataset (``--against``) take part as members that always win: a new
row clustered with one of them is dropped, the earlier set is never touched.

Run it through ``curate filter`` (see :mod:`curate.filtering.pipeline`); benchmarks in
``bench/bench_dedup.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from curate.errors import CurateError

KeepPolicy = Literal["first", "longest", "best-score"]
ENGINES = ("oph", "rensa", "numpy", "polars", "datasketch")
KEEP_POLICIES = ("first", "longest", "best-score")
VERIFY_MODES = ("none", "signature", "exact")

_MAX32 = np.uint64(0xFFFFFFFF)
_POLY = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier for rolling hashes (golden ratio)
_CHAR_SALT = np.uint64(0xD6E8FEB86659FD93)  # keeps character shingles apart from word shingles
_WORD = r"\w+"


@dataclass
class DedupConfig:
    """Near-duplicate settings; every field is written to the resolved filter_config.yaml."""

    threshold: float = 0.7
    """Jaccard similarity at which two rows count as near-duplicates."""
    ngram: int = 5
    """Shingle size in words."""
    num_perm: int = 128
    """MinHash permutations (signature length)."""
    bands: int | None = None
    """LSH bands; with ``rows`` overrides the optimisation from ``threshold``."""
    rows: int | None = None
    """Signature values per band."""
    seed: int = 1
    """Seed of the hash functions: same seed, same input -> same result."""
    char_ngram: int = 5
    """Character shingle size used for short texts."""
    char_shingle_below: int = 20
    """Texts with fewer words than this also get character shingles."""
    engine: str = "oph"
    """MinHash engine: oph | rensa | numpy | polars."""
    verify: str = "signature"
    """Check candidate pairs: none | signature (estimated Jaccard) | exact (shingle sets)."""
    keep: str = "first"
    """Which row of a cluster survives: first | longest | best-score."""
    score_key: str | None = None
    """scores field used by keep=best-score; default: the first score name found in the data."""
    dedup_on: str = "both"
    """Text compared: prompt | response | both."""
    multi_turn: str = "all"
    """For conversations: first-user (first exchange only) | all (every turn)."""
    clustering: str = "greedy"
    """greedy: a row goes when it matches a row already kept (datasketch's query-then-insert, no
    chains); components: connected components of the match graph (merges chains A~B~C)."""
    max_bucket_pairs: int = 128
    """Buckets up to this size give all their pairs; larger ones a star around the first row."""
    false_positive_weight: float = 0.5
    false_negative_weight: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise CurateError(f"--threshold must be between 0 and 1 (exclusive), got {self.threshold}")
        if self.ngram < 1:
            raise CurateError(f"--ngram must be at least 1, got {self.ngram}")
        if self.num_perm < 2:
            raise CurateError(f"--num-perm must be at least 2, got {self.num_perm}")
        if self.engine not in ENGINES:
            raise CurateError(f"--minhash-engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.keep not in KEEP_POLICIES:
            raise CurateError(f"--keep must be one of {', '.join(KEEP_POLICIES)}, got {self.keep!r}")
        if self.verify not in VERIFY_MODES:
            raise CurateError(f"--verify must be one of {', '.join(VERIFY_MODES)}, got {self.verify!r}")
        if self.clustering not in ("greedy", "components"):
            raise CurateError(f"--clustering must be greedy or components, got {self.clustering!r}")
        if self.dedup_on not in ("prompt", "response", "both"):
            raise CurateError(f"--dedup-on must be prompt, response or both, got {self.dedup_on!r}")
        if self.multi_turn not in ("first-user", "all"):
            raise CurateError(f"--multi-turn must be first-user or all, got {self.multi_turn!r}")
        if (self.bands is None) != (self.rows is None):
            raise CurateError("give both --bands and --rows, or neither (then they come from --threshold)")
        if self.bands is None:
            self.bands, self.rows = optimal_bands(self.threshold, self.num_perm, self.false_positive_weight,
                                                  self.false_negative_weight)
        if self.bands * self.rows > self.num_perm:
            raise CurateError(f"--bands x --rows ({self.bands} x {self.rows}) exceeds --num-perm {self.num_perm}")
        if self.engine == "oph" and self.num_perm & (self.num_perm - 1):
            raise CurateError(f"--minhash-engine oph needs a power-of-two --num-perm, got {self.num_perm}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising weighted false positive + negative probability: datasketch's own code."""
    from datasketch.lsh import _optimal_param

    bands, rows = _optimal_param(threshold, num_perm, fp_weight, fn_weight)
    return int(bands), int(rows)


def s_curve(bands: int, rows: int, points: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
                                                                   0.9, 0.95)) -> dict[str, float]:
    """Probability that a pair of Jaccard ``s`` becomes a candidate: ``1 - (1 - s**r)**b``."""
    return {f"{s:.2f}": round(1.0 - (1.0 - s**rows) ** bands, 4) for s in points}


# -- hashing helpers ---------------------------------------------------------------------------


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads polynomial hashes over all 64 bits (in place on a copy)."""
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def word_ngram_hashes(hashes: np.ndarray, row: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of ``n`` consecutive words within a row (none for shorter rows)."""
    return _ngram_hashes(hashes, row, n, whole_if_short=False)


def _ngram_hashes(hashes: np.ndarray, row: np.ndarray, n: int, whole_if_short: bool) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of ``n`` consecutive tokens inside one row.

    ``hashes``/``row`` are flat token hashes and their row ids (rows contiguous, in order).
    With ``whole_if_short``, a row with fewer than ``n`` tokens yields one hash of all its
    tokens (padded with zeros), so short texts still have a shingle.
    """
    total = len(hashes)
    if total == 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    padded = np.concatenate([hashes, np.zeros(n, np.uint64)])
    acc = padded[:total].copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):  # unmasked: windows crossing a row boundary are dropped below
            acc *= _POLY
            acc += padded[k : k + total]
    ends = np.concatenate([row[n - 1 :], np.full(min(n - 1, total), -1, row.dtype)])
    keep = ends == row
    if whole_if_short:
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        lengths = np.diff(np.r_[starts, total])
        short = lengths < n
        if short.any():
            # a row shorter than n: one shingle of all its words (zero-padded to n positions)
            short_starts, short_lengths = starts[short], lengths[short]
            whole = np.zeros(len(short_starts), np.uint64)
            with np.errstate(over="ignore"):
                for k in range(n):
                    take = k < short_lengths
                    whole = whole * _POLY + np.where(take, padded[np.minimum(short_starts + k, total)], 0)
            acc[short_starts] = whole
            keep[short_starts] = True
    return _mix64(acc[keep]), row[keep]


# -- stages ------------------------------------------------------------------------------------


def normalized_words(text: pl.Expr) -> pl.Expr:
    """Lower-cased ``\\w+`` words: the normalization both dedup passes share."""
    return text.str.to_lowercase().str.extract_all(_WORD)


def exact_keys(frame: pl.DataFrame, seed: int = 1) -> pl.Series:
    """64-bit hash of the normalized text (case, whitespace and punctuation ignored), via Polars."""
    return frame.lazy().select(
        normalized_words(pl.col("text")).list.join(" ").hash(seed=seed).alias("exact_key")
    ).collect(engine="streaming")["exact_key"]


def exact_keys_from_words(word_frame: pl.DataFrame, n_rows: int) -> np.ndarray:
    """The same idea from already hashed words, with no second pass over the text.

    Key = sum over positions of mix(word hash + position salt): order-sensitive, 64 bits,
    one ``np.add.at``. Rows without words all share one key (0): empty texts are duplicates.
    """
    row = word_frame["row"].to_numpy().astype(np.int64)
    h = word_frame["h"].to_numpy()
    keys = np.zeros(n_rows, np.uint64)
    if len(h) == 0:
        return keys
    starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
    position = np.arange(len(h)) - np.repeat(starts, np.diff(np.r_[starts, len(h)]))
    with np.errstate(over="ignore"):
        mixed = _mix64(h + position.astype(np.uint64) * _POLY)
    keys[row[starts]] = np.add.reduceat(mixed, starts)
    return keys


def words(cfg: DedupConfig, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (row, text) -> one line per word: (row, h) with h a 64-bit word hash."""
    return words_and_exact_keys(cfg, frame)[0]


def words_and_exact_keys(cfg: DedupConfig, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """Word hashes (row, h) and each row's exact key, from one pass of the word regex.

    The two queries share their ``extract_all`` subplan, which Polars computes once
    (streaming engine, both cores).
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
    return pl.DataFrame({"row": grams["row"], "h": h})


def shingles(cfg: DedupConfig, frame: pl.DataFrame, word_frame: pl.DataFrame | None = None) -> pl.DataFrame:
    """``frame`` (row, text) -> (row, h): hashed word n-grams, plus character n-grams for short texts.

    ``word_frame`` is :func:`words` of the same frame when the caller already has it.
    """
    if cfg.engine == "datasketch":
        return datasketch_shingles(cfg, frame)
    word_frame = words(cfg, frame) if word_frame is None else word_frame  # explode keeps row order
    row = word_frame["row"].to_numpy().astype(np.int64)
    word_h = word_frame["h"].to_numpy()
    parts_h, parts_row = [], []
    h, r = _ngram_hashes(word_h, row, cfg.ngram, whole_if_short=True)
    parts_h.append(h)
    parts_row.append(r)
    counts = np.bincount(row, minlength=int(frame["row"].max() or 0) + 1) if len(row) else np.zeros(0, np.int64)
    short = np.flatnonzero((counts > 0) & (counts < cfg.char_shingle_below))
    if len(short):
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
        c_h, c_r = _ngram_hashes(chars["h"].to_numpy(), c_row, cfg.char_ngram, whole_if_short=True)
        parts_h.append(c_h ^ _CHAR_SALT)
        parts_row.append(c_r)
    # rows are contiguous within each part, not across parts: signatures() sorts when its engine needs it
    return pl.DataFrame({"row": np.concatenate(parts_row), "h": np.concatenate(parts_h)})


def signatures(cfg: DedupConfig, shingle_frame: pl.DataFrame, n_rows: int) -> np.ndarray:
    """(row, h) shingles -> uint32 matrix (n_rows x num_perm); rows without shingles are all 0xFFFFFFFF."""
    if cfg.engine != "oph":  # the others reduce over contiguous runs of a row
        shingle_frame = shingle_frame.sort("row", maintain_order=True)
    row = shingle_frame["row"].to_numpy().astype(np.int64)
    h = shingle_frame["h"].to_numpy()
    engine = {"oph": _signatures_oph, "rensa": _signatures_rensa, "numpy": _signatures_numpy,
              "polars": _signatures_polars, "datasketch": _signatures_datasketch}[cfg.engine]
    return engine(cfg, row, h, n_rows)


def _perm_params(cfg: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(cfg.seed)
    a = rng.randint(1, 2**62, cfg.num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.randint(0, 2**62, cfg.num_perm, dtype=np.uint64)
    return a, b


def _signatures_numpy(cfg: DedupConfig, row: np.ndarray, h: np.ndarray, n_rows: int) -> np.ndarray:
    sig = np.full((n_rows, cfg.num_perm), 0xFFFFFFFF, np.uint32)
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


def _signatures_datasketch(cfg: DedupConfig, row: np.ndarray, h: np.ndarray, n_rows: int) -> np.ndarray:
    """datasketch 2.0's MinHash (scheme affine32): MurmurHash3 fmix32 of the SHA-1 value, then
    ``a * h + b`` mod 2**32 per permutation, with datasketch's own parameter draw."""
    gen = np.random.RandomState(cfg.seed)
    a = gen.randint(0, 1 << 31, cfg.num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, cfg.num_perm, dtype=np.uint32)
    sig = np.full((n_rows, cfg.num_perm), 0xFFFFFFFF, np.uint32)
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


def _signatures_polars(cfg: DedupConfig, row: np.ndarray, h: np.ndarray, n_rows: int) -> np.ndarray:
    sig = np.full((n_rows, cfg.num_perm), 0xFFFFFFFF, np.uint32)
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


def _signatures_rensa(cfg: DedupConfig, row: np.ndarray, h: np.ndarray, n_rows: int) -> np.ndarray:
    import rensa

    offsets = np.searchsorted(row, np.arange(n_rows + 1)).astype(np.uint64)
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(h, offsets, cfg.num_perm, cfg.seed)
    return np.array(matrix.to_rows(), dtype=np.uint32).reshape(n_rows, cfg.num_perm)


def _signatures_oph(cfg: DedupConfig, row: np.ndarray, h: np.ndarray, n_rows: int) -> np.ndarray:
    """One-permutation hashing: one hash per shingle, split into num_perm bins, min per bin.

    Empty bins (texts with few shingles) are filled by rotation densification (Shrivastava
    and Li, 2014): bin j takes the value of the next non-empty bin to its right, circularly,
    salted with the distance, so two rows with the same bins fill them identically and the
    collision probability stays the Jaccard similarity.
    """
    k = cfg.num_perm
    bits = k.bit_length() - 1
    sig = np.full((n_rows, k), 0xFFFFFFFF, np.uint32)
    if len(h) == 0:
        return sig
    x = h  # shingle hashes come mixed (splitmix64) and seeded (word hashes use cfg.seed)
    bins = (x >> np.uint64(64 - bits)).astype(np.int64)
    values = np.minimum((x & _MAX32).astype(np.uint32), np.uint32(0xFFFFFFFE))  # 0xFFFFFFFF = empty
    np.minimum.at(sig.reshape(-1), row * k + bins, values)
    empty = sig == 0xFFFFFFFF
    sparse = np.flatnonzero(empty.any(axis=1) & ~empty.all(axis=1))
    if len(sparse) == 0:
        return sig
    sub = sig[sparse]
    position = np.where(sub != 0xFFFFFFFF, np.arange(k), 2 * k)
    doubled = np.concatenate([position, position + k], axis=1)
    nxt = np.minimum.accumulate(doubled[:, ::-1], axis=1)[:, ::-1][:, :k]
    distance = (nxt - np.arange(k)).astype(np.uint32)
    donor = np.take_along_axis(sub, nxt % k, axis=1)
    with np.errstate(over="ignore"):
        filled = donor + distance * np.uint32(0x9E3779B1)
    sig[sparse] = np.where(sub == 0xFFFFFFFF, filled, sub)
    return sig


def band_keys(cfg: DedupConfig, sig: np.ndarray) -> np.ndarray:
    """uint32 signatures (n x num_perm) -> uint64 band keys (n x bands)."""
    keys = np.zeros((sig.shape[0], cfg.bands), np.uint64)
    with np.errstate(over="ignore"):
        for band in range(cfg.bands):
            acc = np.full(sig.shape[0], band + 1, np.uint64)
            for col in range(band * cfg.rows, (band + 1) * cfg.rows):
                acc = acc * _POLY + sig[:, col].astype(np.uint64)
            keys[:, band] = _mix64(acc)
    return keys


def candidate_pairs(cfg: DedupConfig, keys: np.ndarray, nodes: np.ndarray) -> pl.DataFrame:
    """Band keys of ``nodes`` (global row numbers) -> unique candidate pairs (a, b) with a < b."""
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


def estimated_jaccard(sig: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """Fraction of equal signature values for each pair (a[i], b[i])."""
    out = np.empty(len(a), np.float32)
    for start in range(0, len(a), chunk):
        sl = slice(start, start + chunk)
        out[sl] = (sig[a[sl]] == sig[b[sl]]).mean(axis=1)
    return out


def exact_jaccard(shingle_frame: pl.DataFrame, pairs: pl.DataFrame) -> pl.Series:
    """Exact Jaccard of the shingle sets of each pair, in one Polars join."""
    sets = shingle_frame.unique(["row", "h"])
    sizes = sets.group_by("row").len("n")
    inter = (
        pairs.with_row_index("pair")
        .join(sets.rename({"row": "a"}), on="a")
        .join(sets.rename({"row": "b", "h": "h_b"}), left_on=["b", "h"], right_on=["b", "h_b"])
        .group_by("pair")
        .len("common")
    )
    scored = (
        pairs.with_row_index("pair")
        .join(inter, on="pair", how="left")
        .join(sizes.rename({"row": "a", "n": "n_a"}), on="a", how="left")
        .join(sizes.rename({"row": "b", "n": "n_b"}), on="b", how="left")
        .sort("pair")
        .select(
            (pl.col("common").fill_null(0) / (pl.col("n_a") + pl.col("n_b") - pl.col("common").fill_null(0)))
            .fill_null(0.0)
            .fill_nan(0.0)
            .alias("jaccard")
        )
    )
    return scored["jaccard"]


def components(n_nodes: int, pairs: pl.DataFrame) -> np.ndarray:
    """Connected-component label per node (0..n_nodes-1) given edges over node indices."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = pairs["a"].to_numpy()
    b = pairs["b"].to_numpy()
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n_nodes, n_nodes))
    _, labels = connected_components(graph, directed=False)
    return labels


def rank_expr(keep: str) -> list[pl.Expr]:
    """Sort keys: the first row after sorting a cluster by these survives (earlier data first)."""
    order = [pl.col("anchor").not_()]  # rows of --against always win
    if keep == "longest":
        order.append(-pl.col("length"))
    elif keep == "best-score":
        order.append(pl.col("score").is_null())
        order.append(-pl.col("score").fill_null(0.0))
    order.append(pl.col("node"))
    return order


def representatives(cfg: DedupConfig, clusters: pl.DataFrame) -> pl.DataFrame:
    """(node, cluster, anchor, length, score) -> the same plus ``rep`` (node that survives its cluster)."""
    ranked = clusters.sort(rank_expr(cfg.keep))
    reps = ranked.group_by("cluster", maintain_order=True).agg(pl.col("node").first().alias("rep"))
    return clusters.join(reps, on="cluster", how="left")


def greedy_clusters(cfg: DedupConfig, pairs: pl.DataFrame, nodes: pl.DataFrame) -> pl.DataFrame:
    """Greedy clustering: in survival order, a row joins the best-ranked kept row it matches, else is kept.

    The loop runs over match edges only (rows that match nothing never enter it), so it is a
    loop over a few candidate pairs per duplicate, not over documents.
    """
    ranked = nodes.sort(rank_expr(cfg.keep)).with_row_index("rank")
    rank_of = ranked.select("node", "rank")
    edges = (
        pairs.join(rank_of.rename({"node": "a", "rank": "ra"}), on="a")
        .join(rank_of.rename({"node": "b", "rank": "rb"}), on="b")
        .select(
            pl.min_horizontal("ra", "rb").alias("hi"),
            pl.max_horizontal("ra", "rb").alias("lo"),
        )
        .sort("lo", "hi")
    )
    lo = edges["lo"].to_list()
    hi = edges["hi"].to_list()
    fixed = int(nodes["anchor"].sum())  # rows of --against rank first and are never dropped
    dropped: dict[int, int] = {}  # rank of a dropped row -> rank of the kept row it duplicates
    i, n = 0, len(lo)
    while i < n:
        row = lo[i]
        match = -1
        while i < n and lo[i] == row:
            if match < 0 and hi[i] not in dropped:
                match = hi[i]
            i += 1
        if match >= 0 and row >= fixed:
            dropped[row] = match
    if not dropped:
        return pl.DataFrame(schema={"node": pl.Int64, "cluster": pl.Int64, "rep": pl.Int64})
    node_at = ranked["node"].to_numpy()
    members = np.fromiter(dropped.keys(), np.int64, len(dropped))
    reps = np.fromiter(dropped.values(), np.int64, len(dropped))
    rep_ranks = np.unique(reps)
    out = pl.DataFrame({
        "node": np.concatenate([node_at[members], node_at[rep_ranks]]),
        "rep": np.concatenate([node_at[reps], node_at[rep_ranks]]),
    })
    return out.with_columns(pl.col("rep").rank("dense").cast(pl.Int64).alias("cluster") - 1)


def greedy_buckets(cfg: DedupConfig, sig: np.ndarray, keys: np.ndarray, nodes: pl.DataFrame
                   ) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Greedy clustering straight from the LSH buckets, in survival order (no pair list).

    Each bucket remembers its best-ranked kept row. A row is compared (estimated Jaccard,
    unless verify=none) with the kept rows of its buckets and goes when one matches; else it
    is kept and becomes the remembered row of the buckets that have none. This is
    datasketch's query-then-insert with verification, O(rows x bands) whatever the bucket
    sizes, and only rows sharing a bucket with another row enter the loop.
    """
    ranked = nodes.sort(rank_expr(cfg.keep)).with_row_index("rank")
    node_ids = ranked["node"].to_numpy()
    n, bands = len(node_ids), keys.shape[1]
    with np.errstate(over="ignore"):  # one key space for all bands: band keys salted by band number
        salted = keys[node_ids] ^ (np.arange(1, bands + 1, dtype=np.uint64) * _CHAR_SALT)[None, :]
    buckets = (
        pl.DataFrame({"rank": np.repeat(np.arange(n, dtype=np.int64), bands), "bucket": salted.reshape(-1)})
        .filter(pl.len().over("bucket") > 1)
    )  # rows stay in rank order
    stats: dict[str, Any] = {"rows_in_shared_buckets": int(buckets["rank"].n_unique())}
    fixed = int(nodes["anchor"].sum())  # rows of --against rank first and are never dropped
    rank_list = buckets["rank"].to_list()
    bucket_list = buckets["bucket"].to_list()
    kept_first: dict[int, int] = {}  # best-ranked kept row per bucket; plain Python: the loop touches a
    # handful of values per row, where numpy's per-call overhead would dominate
    verify = cfg.verify != "none"
    need = int(np.ceil(cfg.threshold * sig.shape[1] - 1e-9))  # equal signature values for Jaccard >= t
    ranked_sig = sig[node_ids] if verify else None
    dropped_rank: list[int] = []
    rep_rank: list[int] = []
    compared = 0
    i, total = 0, len(rank_list)
    while i < total:
        row = rank_list[i]
        j = i
        while j < total and rank_list[j] == row:
            j += 1
        mine = bucket_list[i:j]
        i = j
        if row >= fixed:
            cands = sorted({kept_first.get(b, n) for b in mine})
            if cands[0] < n:
                match = -1
                for cand in cands:
                    if cand == n:
                        break
                    if not verify:
                        match = cand
                        break
                    compared += 1
                    if np.count_nonzero(ranked_sig[cand] == ranked_sig[row]) >= need:
                        match = cand
                        break
                if match >= 0:
                    dropped_rank.append(row)
                    rep_rank.append(match)
                    continue
        for b in mine:
            kept_first.setdefault(b, row)
    stats["candidate_pairs"] = compared
    stats["verified_pairs"] = len(dropped_rank)
    if not dropped_rank:
        empty = pl.DataFrame(schema={"node": pl.Int64, "cluster": pl.Int64, "rep": pl.Int64})
        return empty, stats
    members = np.asarray(dropped_rank, np.int64)
    reps = np.asarray(rep_rank, np.int64)
    rep_ranks = np.unique(reps)
    out = pl.DataFrame({
        "node": np.concatenate([node_ids[members], node_ids[rep_ranks]]).astype(np.int64),
        "rep": np.concatenate([node_ids[reps], node_ids[rep_ranks]]).astype(np.int64),
    })
    return out.with_columns(pl.col("rep").rank("dense").cast(pl.Int64).alias("cluster") - 1), stats


def near_duplicates(
    cfg: DedupConfig,
    sig: np.ndarray,
    keys: np.ndarray,
    nodes: pl.DataFrame,
    shingle_frame: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Cluster ``nodes`` (node, anchor, length, score; node indexes ``sig``/``keys``) into near-duplicates.

    Returns (node, cluster, rep, similarity) for every node in a cluster of two or more, and
    stats for the report. ``shingle_frame`` (row = node) is needed for ``verify=exact``.
    """
    node_ids = nodes["node"].to_numpy()
    node_ids = node_ids[(sig[node_ids] != 0xFFFFFFFF).any(axis=1)]  # no shingle, no LSH
    empty = pl.DataFrame(schema={"node": pl.Int64, "cluster": pl.Int64, "rep": pl.Int64, "similarity": pl.Float32})
    if cfg.clustering == "greedy" and cfg.verify != "exact":
        chosen, stats = greedy_buckets(cfg, sig, keys, nodes.filter(pl.col("node").is_in(node_ids)))
        if chosen.height == 0:
            stats["clusters"] = 0
            return empty, stats
        sim = estimated_jaccard(sig, chosen["node"].to_numpy(), chosen["rep"].to_numpy())
        chosen = chosen.with_columns(pl.Series("similarity", sim)).select("node", "cluster", "rep", "similarity")
        stats["clusters"] = int(chosen["cluster"].n_unique())
        return chosen, stats
    pairs = candidate_pairs(cfg, keys[node_ids], node_ids)
    stats: dict[str, Any] = {"candidate_pairs": pairs.height}
    if pairs.height and cfg.verify != "none":
        if cfg.verify == "exact":
            if shingle_frame is None:
                raise CurateError("verify=exact needs the shingles of the candidate rows")
            sim = exact_jaccard(shingle_frame, pairs)
        else:
            sim = pl.Series(estimated_jaccard(sig, pairs["a"].to_numpy(), pairs["b"].to_numpy()))
        pairs = pairs.with_columns(sim.alias("sim")).filter(pl.col("sim") >= cfg.threshold).drop("sim")
    stats["verified_pairs"] = pairs.height
    if pairs.height == 0:
        stats["clusters"] = 0
        return empty, stats
    if cfg.clustering == "greedy":
        chosen = greedy_clusters(cfg, pairs, nodes)
    else:
        members = np.unique(np.concatenate([pairs["a"].to_numpy(), pairs["b"].to_numpy()]))
        local = {"a": np.searchsorted(members, pairs["a"].to_numpy()),
                 "b": np.searchsorted(members, pairs["b"].to_numpy())}
        labels = components(len(members), pl.DataFrame(local))
        clusters = pl.DataFrame({"node": members.astype(np.int64), "cluster": labels.astype(np.int64)}).join(
            nodes.select("node", "anchor", "length", "score"), on="node", how="left"
        )
        chosen = representatives(cfg, clusters)
    sim = estimated_jaccard(sig, chosen["node"].to_numpy(), chosen["rep"].to_numpy())
    chosen = chosen.with_columns(pl.Series("similarity", sim)).select("node", "cluster", "rep", "similarity")
    stats["clusters"] = int(chosen["cluster"].n_unique())
    return chosen, stats
