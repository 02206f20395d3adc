"""The two calls the pipeline makes: :func:`features` per chunk, :func:`decide` once.

``features`` is pure and per chunk (an executor may run chunks anywhere): exact keys,
MinHash signatures and LSH band keys of the rows still alive; the texts can be dropped
afterwards. ``decide`` takes every chunk's features at once and returns who duplicates whom.

Which text is compared (``dedup_on``):

* ``prompt`` / ``response`` / ``both``: one text (user turns, assistant turns, or both
  joined) and one MinHash LSH.
* ``pair``: two records are duplicates when their prompts are near-duplicates (Jaccard >=
  ``threshold``) AND their responses are (>= ``response_threshold``; a response shorter
  than ``short_response`` words must have all its words among the other's, which may have
  at most 3 more: short answers collide under shingles). Candidates come from
  either LSH (prompt bands or response bands) and are confirmed on both signatures, so one
  passage with many questions keeps every question and one question answered twice keeps
  one answer.

Multi-turn records: with ``multi_turn=all`` the prompt is every user turn and the response
every assistant turn (so two chats are duplicates when their user sides and their
assistant sides both are); with ``first-user`` only the first exchange is compared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curate.errors import CurateError
from curate.filtering.dedup import clusters, lsh, minhash, shingles
from curate.filtering.dedup.config import DedupConfig


@dataclass
class Features:
    """What dedup keeps per row once the texts are gone; rows not alive have key 0 and EMPTY signatures."""

    exact_key: np.ndarray
    sig: np.ndarray | None = None
    keys: np.ndarray | None = None
    response_sig: np.ndarray | None = None
    response_keys: np.ndarray | None = None
    response_words: np.ndarray | None = None
    response_short: np.ndarray | None = None
    """(n x short_response + 3) hashes of the words of short responses (0 = no word), for containment."""
    shingles: pl.DataFrame | None = None
    """(row, h) with rows numbered like the chunk's; kept only for verify=exact."""
    seconds: dict[str, float] | None = None
    """Time spent on exact keys and on near-dedup features (for the report's stage table)."""


def _one_text(cfg: DedupConfig | None, prompt: pl.Expr, response: pl.Expr) -> pl.Expr:
    on = cfg.dedup_on if cfg is not None else "both"
    if on == "prompt":
        return prompt
    if on == "response":
        return response
    return pl.concat_str(prompt, response, separator="\n")


def _near(cfg: DedupConfig, text: pl.DataFrame, n: int, word_frame: pl.DataFrame | None = None
          ) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    sh = shingles.shingles(cfg, text, word_frame)
    sig = minhash.signatures(cfg, sh, n)
    return sig, lsh.band_keys(cfg, sig), sh


def features(cfg: DedupConfig | None, frame: pl.DataFrame, alive: pl.Series, offset: int = 0) -> Features:
    """Dedup features of a chunk: ``frame`` has ``prompt`` and ``response`` (the texts compared).

    ``cfg`` None: exact keys only (near dedup off). ``offset`` renumbers the kept shingles
    into the run's global row numbers. Exact dedup compares the same text as near dedup.
    """
    started = time.perf_counter()
    n = frame.height
    base = frame.select(pl.int_range(0, n, dtype=pl.Int64).alias("row"), "prompt", "response").filter(alive)
    if cfg is not None and cfg.dedup_on == "pair":
        return _pair_features(cfg, base, n, started)
    text = base.select("row", _one_text(cfg, pl.col("prompt"), pl.col("response")).alias("text"))
    word_frame, local_keys = shingles.words_and_exact_keys(cfg or DedupConfig(), text)
    exact = np.zeros(n, np.uint64)
    exact[base["row"].to_numpy()] = local_keys.to_numpy()
    out = Features(exact, seconds={"exact_dedup": time.perf_counter() - started})
    if cfg is None:
        return out
    started = time.perf_counter()
    out.sig, out.keys, sh = _near(cfg, text, n, word_frame)
    if cfg.verify == "exact":
        out.shingles = sh.with_columns(pl.col("row") + offset)
    out.seconds["near_dedup"] = time.perf_counter() - started
    return out


def _short_word_sets(words: pl.DataFrame, counts: np.ndarray, width: int) -> np.ndarray:
    """Word hashes of every response with at most ``width`` words, one row each, zero-padded."""
    out = np.zeros((len(counts), width), np.uint64)
    short = words.filter(pl.col("row").is_in(pl.Series(np.flatnonzero((counts > 0) & (counts <= width))).implode()))
    if short.height:
        rows = short["row"].to_numpy()
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        position = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
        out[rows, position] = short["h"].to_numpy() | np.uint64(1)  # never 0: 0 marks an empty slot
    return out


def _pair_features(cfg: DedupConfig, base: pl.DataFrame, n: int, started: float) -> Features:
    """Prompt and response features from one word pass each; the exact key is the pair of their keys."""
    rows = base["row"].to_numpy()
    prompt = base.select("row", pl.col("prompt").alias("text"))
    response = base.select("row", pl.col("response").alias("text"))
    p_words, p_keys = shingles.words_and_exact_keys(cfg, prompt)
    r_words, r_keys = shingles.words_and_exact_keys(cfg, response)
    exact = np.zeros(n, np.uint64)
    with np.errstate(over="ignore"):
        exact[rows] = shingles.mix64(p_keys.to_numpy() * shingles.POLY + r_keys.to_numpy())
    out = Features(exact, seconds={"exact_dedup": time.perf_counter() - started})
    started = time.perf_counter()
    out.sig, out.keys, _ = _near(cfg, prompt, n, p_words)
    out.response_sig, out.response_keys, _ = _near(cfg, response, n, r_words)
    out.response_words = np.zeros(n, np.int32)
    counts = r_words.group_by("row").len()
    out.response_words[counts["row"].to_numpy()] = counts["len"].to_numpy()
    out.response_short = _short_word_sets(r_words, out.response_words, cfg.short_response + 3)
    out.seconds["near_dedup"] = time.perf_counter() - started
    return out


def concat(parts: list[Features], cfg: DedupConfig | None) -> Features:
    """The features of every chunk, in row order, as one."""
    def cat(name: str) -> Any:
        values = [getattr(p, name) for p in parts]
        if not values or values[0] is None:
            return None
        return pl.concat(values) if isinstance(values[0], pl.DataFrame) else np.concatenate(values)

    if not parts:
        num_perm, bands = (cfg.num_perm, cfg.bands) if cfg else (1, 1)
        return Features(np.zeros(0, np.uint64), np.zeros((0, num_perm), np.uint32), np.zeros((0, bands), np.uint64))
    return Features(*(cat(name) for name in Features.__dataclass_fields__ if name != "seconds"))


def _contained(f: Features, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether every word of the shorter response of each pair is among the longer one's words."""
    small = np.where((f.response_words[a] <= f.response_words[b])[:, None], f.response_short[a], f.response_short[b])
    large = np.where((f.response_words[a] <= f.response_words[b])[:, None], f.response_short[b], f.response_short[a])
    found = (small[:, :, None] == large[:, None, :]).any(axis=2) | (small == 0)
    return found.all(axis=1) & (np.minimum(f.response_words[a], f.response_words[b]) > 0)


def _needs(cfg: DedupConfig, num_perm: int) -> tuple[int, int]:
    """Equal signature values the prompts and the responses need (Jaccard >= their thresholds)."""
    def need(t: float) -> int:
        return int(np.ceil(t * num_perm - 1e-9))
    return need(cfg.threshold), need(cfg.response_threshold or cfg.threshold)


def _is_short(cfg: DedupConfig, wa: Any, wb: Any) -> Any:
    """Pairs whose responses are compared by word containment instead of MinHash (works on arrays and ints)."""
    return (np.minimum(wa, wb) < cfg.short_response) & (np.abs(wa - wb) <= 3)


def _pair_matches(cfg: DedupConfig, f: Features, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pair rule over arrays of pairs (a[i], b[i]): confirmed on both fields; and the prompt similarity."""
    need_p, need_r = _needs(cfg, f.sig.shape[1])
    p_equal = (minhash.estimated_jaccard(f.sig, a, b) * f.sig.shape[1]).round()
    r_equal = (minhash.estimated_jaccard(f.response_sig, a, b) * f.sig.shape[1]).round()
    r_ok = np.where(_is_short(cfg, f.response_words[a], f.response_words[b]), _contained(f, a, b), r_equal >= need_r)
    return (p_equal >= need_p) & r_ok, p_equal / f.sig.shape[1]


def _pair_candidates(cfg: DedupConfig, f: Features, node_ids: np.ndarray) -> pl.DataFrame:
    """Candidates from either LSH: prompt bands or response bands."""
    p = node_ids[(f.sig[node_ids] != minhash.EMPTY).any(axis=1)]
    r = node_ids[(f.response_sig[node_ids] != minhash.EMPTY).any(axis=1)]
    return pl.concat([lsh.candidate_pairs(cfg, f.keys[p], p),
                      lsh.candidate_pairs(cfg, f.response_keys[r], r)]).unique().sort("a", "b")


def _verified_pairs(cfg: DedupConfig, f: Features, node_ids: np.ndarray, stats: dict[str, Any]) -> pl.DataFrame:
    if cfg.dedup_on == "pair":
        pairs = _pair_candidates(cfg, f, node_ids)
        stats["candidate_pairs"] = pairs.height
        if pairs.height and cfg.verify != "none":
            ok, _ = _pair_matches(cfg, f, pairs["a"].to_numpy(), pairs["b"].to_numpy())
            pairs = pairs.filter(pl.Series(ok))
        return pairs
    node_ids = node_ids[(f.sig[node_ids] != minhash.EMPTY).any(axis=1)]  # no shingle, no LSH
    pairs = lsh.candidate_pairs(cfg, f.keys[node_ids], node_ids)
    stats["candidate_pairs"] = pairs.height
    if pairs.height and cfg.verify != "none":
        if cfg.verify == "exact":
            if f.shingles is None:
                raise CurateError("verify=exact needs the shingles of the candidate rows")
            sim = minhash.exact_jaccard(f.shingles, pairs)
        else:
            sim = pl.Series(minhash.estimated_jaccard(f.sig, pairs["a"].to_numpy(), pairs["b"].to_numpy()))
        pairs = pairs.filter(sim >= cfg.threshold)
    return pairs


def _signature_match(cfg: DedupConfig, f: Features) -> Any:
    need = int(np.ceil(cfg.threshold * f.sig.shape[1] - 1e-9))  # equal signature values for Jaccard >= t

    def make(node_ids: np.ndarray) -> Any:
        if cfg.verify == "none":
            return lambda cand, row: True
        sig = f.sig[node_ids]
        return lambda cand, row: int(np.count_nonzero(sig[cand] == sig[row])) >= need
    return make


def _pair_match(cfg: DedupConfig, f: Features) -> Any:
    """The pair rule for one (kept, candidate) pair of ranks: :func:`_pair_matches`' rule, one pair at a time."""
    need_p, need_r = _needs(cfg, f.sig.shape[1])

    def make(node_ids: np.ndarray) -> Any:
        p_sig, r_sig = f.sig[node_ids], f.response_sig[node_ids]
        words = f.response_words[node_ids].tolist()

        def match(cand: int, row: int) -> bool:
            if int(np.count_nonzero(p_sig[cand] == p_sig[row])) < need_p:
                return False
            if _is_short(cfg, words[cand], words[row]):
                return bool(_contained(f, node_ids[[cand]], node_ids[[row]])[0])
            return int(np.count_nonzero(r_sig[cand] == r_sig[row])) >= need_r
        return match
    return make


def _live(f: Features, nodes: pl.DataFrame, pair: bool) -> pl.DataFrame:
    """Nodes with a signature (a text with no word has none and never enters LSH)."""
    ids = nodes["node"].to_numpy()
    has = (f.sig[ids] != minhash.EMPTY).any(axis=1)
    if pair:
        has &= (f.response_sig[ids] != minhash.EMPTY).any(axis=1)
    return nodes.filter(pl.col("node").is_in(ids[has]))


def near_duplicates(cfg: DedupConfig, f: Features, nodes: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Cluster ``nodes`` (node, anchor, length, score; node indexes the features) into near-duplicates.

    Returns (node, cluster, rep, similarity) for every node in a cluster of two or more, and
    stats for the report. Similarity is the estimated Jaccard (of the prompts, for pair).
    """
    pair = cfg.dedup_on == "pair"
    if cfg.clustering == "greedy" and cfg.verify != "exact" and not (pair and cfg.verify == "none"):
        keys = np.concatenate([f.keys, f.response_keys], axis=1) if pair else f.keys  # candidates from either
        make = _pair_match(cfg, f) if pair else _signature_match(cfg, f)
        chosen, stats = clusters.greedy_buckets(cfg, keys, _live(f, nodes, pair), make)
    else:
        stats = {}
        pairs = _verified_pairs(cfg, f, nodes["node"].to_numpy(), stats)
        stats["verified_pairs"] = pairs.height
        if pairs.height == 0:
            chosen = pl.DataFrame(schema=clusters.CLUSTER_SCHEMA)
        elif cfg.clustering == "greedy":
            chosen = clusters.greedy_clusters(cfg, pairs, nodes)
        else:
            chosen = clusters.component_clusters(cfg, pairs, nodes)
    sim = minhash.estimated_jaccard(f.sig, chosen["node"].to_numpy(), chosen["rep"].to_numpy())
    chosen = chosen.with_columns(pl.Series("similarity", sim, pl.Float32)).select("node", "cluster", "rep",
                                                                                   "similarity")
    stats["clusters"] = int(chosen["cluster"].n_unique()) if chosen.height else 0
    return chosen, stats


def decide(cfg: DedupConfig | None, exact: bool, f: Features, nodes: pl.DataFrame
           ) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Exact then near-duplicate decisions over all rows at once.

    ``nodes``: (node, exact_key, anchor, length, score) of the rows still alive plus the
    ``--against`` rows (anchor). Returns (node, rep, stage, similarity, cluster) for each
    dropped row (anchors never dropped) and stats for the report.
    """
    stats: dict[str, Any] = {}
    decided = []
    keep = cfg.keep if cfg else "first"
    if exact:
        dup = clusters.exact_duplicates(nodes, keep)
        stats["exact_clusters"] = int(dup["rep"].n_unique())
        decided.append(dup.select("node", "rep", pl.lit("exact_dedup").alias("stage"),
                                  pl.lit(None, pl.Float32).alias("similarity"),
                                  pl.concat_str(pl.lit("exact-"), pl.col("rep").cast(pl.String)).alias("cluster")))
        nodes = nodes.filter(pl.col("node").is_in(dup["node"].implode()).not_())
    if cfg is not None:
        chosen, near_stats = near_duplicates(cfg, f, nodes)
        stats.update(near_stats)
        anchors = nodes.filter(pl.col("anchor"))["node"].implode()
        near = chosen.filter((pl.col("node") != pl.col("rep")) & pl.col("node").is_in(anchors).not_())
        decided.append(near.select("node", "rep", pl.lit("near_dedup").alias("stage"), "similarity",
                                   pl.concat_str(pl.lit("near-"), pl.col("cluster").cast(pl.String)).alias("cluster")))
    schema = {"node": pl.Int64, "rep": pl.Int64, "stage": pl.String, "similarity": pl.Float32, "cluster": pl.String}
    if not decided:
        return pl.DataFrame(schema=schema), stats
    return pl.concat(decided, how="vertical_relaxed").cast(schema), stats  # type: ignore[arg-type]
