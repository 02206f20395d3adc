"""The local executor: read the input once, chunk by chunk, and run each chunk's stages in this process.

What it returns is what the driver needs to decide once: every chunk's slim decisions frame,
its dedup features and the seconds per stage. A Ray executor has the same shape: it ships
chunks to workers that call the same pure :func:`~curate.filtering.chunk.process_chunk`.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from curate.filtering.chunk import ChunkResult, against_features, process_chunk
from curate.filtering.dedup.steps import Features
from curate.filtering.extract import Columns, records_chunks
from curate.filtering.native_read import read_chunks
from curate.filtering.settings import FilterConfig
from curate.records.jsonl import Quarantine


@dataclass
class ChunkRun:
    """Every chunk's results, in input order."""

    slim: list[pl.DataFrame] = field(default_factory=list)
    features: list[Features] = field(default_factory=list)
    seconds: Counter[str] = field(default_factory=Counter)
    score_key: str | None = None

    def add(self, result: ChunkResult) -> None:
        self.slim.append(result.slim)
        self.features.append(result.features)
        self.seconds.update(result.seconds)


def run_chunks(source: str | os.PathLike[str], cfg: FilterConfig, eval_sets: list[Any],
               quarantine: Quarantine | None, advance: Callable[[int], Any] = lambda n: None) -> ChunkRun:
    """Read ``source`` and run the per-chunk stages; ``seconds['read']`` is the time outside them."""
    run = ChunkRun()
    columns = Columns(cfg)
    started = time.perf_counter()
    try:
        for frame in read_chunks(source, cfg, columns, quarantine):
            run.add(process_chunk(cfg, frame, eval_sets))
            advance(frame.height)
    finally:
        if quarantine is not None:
            quarantine.close()
    run.seconds["read"] += time.perf_counter() - started - sum(run.seconds.values())
    run.score_key = columns.score_key
    return run


def run_against(paths: list[str], cfg: FilterConfig, first_row: int) -> ChunkRun:
    """Dedup features of earlier datasets (``--against``), numbered after the input's rows."""
    run = ChunkRun()
    for path in paths:
        for frame in records_chunks(path, cfg, first_row):
            run.add(against_features(cfg, frame))
            first_row += frame.height
    return run
