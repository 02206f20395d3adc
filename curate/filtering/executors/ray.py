"""The Ray executor: the same per-chunk stages and the same decisions as the local one, on a Ray cluster.

``curate filter … --executor ray [--address auto|ray://HOST:PORT]``. The run:

1. read (driver): the input is parsed and checked by the same reader as local
   (:func:`curate.filtering.native_read.read_chunks`), so rows are numbered from (file, line),
   never from arrival order, and bad rows fail or are quarantined exactly as before.
2. features (Ray Data ``map_batches`` over Arrow batches): rules, decontamination and dedup
   features of each batch by :func:`curate.filtering.chunk.process_chunk`, the function the local
   executor calls. The result is materialized in the object store and checked (every row once)
   before anything reads it.
3. band-key shuffle (Ray tasks): each block emits ``(band, key, row)`` for its live rows, hash
   partitioned by key; each reducer groups its partition by key and turns each bucket of ``k``
   rows into a chain of ``k - 1`` edges (linear, not the ``k²/2`` pairs).
4. decide (driver): the rows on an edge plus the rows sharing an exact key are the only rows any
   dedup decision can touch (a row in no shared bucket and with a unique key is never compared).
   Their features are fetched and :func:`curate.filtering.dedup.steps.decide`, the local
   function, runs on them, numbered in row order, so ``--keep``, ``--verify``, ``--clustering``
   and the cluster numbers are those of the local run. The connected components of the chain
   edges are counted on the driver (scipy); the edge list must fit there (``MAX_DRIVER_EDGES``).
5. outputs (driver): :func:`curate.filtering.outputs.write_outputs`, one output set, as local.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.cluster import session
from curate.errors import CurateError
from curate.filtering.chunk import SLIM
from curate.filtering.dedup import steps
from curate.filtering.dedup.lsh import salted
from curate.filtering.dedup.minhash import EMPTY
from curate.filtering.settings import FilterConfig

MAX_DRIVER_EDGES = 200_000_000
"""Chain edges the driver takes (16 bytes each, about 3.2 GB with scipy's copy); above it the run stops with an
error: the distributed union-find that would take over is not built."""
_MATRICES = ("sig", "keys", "response_sig", "response_keys", "response_short")
_VECTORS = ("response_words",)


@contextmanager
def _failures(ray: Any) -> Iterator[None]:
    """A task that failed after Ray's retries (a lost node, a worker killed too often, an error in a stage) stops
    the run with one line; nothing has been written yet, so the previous outputs stay as they were."""
    try:
        yield
    except ray.exceptions.RayError as exc:
        cause = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
        raise CurateError(f"ray: the run failed ({type(exc).__name__}: {cause}); no output written") from None


# ---------------------------------------------------------------- features (workers)

def _matrix(arr: np.ndarray) -> Any:
    import pyarrow as pa

    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(arr).reshape(-1)), arr.shape[1])


def _feature_table(batch: Any, cfg: FilterConfig, eval_sets: list[Any]) -> Any:
    """One Arrow batch -> its slim decisions, dedup features (one column each) and stage seconds."""
    import pyarrow as pa

    from curate.filtering.chunk import process_chunk

    frame = pl.from_arrow(batch).sort("row")
    rows = frame["row"].to_numpy()
    result = process_chunk(cfg, frame, eval_sets)
    table = result.slim.to_arrow()
    feats = result.features
    for name in _MATRICES:
        value = getattr(feats, name)
        if value is not None:
            table = table.append_column(name, _matrix(value))
    for name in _VECTORS:
        value = getattr(feats, name)
        if value is not None:
            table = table.append_column(name, pa.array(value))
    if feats.shingles is not None:  # verify=exact: the shingle hashes of each row, as a list
        local = feats.shingles.with_columns(pl.col("row") - int(rows[0]))
        lists = local.group_by("row").agg("h")
        per_row = pl.DataFrame({"row": np.arange(len(rows))}).join(lists, on="row", how="left")
        table = table.append_column("shingles", per_row["h"].to_arrow())
    seconds = [None] * len(rows)
    seconds[0] = json.dumps(dict(result.seconds))
    return table.append_column("_seconds", pa.array(seconds, pa.string()))


def _band_rows(cfg: FilterConfig, block: Any) -> pl.DataFrame:
    """(band, key, row) of the live rows of a block: keys salted by band, so one key space (as greedy buckets)."""
    frame = pl.from_arrow(block)
    rows = frame["row"].to_numpy()
    fields = [("sig", "keys"), ("response_sig", "response_keys")] if cfg.dedup.dedup_on == "pair" else [("sig", "keys")]
    keys, live = [], []
    for sig_name, key_name in fields:
        width = frame[key_name].dtype.size  # type: ignore[union-attr]
        keys.append(frame[key_name].to_numpy().reshape(len(rows), width))
        sig = frame[sig_name].to_numpy().reshape(len(rows), -1)
        live.append(np.repeat((sig != EMPTY).any(axis=1)[:, None], width, axis=1))
    all_keys = salted(np.concatenate(keys, axis=1))
    mask = np.concatenate(live, axis=1) & frame["reason"].is_null().to_numpy()[:, None]
    band = np.broadcast_to(np.arange(all_keys.shape[1], dtype=np.int32), all_keys.shape)
    return pl.DataFrame({"band": band[mask], "key": all_keys[mask],
                         "row": np.broadcast_to(rows[:, None], all_keys.shape)[mask]})


def _partition(cfg: FilterConfig, parts: int, block: Any) -> list[Any]:
    """Map side of the shuffle: a block's band rows, hash partitioned by key."""
    band = _band_rows(cfg, block)
    band = band.with_columns((pl.col("key") % parts).cast(pl.Int32).alias("_p"))
    out = [band.filter(pl.col("_p") == p).drop("_p").to_arrow() for p in range(parts)]
    return out if parts > 1 else out[0]  # one return value is the value itself, not a list of one


def _size(table: Any) -> tuple[int, int]:
    return table.num_rows, table.nbytes


def _chain_edges(*pieces: Any) -> tuple[Any, int]:
    """Reduce side: group one partition by key; each bucket of k rows -> k-1 edges between consecutive rows.

    Returns the edges and how many band rows it read (the driver checks none was lost)."""
    import pyarrow as pa

    band = pl.from_arrow(pa.concat_tables(pieces)).sort("key", "row")
    same = band["key"].to_numpy()
    rows = band["row"].to_numpy()
    link = np.flatnonzero(same[1:] == same[:-1]) if len(rows) > 1 else np.zeros(0, np.int64)
    return pa.table({"a": rows[link], "b": rows[link + 1]}), band.height


def _slim_of(block: Any) -> Any:
    return block.select([*SLIM, "_seconds"])


def _rows_of(block: Any, wanted: np.ndarray) -> Any:
    """The feature columns of the ``wanted`` rows of a block."""
    import pyarrow as pa
    import pyarrow.compute as pc

    picked = block.filter(pc.is_in(block["row"], pa.array(wanted)))
    return picked.drop_columns([c for c in picked.column_names if c in SLIM and c not in ("row", "exact_key")] + ["_seconds"])


# ---------------------------------------------------------------- driver

def _read(source: str | os.PathLike[str], cfg: FilterConfig, quarantine: Any) -> tuple[list[Any], str | None]:
    from curate.filtering.extract import Columns
    from curate.filtering.native_read import read_chunks

    columns = Columns(cfg)
    tables = []
    try:
        for frame in read_chunks(source, cfg, columns, quarantine):
            tables.append(frame.to_arrow())
    finally:
        if quarantine is not None:
            quarantine.close()
    return tables, columns.score_key


def _features(ray: Any, cfg: FilterConfig, tables: list[Any], eval_sets: list[Any]) -> list[Any]:
    """Stage 2 on Ray Data; returns the block refs of the materialized result, checked to hold every row once."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True  # contiguous row ranges per batch, as local chunks
    ds = ray.data.from_arrow(tables).map_batches(
        _feature_table, batch_size=cfg.chunk_rows, batch_format="pyarrow", zero_copy_batch=True,
        fn_args=(cfg,), fn_kwargs={"eval_sets": eval_sets}, udf_modifying_row_count=False,
    )
    return list(ds.materialize().to_arrow_refs())


def _check_slim(slim: pl.DataFrame, n_rows: int) -> pl.DataFrame:
    """Every input row exactly once: a lost or repeated block stops the run before any output."""
    slim = slim.sort("row")
    if slim.height != n_rows or not np.array_equal(slim["row"].to_numpy(), np.arange(n_rows)):
        raise CurateError(f"ray: the feature stage returned {slim.height} rows for {n_rows} read "
                          f"(a lost or repeated block); no output written")
    return slim


def _seconds(slim: pl.DataFrame) -> Counter[str]:
    total: Counter[str] = Counter()
    for text in slim["_seconds"].drop_nulls().to_list():
        total.update(json.loads(text))
    return total


def _shuffle(ray: Any, cfg: FilterConfig, refs: list[Any], stats: dict[str, Any]) -> pl.DataFrame:
    """Stage 3: (band, key, row) hash-partitioned by key, each bucket a chain of edges. Returns (a, b)."""
    parts = max(1, min(len(refs), int(ray.cluster_resources().get("CPU", 1))))
    part = ray.remote(_partition).options(num_returns=parts)
    mapped = [part.remote(cfg, parts, ref) for ref in refs]
    mapped = [m if isinstance(m, list) else [m] for m in mapped]
    size = ray.remote(_size)
    sizes = ray.get([size.remote(piece) for m in mapped for piece in m])
    stats["band_rows_shuffled"] = sum(s[0] for s in sizes)
    stats["bytes_shuffled"] = sum(s[1] for s in sizes)
    reduce = ray.remote(_chain_edges)
    reduced = ray.get([reduce.remote(*[m[p] for m in mapped]) for p in range(parts)])
    if sum(n for _, n in reduced) != stats["band_rows_shuffled"]:
        raise CurateError(f"ray: the reducers read {sum(n for _, n in reduced)} band rows of "
                          f"{stats['band_rows_shuffled']} shuffled; no output written")
    out = pl.concat([pl.from_arrow(e) for e, _ in reduced])
    stats["edges"] = out.height
    stats["partitions"] = parts
    return out


def _components(edges: pl.DataFrame, stats: dict[str, Any]) -> np.ndarray:
    """The rows on a chain edge; counts their connected components (the driver-side step, bounded)."""
    if edges.height > MAX_DRIVER_EDGES:
        raise CurateError(f"ray: {edges.height} candidate edges exceed the driver's bound of {MAX_DRIVER_EDGES}; "
                          "a distributed union-find is not built yet: use fewer bands or split the input")
    if edges.height == 0:
        stats["candidate_components"] = 0
        return np.zeros(0, np.int64)
    from curate.filtering.dedup.clusters import components

    members = np.unique(np.concatenate([edges["a"].to_numpy(), edges["b"].to_numpy()]))
    local = pl.DataFrame({"a": np.searchsorted(members, edges["a"].to_numpy()),
                          "b": np.searchsorted(members, edges["b"].to_numpy())})
    labels = components(len(members), local)
    stats["candidate_components"] = int(labels.max()) + 1
    stats["largest_component"] = int(np.bincount(labels).max())
    return members


def _compact_features(ray: Any, cfg: FilterConfig, refs: list[Any], wanted: np.ndarray) -> steps.Features:
    """The dedup features of ``wanted`` (sorted global rows), numbered 0..len-1 in that order."""
    pick = ray.remote(_rows_of)
    wanted_ref = ray.put(wanted)
    got = pl.concat([pl.from_arrow(t) for t in ray.get([pick.remote(r, wanted_ref) for r in refs])]).sort("row")
    n = got.height
    if n != len(wanted) or not np.array_equal(got["row"].to_numpy(), wanted):
        raise CurateError(f"ray: {n} feature rows came back for {len(wanted)} candidates; no output written")
    feats = steps.Features(got["exact_key"].to_numpy())
    for name in _MATRICES:
        if name in got.columns:
            setattr(feats, name, got[name].to_numpy().reshape(n, -1))
    for name in _VECTORS:
        if name in got.columns:
            setattr(feats, name, got[name].to_numpy())
    if "shingles" in got.columns:
        feats.shingles = (got.select(pl.int_range(0, n, dtype=pl.Int64).alias("row"), pl.col("shingles").alias("h"))
                          .explode("h").drop_nulls("h").cast({"h": pl.UInt64}))
    return feats


def _decide(ray: Any, cfg: FilterConfig, refs: list[Any], rows: pl.DataFrame, stats: dict[str, Any],
            apply_decisions: Callable[..., pl.DataFrame]) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Stage 4: the local decide over the rows that any decision can touch, then the local apply_decisions."""
    alive = rows.filter(pl.col("reason").is_null())
    wanted = np.zeros(0, np.int64)
    if cfg.dedup is not None:
        start = time.perf_counter()
        wanted = _components(_shuffle(ray, cfg, refs, stats), stats)
        stats["wall_shuffle"] = round(time.perf_counter() - start, 2)
    if cfg.exact_dedup:
        shared = alive.filter(pl.len().over("exact_key") > 1)["row"].to_numpy()
        wanted = np.union1d(wanted, shared)
    wanted = np.union1d(wanted, np.zeros(0, np.int64)).astype(np.int64)
    stats["rows_to_driver"] = len(wanted)
    cols = ["id", "exact_key", "length", "score"]
    nodes = (alive.filter(pl.col("row").is_in(pl.Series(wanted).implode()))
             .select(pl.col("row").alias("node"), *cols, pl.lit(False).alias("anchor")).sort("node"))
    feats = _compact_features(ray, cfg, refs, wanted) if len(wanted) else _no_features(cfg)
    compact = nodes.with_columns(pl.Series("node", np.searchsorted(wanted, nodes["node"].to_numpy()), pl.Int64))
    dups, dedup_stats = steps.decide(cfg.dedup, cfg.exact_dedup, _with_empty(cfg, feats), compact)
    dups = dups.with_columns(pl.Series("node", wanted[dups["node"].to_numpy()], pl.Int64),  # back to global rows
                             pl.Series("rep", wanted[dups["rep"].to_numpy()], pl.Int64))
    dups = dups.with_columns(pl.when(pl.col("stage") == "exact_dedup")
                             .then(pl.concat_str(pl.lit("exact-"), pl.col("rep").cast(pl.String)))
                             .otherwise("cluster").alias("cluster"))
    return apply_decisions(rows, nodes, dups), dedup_stats


def _no_features(cfg: FilterConfig) -> steps.Features:
    """Features of zero rows, shaped as decide expects them for this configuration (no row can be a duplicate)."""
    feats = steps.Features(np.zeros(0, np.uint64))
    d = cfg.dedup
    if d is None:
        return feats
    feats.sig, feats.keys = np.zeros((0, d.num_perm), np.uint32), np.zeros((0, d.bands), np.uint64)
    if d.dedup_on == "pair":
        feats.response_sig, feats.response_keys = feats.sig.copy(), feats.keys.copy()
        feats.response_words = np.zeros(0, np.int32)
        feats.response_short = np.zeros((0, d.short_response + 3), np.uint64)
    if d.verify == "exact":
        feats.shingles = pl.DataFrame(schema={"row": pl.Int64, "h": pl.UInt64})
    return feats


def _with_empty(cfg: FilterConfig, feats: steps.Features) -> steps.Features:
    """Exact dedup only still needs (empty) matrices where decide looks for them."""
    if feats.sig is None and cfg.dedup is not None:
        n = len(feats.exact_key)
        feats.sig = np.full((n, cfg.dedup.num_perm), EMPTY, np.uint32)
        feats.keys = np.zeros((n, cfg.dedup.bands), np.uint64)
    return feats


def run(source: str | os.PathLike[str], paths: dict[str, Path], cfg: FilterConfig, eval_sets: list[Any],
        quarantine: Any, seconds: Counter[str], started: float, address: str | None,
        apply_decisions: Callable[..., pl.DataFrame]) -> dict[str, Any]:
    """The whole run on Ray; returns the report (the outputs are written by the local writer).

    ``apply_decisions`` is :func:`curate.filtering.pipeline.apply_decisions` (passed in: the pipeline imports
    the executors, not the other way round)."""
    from curate.filtering import outputs

    if cfg.against:
        raise CurateError("--against is not supported with --executor ray yet; run it with --executor local")
    stats: dict[str, Any] = {}
    wall = time.perf_counter()
    with session(address) as ray, _failures(ray):
        start = time.perf_counter()
        stats["wall_start"] = round(start - wall, 2)
        tables, score_key = _read(source, cfg, quarantine)
        seconds["read"] += time.perf_counter() - start
        n_rows = sum(t.num_rows for t in tables)
        if not n_rows:
            raise CurateError(f"{source}: no valid records to filter")
        refs = _features(ray, cfg, tables, eval_sets)
        del tables
        slim = _check_slim(pl.concat([pl.from_arrow(t) for t in ray.get([ray.remote(_slim_of).remote(r)
                                                                             for r in refs])]), n_rows)
        seconds.update(_seconds(slim))
        stats["wall_features"] = round(time.perf_counter() - start - seconds["read"], 2)
        start = time.perf_counter()
        rows, dedup_stats = _decide(ray, cfg, refs, slim.drop("_seconds"), stats, apply_decisions)
        seconds["near_dedup" if cfg.dedup is not None else "exact_dedup"] += time.perf_counter() - start
        stats["wall_decide"] = round(time.perf_counter() - start - stats.get("wall_shuffle", 0.0), 2)
    print(f"ray: {json.dumps(stats)}", file=sys.stderr)
    run_info = {"score_key": score_key, "quarantine": quarantine, "seconds": seconds, "started": started,
                "dedup_stats": dedup_stats, "eval_sets": eval_sets, "ray": stats}
    return outputs.write_outputs(source, paths, cfg, run_info, rows)
