"""`curate score --executor ray`: the scorers mapped over the run's chunks on a Ray cluster, one model per actor.

The chunks are the local run's chunks (``chunk_size`` unique rows, in input order), each shipped
whole as one item, so every scorer call sees exactly the batch the local executor would give it.
Ray Data ``map_batches`` runs a pool of actors; each builds its scorer once
(:func:`curate.scoring.run.build_scorer`: the model loads once per actor) and asks for one GPU
when the cluster has GPUs. The driver appends each finished chunk to the same score cache as
the local run, as it arrives, so an interrupted Ray run resumes (locally or on Ray) without
scoring a row twice, and writes the outputs through the same writer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from curate.errors import CurateError


class ChunkScorer:
    """A Ray actor: one scorer (one model) built at start, then whole chunks scored, one per call."""

    def __init__(self, build: Callable[[str, Any], Any], group: str, cfg: Any):
        self.scorer = build(group, cfg)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        out = []
        for payload in batch["records"]:
            chunk = json.loads(payload)
            results = self.scorer(chunk)
            if len(results) != len(chunk):
                raise CurateError(f"scorer returned {len(results)} results for {len(chunk)} rows")
            out.append(json.dumps({"results": {r["id"]: res for r, res in zip(chunk, results, strict=True)},
                                   "describe": self.scorer.describe()}))
        return {"chunk": batch["chunk"], "out": np.array(out, dtype=object)}


def _actors(ray: Any, chunks: int) -> tuple[int, float]:
    """(actors, GPUs per actor): one per GPU when the cluster has GPUs, else one per CPU."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return max(1, min(chunks, gpus)), 1.0
    return max(1, min(chunks, int(resources.get("CPU", 1)))), 0.0


def score_group(ray: Any, build: Callable[[str, Any], Any], group: str, cfg: Any, records: Sequence[Mapping[str, Any]], chunk_size: int,
                cache: Any, done: dict[str, Any], tick: Callable[[int], None]) -> tuple[dict[str, Any], float,
                                                                                         int, dict[str, Any]]:
    """The missing chunks of one scorer group on Ray; returns (results by id, seconds, rows computed, describe).

    ``build(group, cfg)`` is :func:`curate.scoring.run.build_scorer` (passed in: run imports this module)."""
    todo = []
    for number, start in enumerate(range(0, len(records), chunk_size)):
        chunk = [r for r in records[start:start + chunk_size] if r["id"] not in done]
        if chunk:
            todo.append({"chunk": number, "records": json.dumps(chunk)})
    if not todo:
        return done, 0.0, 0, {}
    began = time.perf_counter()
    actors, gpus = _actors(ray, len(todo))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items(todo, override_num_blocks=len(todo)).map_batches(
        ChunkScorer, fn_constructor_args=(build, group, cfg), batch_size=1, batch_format="numpy",
        concurrency=actors, num_gpus=gpus, num_cpus=0 if gpus else 1)
    computed, describe = 0, {}
    try:
        for row in ds.iter_rows():  # in completion order; each chunk is cached as it arrives (resumable)
            value = json.loads(row["out"])
            cache.add(int(row["chunk"]), value["results"], value["describe"])
            done.update(value["results"])
            describe = value["describe"]
            computed += len(value["results"])
            tick(len(value["results"]))
    except ray.exceptions.RayError as exc:
        cause = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
        raise CurateError(f"ray: scoring failed ({type(exc).__name__}: {cause}); finished chunks are cached, "
                          "no output written") from None
    return done, time.perf_counter() - began, computed, describe
