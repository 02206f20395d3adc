"""Candidate pairs to clusters and survivors: greedy (datasketch's query-then-insert) or components.

* ``keep`` decides which row of a cluster survives: ``first`` (input order), ``longest``
  (characters) or ``best-score`` (a ``scores`` field; rows without it rank last). Ties go
  to the earlier row, so the result is deterministic for a given seed.
* Rows of an earlier dataset (``--against``, ``anchor`` = true) take part as members that
  always win: a new row clustered with one of them is dropped, they are never touched.
* Exact duplicates: rows with the same exact key, one survivor per key by the same ranking.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from curate.filtering.dedup.config import DedupConfig
from curate.filtering.dedup.lsh import salted

CLUSTER_SCHEMA = {"node": pl.Int64, "cluster": pl.Int64, "rep": pl.Int64}


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


def exact_duplicates(nodes: pl.DataFrame, keep: str) -> pl.DataFrame:
    """(node, exact_key, anchor, length, score) -> (node, rep) for every non-anchor row that is not its key's survivor."""
    ranked = nodes.sort(rank_expr(keep))
    reps = ranked.group_by("exact_key", maintain_order=True).agg(pl.col("node").first().alias("rep"))
    return nodes.join(reps, on="exact_key").filter(
        (pl.col("node") != pl.col("rep")) & pl.col("anchor").not_()).select("node", "rep")


def components(n_nodes: int, pairs: pl.DataFrame) -> np.ndarray:
    """Connected-component label per node (0..n_nodes-1) given edges over node indices."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = pairs["a"].to_numpy()
    b = pairs["b"].to_numpy()
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n_nodes, n_nodes))
    _, labels = connected_components(graph, directed=False)
    return labels


def component_clusters(cfg: DedupConfig, pairs: pl.DataFrame, nodes: pl.DataFrame) -> pl.DataFrame:
    """Connected components of the match graph, one representative each by ``keep``."""
    members = np.unique(np.concatenate([pairs["a"].to_numpy(), pairs["b"].to_numpy()]))
    local = {"a": np.searchsorted(members, pairs["a"].to_numpy()),
             "b": np.searchsorted(members, pairs["b"].to_numpy())}
    labels = components(len(members), pl.DataFrame(local))
    clusters = pl.DataFrame({"node": members.astype(np.int64), "cluster": labels.astype(np.int64)}).join(
        nodes.select("node", "anchor", "length", "score"), on="node", how="left")
    ranked = clusters.sort(rank_expr(cfg.keep))
    reps = ranked.group_by("cluster", maintain_order=True).agg(pl.col("node").first().alias("rep"))
    return clusters.join(reps, on="cluster", how="left").select("node", "cluster", "rep")


def _cluster_frame(node_at: np.ndarray, members: np.ndarray, reps: np.ndarray) -> pl.DataFrame:
    """(node, cluster, rep) for dropped ranks ``members`` and the kept ranks ``reps`` they duplicate."""
    if len(members) == 0:
        return pl.DataFrame(schema=CLUSTER_SCHEMA)
    rep_ranks = np.unique(reps)
    out = pl.DataFrame({
        "node": np.concatenate([node_at[members], node_at[rep_ranks]]).astype(np.int64),
        "rep": np.concatenate([node_at[reps], node_at[rep_ranks]]).astype(np.int64),
    })
    return out.with_columns(pl.col("rep").rank("dense").cast(pl.Int64).alias("cluster") - 1).select(
        "node", "cluster", "rep")


def greedy_clusters(cfg: DedupConfig, pairs: pl.DataFrame, nodes: pl.DataFrame) -> pl.DataFrame:
    """Greedy clustering over verified pairs: in survival order, a row joins the best-ranked kept row it matches.

    The loop runs over match edges only, so it is a loop over a few pairs per duplicate.
    """
    ranked = nodes.sort(rank_expr(cfg.keep)).with_row_index("rank")
    rank_of = ranked.select("node", "rank")
    edges = (
        pairs.join(rank_of.rename({"node": "a", "rank": "ra"}), on="a")
        .join(rank_of.rename({"node": "b", "rank": "rb"}), on="b")
        .select(pl.min_horizontal("ra", "rb").alias("hi"), pl.max_horizontal("ra", "rb").alias("lo"))
        .sort("lo", "hi")
    )
    lo, hi = edges["lo"].to_list(), edges["hi"].to_list()
    fixed = int(nodes["anchor"].sum())  # rows of --against rank first and are never dropped
    dropped: dict[int, int] = {}  # rank of a dropped row -> rank of the kept row it duplicates
    i, n = 0, len(lo)
    while i < n:
        row, match = lo[i], -1
        while i < n and lo[i] == row:
            if match < 0 and hi[i] not in dropped:
                match = hi[i]
            i += 1
        if match >= 0 and row >= fixed:
            dropped[row] = match
    members = np.fromiter(dropped.keys(), np.int64, len(dropped))
    reps = np.fromiter(dropped.values(), np.int64, len(dropped))
    return _cluster_frame(ranked["node"].to_numpy(), members, reps)


def _query_then_insert(buckets: pl.DataFrame, n: int, fixed: int, match: Any) -> tuple[list[int], list[int], int]:
    """datasketch's loop over rows in rank order: query the kept rows of my buckets, else insert me.

    ``match(candidate, row)`` says whether a candidate confirms. Plain Python: the loop touches
    a handful of values per row, where numpy's per-call overhead would dominate.
    """
    rank_list, bucket_list = buckets["rank"].to_list(), buckets["bucket"].to_list()
    kept_first: dict[int, int] = {}  # best-ranked kept row per bucket
    dropped, reps = [], []
    compared = 0
    i, total = 0, len(rank_list)
    while i < total:
        row, j = rank_list[i], i
        while j < total and rank_list[j] == row:
            j += 1
        mine = bucket_list[i:j]
        i = j
        if row >= fixed:
            found = -1
            for cand in sorted({kept_first.get(b, n) for b in mine}):
                if cand == n:
                    break
                compared += 1
                if match(cand, row):
                    found = cand
                    break
            if found >= 0:
                dropped.append(row)
                reps.append(found)
                continue
        for b in mine:
            kept_first.setdefault(b, row)
    return dropped, reps, compared


def greedy_buckets(cfg: DedupConfig, keys: np.ndarray, nodes: pl.DataFrame,
                   make_match: Callable[[np.ndarray], Callable[[int, int], bool]]
                   ) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Greedy clustering straight from the LSH buckets, in survival order (no pair list).

    Each bucket remembers its best-ranked kept row; a row is compared with the kept rows of
    its buckets and goes when one matches. ``make_match(node_ids)`` gives the check for two
    ranks (node_ids[rank] is the node). This is datasketch's query-then-insert with
    verification, O(rows x bands) whatever the bucket sizes.
    """
    ranked = nodes.sort(rank_expr(cfg.keep)).with_row_index("rank")
    node_ids = ranked["node"].to_numpy()
    n, bands = len(node_ids), keys.shape[1]
    buckets = (
        pl.DataFrame({"rank": np.repeat(np.arange(n, dtype=np.int64), bands),
                      "bucket": salted(keys[node_ids]).reshape(-1)})
        .filter(pl.len().over("bucket") > 1)
    )  # rows stay in rank order
    stats: dict[str, Any] = {"rows_in_shared_buckets": int(buckets["rank"].n_unique())}
    dropped, reps, compared = _query_then_insert(buckets, n, int(nodes["anchor"].sum()), make_match(node_ids))
    stats["candidate_pairs"] = compared
    stats["verified_pairs"] = len(dropped)
    chosen = _cluster_frame(node_ids, np.asarray(dropped, np.int64), np.asarray(reps, np.int64))
    return chosen, stats
