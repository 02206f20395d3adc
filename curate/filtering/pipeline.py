"""`curate filter`: quality rules, decontamination, exact and near-duplicate removal, every drop explained.

::

    curate filter generated.jsonl --out out/curated.jsonl [--preset sft] [--config filter.yaml]
        [--decontaminate EVAL.jsonl] [--against OLD.jsonl] [--threshold 0.7 --ngram 5 --num-perm 128]

The run, in the order the code does it:

1. settings: :mod:`curate.filtering.settings` (defaults <- YAML <- flags).
2. per chunk (:mod:`curate.filtering.executors.local`): rows extracted
   (:mod:`curate.filtering.extract`), rules, decontamination and dedup features computed
   (:func:`curate.filtering.chunk.process_chunk`); the texts are dropped, so memory holds a
   few numbers per row (signature, band keys), not the data.
3. once: exact then near-duplicate decisions (:func:`curate.filtering.dedup.steps.decide`).
4. outputs (:mod:`curate.filtering.outputs`): the input streamed a second time, kept lines
   passed through; ``curated.jsonl``, ``rejected.jsonl``, ``filter_report.json`` and
   ``filter_config.yaml`` are committed as one output set (:mod:`curate.runs.commit`) under
   the output's lock, so an interrupted run leaves the previous outputs as they were.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate.errors import CurateError
from curate.filtering import outputs
from curate.filtering.decisions import apply_decisions, dedup_nodes
from curate.filtering.dedup import steps
from curate.filtering.executors.local import ChunkRun, run_against, run_chunks
from curate.filtering.settings import FilterConfig, load_config
from curate.records.jsonl import Quarantine

__all__ = ["FilterConfig", "FilterResult", "apply_decisions", "load_config", "run_filter"]


@dataclass
class FilterResult:
    report: dict[str, Any]
    paths: dict[str, str]


def _dedup(cfg: FilterConfig, chunk_run: ChunkRun, rows: pl.DataFrame, seconds: Counter[str]
           ) -> tuple[pl.DataFrame, dict[str, Any]]:
    if not cfg.exact_dedup and cfg.dedup is None:
        return apply_decisions(rows, pl.DataFrame(), pl.DataFrame()), {}
    anchors = pl.DataFrame()
    features = chunk_run.features
    if cfg.against:
        against = run_against(cfg.against, cfg, rows.height)
        anchors = pl.concat(against.slim)
        features = features + against.features
        seconds.update(against.seconds)
    start = time.perf_counter()
    nodes = dedup_nodes(rows, anchors)
    dups, stats = steps.decide(cfg.dedup, cfg.exact_dedup, steps.concat(features, cfg.dedup), nodes)
    seconds["near_dedup" if cfg.dedup is not None else "exact_dedup"] += time.perf_counter() - start
    return apply_decisions(rows, nodes, dups), stats


def _eval_sets(cfg: FilterConfig, seconds: Counter[str]) -> list[Any]:
    if not cfg.decontaminate:
        return []
    from curate.filtering.decontam import load_eval_set

    start = time.perf_counter()
    sets = [load_eval_set(p, cfg.decontam_ngram) for p in cfg.decontaminate]
    seconds["decontaminate"] += time.perf_counter() - start
    return sets


def run_filter(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    cfg: FilterConfig,
    skip_invalid: bool = False,
    quarantine_path: str | os.PathLike[str] | None = None,
    progress: bool = False,
    executor: str = "local",
    address: str | None = None,
) -> FilterResult:
    """Filter and dedup ``source`` into ``out`` and its siblings; see the module docstring.

    ``executor="ray"`` runs the same stages on a Ray cluster (:mod:`curate.filtering.executors.ray`) at
    ``address`` (auto, ray://host:port; None starts a local one); the outputs are the same."""
    if address is not None and executor != "ray":
        raise CurateError("--address applies only to --executor ray")
    from curate.runs.lock import check_writable, output_lock

    paths = outputs.output_paths(out)
    if Path(source).resolve() in {p.resolve() for p in paths.values()}:
        raise CurateError(f"{source}: the input would be overwritten by an output; choose another --out")
    check_writable(out)
    with output_lock(out, "curate filter"):
        if executor == "ray":
            return _run_ray(source, out, paths, cfg, skip_invalid, quarantine_path, address)
        return _run(source, out, paths, cfg, skip_invalid, quarantine_path, progress)


def _run_ray(source: str | os.PathLike[str], out: str | os.PathLike[str], paths: dict[str, Path], cfg: FilterConfig,
             skip_invalid: bool, quarantine_path: str | os.PathLike[str] | None, address: str | None
             ) -> FilterResult:
    from curate.filtering.executors import ray
    from curate.runs import names

    started = time.perf_counter()
    seconds: Counter[str] = Counter()
    eval_sets = _eval_sets(cfg, seconds)
    side = Path(quarantine_path) if quarantine_path else names.quarantine_path(out)
    quarantine = Quarantine(side) if skip_invalid else None
    report = ray.run(source, paths, cfg, eval_sets, quarantine, seconds, started, address, apply_decisions)
    return FilterResult(report, {k: str(v) for k, v in paths.items()})


def _run(source: str | os.PathLike[str], out: str | os.PathLike[str], paths: dict[str, Path], cfg: FilterConfig,
         skip_invalid: bool, quarantine_path: str | os.PathLike[str] | None, progress: bool) -> FilterResult:
    from curate.filtering.console import progress as progress_bar
    from curate.runs import names

    started = time.perf_counter()
    seconds: Counter[str] = Counter()
    eval_sets = _eval_sets(cfg, seconds)
    side = Path(quarantine_path) if quarantine_path else names.quarantine_path(out)
    quarantine = Quarantine(side) if skip_invalid else None
    with progress_bar(progress, source) as advance:
        chunk_run = run_chunks(source, cfg, eval_sets, quarantine, advance)
    seconds.update(chunk_run.seconds)
    if not chunk_run.slim:
        raise CurateError(f"{source}: no valid records to filter")
    rows, stats = _dedup(cfg, chunk_run, pl.concat(chunk_run.slim), seconds)
    run = {"score_key": chunk_run.score_key, "quarantine": quarantine, "seconds": seconds, "started": started,
           "dedup_stats": stats, "eval_sets": eval_sets}
    report = outputs.write_outputs(source, paths, cfg, run, rows)
    return FilterResult(report, {k: str(v) for k, v in paths.items()})
