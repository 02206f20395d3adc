"""`curate compare`: does the curated subset train a better model than a random one of the same size? (LIMA)

    curate compare POOL.jsonl --by SCORE --sizes 128,256,512 --out compare/NAME \\
        [--eval EVAL.jsonl] [--arms quality,random,longest,all,bottom] [--seeds 1,2,3] \\
        [--budget fixed-steps|fixed-tokens|fixed-epochs] [--config RECIPE] [--max-steps N] [--set K=V]

A grid of select + train + eval (:mod:`sft.comparison.grid`) over arms x sizes x seeds, on a
frozen, pool-deduplicated eval set (:mod:`sft.comparison.plan`), plus the untrained base
model as a reference line. Finished cells are never trained again. The summary
(:mod:`sft.comparison.summary`) writes results.json, results.csv, nll_vs_size.png,
nll_vs_length.png and report.md with a one-sentence conclusion that says whether the paired
CIs support it.

CPU tier: the default (2 arms x 3 sizes x 1 seed, the bundled model, the ``demo`` recipe).
GPU tier: the same code with ``--config compare-gpu`` (sft/recipes/compare-gpu.yaml).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.records.jsonl import atomic_writer, read_records, write_json, write_jsonl
from curate.runs import names
from curate.runs.commit import commit_files
from sft.comparison import summary
from sft.comparison.grid import cell_name, planned_cells, read_cell, run_base, run_cell
from sft.comparison.plan import CompareConfig, first_user, held_out, near_duplicates_of_pool, score_of
from sft.evaluation.metrics import EvalSet, eval_examples, records_hash

PLAN, EVAL_FILE = "plan.json", "eval.jsonl"
RESULTS = names.COMPARE_RESULTS


def _freeze_eval(config: CompareConfig, pool: list[dict[str, Any]], scores: list[float] | None,
                 say: Callable[[str], None]) -> tuple[list[dict[str, Any]], list[int], dict[str, Any]]:
    """(eval records, pool indexes left to train on, description); see plan.py's docstring."""
    if config.eval:
        eval_records, source = list(read_records(config.eval, check_id=False)), config.eval
        train_idx = list(range(len(pool)))
    else:
        chosen = set(held_out(pool, scores, config.eval_size, seed=0))
        eval_records = [pool[i] for i in sorted(chosen)]
        train_idx = [i for i in range(len(pool)) if i not in chosen]
        source = f"held-out slice of the pool, stratified by {config.by or 'nothing (random)'}"
    dupes = set(near_duplicates_of_pool([first_user(r) for r in eval_records],
                                        [first_user(pool[i]) for i in train_idx], config.dedup_threshold))
    if dupes:
        say(f"eval set: dropping {len(dupes)} examples whose prompt nearly repeats a pool prompt")
    eval_records = [r for i, r in enumerate(eval_records) if i not in dupes]
    if not eval_records:
        raise CurateError("the eval set is empty after removing near-duplicates of the pool")
    return eval_records, train_idx, {"source": source, "dropped_near_duplicates": len(dupes),
                                     "dedup": f"MinHash on the user prompt, Jaccard >= {config.dedup_threshold}"}


def _facts(config: CompareConfig, pool: list[dict[str, Any]], scores: list[float] | None) -> dict[str, Any]:
    """Token counts (base model tokenizer), orderings inputs and the resolved recipe."""
    from sft import config as recipes
    from sft import modeling
    from sft.comparison.plan import ordering

    overrides = dict(config.overrides)
    if config.model:
        overrides["model"] = config.model
    resolved = recipes.build_config(config.recipe, overrides)
    tokenizer = modeling.load_tokenizer(modeling.resolve_base(resolved["model"]))
    responses = [r["messages"][-1]["content"] for r in pool]
    whole = ["\n".join(m["content"] for m in r["messages"]) for r in pool]
    response_tokens = [len(ids) for ids in tokenizer(responses, add_special_tokens=False)["input_ids"]]
    record_tokens = [len(ids) for ids in tokenizer(whole, add_special_tokens=False)["input_ids"]]
    longest = ordering("longest", len(pool), 0, scores, response_tokens)
    return {"scores": scores, "response_tokens": response_tokens, "record_tokens": record_tokens,
            "longest": longest, "sft": resolved["sft"], "model": resolved["model"],
            "pool_mean_tokens": sum(record_tokens) / max(len(pool), 1)}


def _load_or_write_plan(config: CompareConfig, pool_sha: str, pool: list[dict[str, Any]],
                        scores: list[float] | None, say: Callable[[str], None]) -> tuple[dict[str, Any], list]:
    out = Path(config.out)
    if (out / PLAN).exists():
        plan = json.loads((out / PLAN).read_text())
        for key, mine in (("pool_sha256", pool_sha), ("budget", config.budget), ("by", config.by)):
            if plan[key] != mine:
                raise CurateError(f"{out}: holds a grid with another {key} ({plan[key]!r}, now {mine!r}); "
                                  "use another --out")
        eval_records = list(read_records(out / EVAL_FILE, check_id=False))
        if records_hash(eval_records) != plan["eval_set"]["sha256"]:
            raise CurateError(f"{out / EVAL_FILE}: changed since the grid started (hash mismatch)")
        say(f"resuming the grid in {out}")
        return plan, eval_records
    eval_records, train_idx, described = _freeze_eval(config, pool, scores, say)
    plan = {"settings": asdict(config), "pool_sha256": pool_sha, "budget": config.budget, "by": config.by,
            "train_index": train_idx,
            "eval_set": {"examples": len(eval_records), "sha256": records_hash(eval_records), **described}}
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / EVAL_FILE, eval_records)
    write_json(out / PLAN, plan)
    return plan, eval_records


def run_compare(config: CompareConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the grid and write the summary; returns results.json's content."""
    from curate.runs.lock import guard_output

    out = Path(config.out)
    with guard_output(out, "curate compare", folder=True):  # writable, one run per folder
        records = list(read_records(config.pool))
        all_scores = [score_of(r, config.by, i + 1) for i, r in enumerate(records)] if config.by else None
        plan, eval_records = _load_or_write_plan(config, records_hash(records), records, all_scores, say)
        pool = [records[i] for i in plan["train_index"]]
        scores = [all_scores[i] for i in plan["train_index"]] if all_scores else None
        facts = _facts(config, pool, scores)
        eval_set = EvalSet(str(out / EVAL_FILE), plan["eval_set"]["sha256"],
                           eval_examples(eval_records, str(out / EVAL_FILE)))
        base = run_base(config, facts, eval_set, say)
        cells = []
        planned = planned_cells(config, len(pool))
        for number, (arm, size, seed) in enumerate(planned, start=1):
            done = read_cell(out / "cells" / cell_name(arm, size, seed))
            if done is not None:
                say(f"[{number}/{len(planned)}] {done['cell']}: done before, skipped")
            else:
                say(f"[{number}/{len(planned)}] training {cell_name(arm, size, seed)}")
                done = run_cell(config, pool, facts, arm, size, seed, eval_set, say)
            say(f"    NLL {done['metrics']['nll']['value']:.4f} "
                f"[{done['metrics']['nll']['lo']:.4f}, {done['metrics']['nll']['hi']:.4f}]")
            cells.append(done)
        return _summarize(config, plan, base, cells)


def _summarize(config: CompareConfig, plan: dict[str, Any], base: dict[str, Any],
               cells: list[dict[str, Any]]) -> dict[str, Any]:
    out = Path(config.out)
    paired = summary.paired_vs_random(cells, config.resamples)
    rows = summary.rows_with_differences([base] + cells, paired)
    staging = Path(tempfile.mkdtemp(prefix=".summary.", dir=out))  # results, csv, report, plots: one set
    try:
        return _write_summary(config, plan, base, cells, paired, rows, out, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_summary(config: CompareConfig, plan: dict[str, Any], base: dict[str, Any], cells: list[dict[str, Any]],
                   paired: Any, rows: Any, out: Path, staging: Path) -> dict[str, Any]:
    images = summary.plot(cells, base, staging)
    results = {
        "out": str(out), "conclusion": summary.conclusion(paired, config.arms, config.budget),
        "metric": "held-out NLL per reference token (completion-only; lower is better)",
        "budget": config.budget, "arms": config.arms, "sizes": config.sizes, "seeds": config.seeds, "by": config.by,
        "eval_set": plan["eval_set"], "pool_sha256": plan["pool_sha256"], "train_pool": len(plan["train_index"]),
        "base": {"model": base.get("cell"), "nll": base["metrics"]["nll"]},
        "paired": paired, "results": rows, "plots": [p.name for p in images],
    }
    summary.write_csv(rows, staging / "results.csv")
    with atomic_writer(staging / "report.md") as handle:
        handle.write(summary.report_markdown(results))
    write_json(staging / RESULTS, results)
    commit_files(staging, out, "curate compare", primary=RESULTS)  # all old or all new (curate.runs.commit)
    return results
