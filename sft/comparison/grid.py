"""The grid of `curate compare`: one cell = select a subset, train on it, score it on the frozen eval set.

Layout of ``compare/NAME/``::

    plan.json        settings, eval-set hash, budget rule, pool size (written once; a resume must match it)
    eval.jsonl       the frozen eval set
    cells/<cell>/    train.jsonl (the subset), run/ (the adapter), cell.json (written last, atomically)

A cell is finished exactly when its ``cell.json`` exists: a resumed grid skips it, so a crash
(kill -9 included) loses at most the cell in flight, whose folder is cleaned and redone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.records.jsonl import write_json, write_jsonl
from sft.comparison.plan import CompareConfig, cell_steps, descriptors, ordering

CELL_FILE = "cell.json"


def cell_name(arm: str, size: int, seed: int) -> str:
    return f"{arm}-n{size}-s{seed}"


def planned_cells(config: CompareConfig, pool_size: int) -> list[tuple[str, int, int]]:
    """(arm, size, seed) of every cell, smallest sizes first so early results cover every arm."""
    cells = []
    sizes = [s for s in config.sizes if s <= pool_size]
    if not sizes:
        raise CurateError(f"every --sizes value exceeds the training pool ({pool_size} rows after the eval split)")
    for seed in config.seeds:
        for size in sizes:
            cells.extend((arm, size, seed) for arm in config.arms if arm != "all")
        if "all" in config.arms:
            cells.append(("all", pool_size, seed))
    return cells


def read_cell(folder: Path) -> dict[str, Any] | None:
    path = folder / CELL_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def train_overrides(config: CompareConfig, seed: int, steps: dict[str, Any]) -> dict[str, Any]:
    overrides = json.loads(json.dumps(config.overrides))
    if config.model:
        overrides["model"] = config.model
    overrides["eval_split"] = 0.0  # the grid's eval set is the frozen one, scored after training
    sft = overrides.setdefault("sft", {})
    sft.update(steps)
    sft.update({"seed": seed, "data_seed": seed, "eval_strategy": "no", "save_strategy": "no"})
    return overrides


def run_cell(config: CompareConfig, pool: list[dict[str, Any]], facts: dict[str, Any], arm: str, size: int,
             seed: int, eval_set: Any, say: Callable[[str], None]) -> dict[str, Any]:
    """Train and score one cell; returns (and writes, last) its cell.json."""
    from sft.eval import score_model
    from sft.evaluation.models import load_model
    from sft.train import train

    folder = Path(config.out) / "cells" / cell_name(arm, size, seed)
    if folder.exists():
        shutil.rmtree(folder)  # the cell that was in flight when the last run died
    folder.mkdir(parents=True)
    order = ordering(arm, len(pool), seed, facts["scores"], facts["response_tokens"])
    subset = order[:size]
    info = descriptors(subset, facts["scores"], facts["response_tokens"], facts["record_tokens"], facts["longest"])
    steps = cell_steps(config.budget, facts["sft"], info["train_tokens"] / size, facts["pool_mean_tokens"])
    write_jsonl(folder / "train.jsonl", (pool[i] for i in subset))
    say(f"cell {folder.name}: {size} rows, {steps}")
    result = train(str(folder / "train.jsonl"), str(folder / "run"), config.recipe,
                   train_overrides(config, seed, steps), say=lambda line: None, show_progress=False,
                   overwrite=True)
    shutil.rmtree(folder / "run" / "checkpoints", ignore_errors=True)
    scored = load_model(folder / "run", name=folder.name)
    rows, metrics = score_model(scored, eval_set, _eval_config(config), None)
    cell = {"cell": folder.name, "arm": arm, "size": size, "seed": seed, "budget": config.budget,
            "steps": result.steps, "tokens_seen": result.metrics.get("tokens_seen"), **info,
            "metrics": metrics, "per_example": _per_example(rows)}
    write_json(folder / CELL_FILE, cell)
    return cell


def _eval_config(config: CompareConfig) -> Any:
    from sft.eval import EvalConfig

    return EvalConfig(["-"], "-", config.out, generate=config.generate, max_new_tokens=config.max_new_tokens,
                      batch_size=config.batch_size, resamples=config.resamples)


def _per_example(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-example NLL per token (and exact match when generated): what paired differences are built from."""
    out: dict[str, list[float]] = {"id": [r["id"] for r in rows],
                                   "nll": [r["nll"] / max(r["tokens"], 1) for r in rows]}
    if rows and "em_flexible" in rows[0]:
        out["em_flexible"] = [r["em_flexible"] for r in rows]
    return out


def run_base(config: CompareConfig, facts: dict[str, Any], eval_set: Any, say: Callable[[str], None]) -> dict[str, Any]:
    """The untrained base model on the same eval set: the reference line of every plot."""
    from sft.eval import score_model
    from sft.evaluation.models import load_base_model

    folder = Path(config.out) / "cells" / "base"
    done = read_cell(folder)
    if done is not None:
        return done
    say("base model: scoring the eval set")
    scored = load_base_model(facts["model"])
    rows, metrics = score_model(scored, eval_set, _eval_config(config), None)
    cell = {"cell": "base", "arm": "base", "size": 0, "seed": 0, "budget": config.budget, "steps": 0,
            "metrics": metrics, "per_example": _per_example(rows)}
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / CELL_FILE, cell)
    return cell
