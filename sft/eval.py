"""`curate eval`: is the fine-tuned model better than the base, on a frozen eval set, with confidence intervals?

    curate eval runs/NAME [runs/OTHER ...] --eval EVAL.jsonl [--base] --out eval/NAME [--judge ENGINE]

For each model (every run, and the untrained base with ``--base``):

* completion-only NLL (and perplexity) of the reference answers: assistant tokens of the
  last turn only, rendered with the run's own chat template (:mod:`sft.evaluation.models`);
* generation health of its greedy answers: share ending by themselves, mean tokens, repeated
  4-gram rate; GSM8K exact match (strict ``#### N`` and a last-number fallback) where the
  references carry one (:mod:`sft.evaluation.metrics`);
* with a judge engine, a pairwise win rate against the base (or against the first run), both
  orders, raw and length-controlled (:mod:`sft.evaluation.judge`).

Every metric carries a bootstrap 95% CI over eval examples (:mod:`sft.stats`). Answers are
generated once per model and cached in ``answers.jsonl`` (keyed by the model, the eval
set's hash and the generation settings), so a rerun with another judge only judges.

Outputs in ``--out``: ``eval.json`` (metrics with CIs, eval-set hash, model and template
ids), ``answers.jsonl``, ``examples.jsonl`` (per-example numbers), ``judgments.jsonl``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.records.jsonl import iter_json_rows, write_json, write_jsonl
from curate.runs import names
from curate.runs.commit import output_set
from curate.runs.lock import locks_output
from sft.evaluation.metrics import EvalSet, exact_match, load_eval_set, repeated_ngram_rate
from sft.stats import Estimate, bootstrap_mean, bootstrap_ratio

ANSWERS, EXAMPLES, JUDGMENTS = "answers.jsonl", "examples.jsonl", "judgments.jsonl"
EVAL_JSON = names.EVAL_RESULTS


@dataclass
class EvalConfig:
    """Settings of one `curate eval`; written into eval.json."""

    runs: list[str]
    eval: str
    out: str
    base: bool = False
    generate: bool = True
    max_new_tokens: int = 256
    batch_size: int = 8
    temperature: float = 0.0
    seed: int = 0
    resamples: int = 1000
    judge: str | None = None
    judge_model: str | None = None
    judge_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.runs:
            raise CurateError("give at least one run folder (the base model comes from its config.yaml)")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise CurateError("--max-new-tokens and --batch-size must be at least 1")
        if self.judge and not self.generate:
            raise CurateError("--judge needs answers: drop --no-generate")

    def generation_key(self, eval_sha: str) -> str:
        settings = [eval_sha, self.max_new_tokens, self.temperature, self.seed]
        return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]


def adapter_fingerprint(run_dir: Path) -> str:
    """A short hash of the adapter weights: a retrained run in the same folder is a different model."""
    weights = run_dir / "adapter_model.safetensors"
    if not weights.exists():
        return "none"
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:16]


def estimate_dict(estimate: Estimate) -> dict[str, Any]:
    return estimate.as_dict()


def score_model(scored: Any, eval_set: EvalSet, config: EvalConfig,
                cached: list[dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-example rows and metrics (with CIs) of one loaded model; ``cached`` answers skip generation."""
    from sft.evaluation.models import generate, reference_nll

    examples = eval_set.examples
    nll = reference_nll(scored, [e.messages for e in examples], batch_size=config.batch_size)
    rows = [{"model": scored.name, "id": e.id, "nll": n.nll, "tokens": n.tokens} for e, n in zip(examples, nll,
                                                                                                 strict=True)]
    metrics: dict[str, Any] = {}
    estimate = bootstrap_ratio([n.nll for n in nll], [n.tokens for n in nll], config.resamples, config.seed)
    metrics["nll"] = estimate_dict(estimate)
    metrics["perplexity"] = {"value": math.exp(estimate.value), "lo": math.exp(estimate.lo),
                             "hi": math.exp(estimate.hi), "n": estimate.n}
    if not config.generate:
        return rows, metrics
    answers = cached or generate(scored, [e.prompt for e in examples], config.max_new_tokens, config.batch_size,
                                 config.temperature, config.seed)
    for row, answer, example in zip(rows, answers, examples, strict=True):
        row.update(answer=answer["answer"], answer_tokens=answer["tokens"], ended=answer["ended"],
                   repeat4=repeated_ngram_rate(answer["answer"]))
        match = exact_match(answer["answer"], example.reference)
        if match is not None:
            row["em_strict"], row["em_flexible"] = match
    for key, column in (("ended", "ended"), ("answer_tokens", "answer_tokens"), ("repeat4", "repeat4"),
                        ("exact_match_strict", "em_strict"), ("exact_match_flexible", "em_flexible")):
        values = [float(r[column]) for r in rows if column in r]
        if values:
            metrics[key] = estimate_dict(bootstrap_mean(values, config.resamples, config.seed))
    return rows, metrics


def _read_cache(out: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    cache: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if (out / ANSWERS).exists():
        for _, row in iter_json_rows(out / ANSWERS):
            cache.setdefault((row["model_id"], row["generation_key"]), []).append(row)
    return cache


def _free(scored: Any) -> None:
    del scored
    gc.collect()


def _models(config: EvalConfig) -> list[tuple[str, Path, bool]]:
    """(name, run folder, base_only) for every model to score; names are unique."""
    models, seen = [], set()
    for run in config.runs:
        path = Path(run)
        name = path.name if path.name not in seen else str(path)
        seen.add(name)
        models.append((name, path, False))
    if config.base:
        models.insert(0, ("base", Path(config.runs[0]), True))
    return models


@locks_output("config.out", "curate eval", folder=True)  # writable, one run per folder, before any loading
def evaluate(config: EvalConfig, say: Callable[[str], None] = print, judge_engine: Any = None) -> dict[str, Any]:
    """Score every model, judge the pairs, write the outputs; returns eval.json's content.

    ``judge_engine`` replaces the engine built from ``config.judge`` (a fake in tests, a shared one in compare).
    """
    from sft.evaluation.models import load_model

    out = Path(config.out)
    eval_set = load_eval_set(config.eval)
    key = config.generation_key(eval_set.sha256)
    cache = _read_cache(out)
    all_rows, answers_out, models = [], [], {}
    for name, run_dir, base_only in _models(config):
        say(f"scoring {name} on {len(eval_set.examples)} examples")
        scored = load_model(run_dir, base_only=base_only, name=name)
        scored.model_id += "" if base_only else f"@{adapter_fingerprint(run_dir)}"
        cached = cache.get((scored.model_id, key))
        ids = [e.id for e in eval_set.examples]
        if cached and [r["id"] for r in cached] != ids:
            cached = None
        rows, metrics = score_model(scored, eval_set, config, cached)
        models[name] = {"model_id": scored.model_id, "template_id": scored.template_id, "metrics": metrics}
        all_rows.extend(rows)
        if config.generate:
            answers_out.extend({"model": name, "model_id": scored.model_id, "generation_key": key, "id": r["id"],
                                "answer": r["answer"], "tokens": r["answer_tokens"], "ended": r["ended"]}
                               for r in rows)
        _free(scored)
    judged, judgments = _judge(config, eval_set, all_rows, list(models), say, judge_engine)
    result = {
        "eval_set": eval_set.describe(),
        "settings": {k: v for k, v in asdict(config).items() if k != "judge_options"},
        "models": models,
        "judged": judged,
        "paired_nll": paired_nll(all_rows, list(models), config),
        "results": flat_rows(models),
    }
    result["conclusion"] = headline(result)
    out.mkdir(parents=True, exist_ok=True)
    members = [out / EVAL_JSON, out / EXAMPLES, out / JUDGMENTS] + ([out / ANSWERS] if config.generate else [])
    with output_set(members, command="curate eval") as files:  # one set: all old or all new (curate.runs.commit)
        if config.generate:
            write_jsonl(files.staged(out / ANSWERS), answers_out)
        write_jsonl(files.staged(out / EXAMPLES), all_rows)
        write_jsonl(files.staged(out / JUDGMENTS), judgments)
        write_json(files.staged(out / EVAL_JSON), result)
    return result


def _judge(config: EvalConfig, eval_set: EvalSet, rows: list[dict[str, Any]], names: list[str],
           say: Callable[[str], None], engine: Any = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each run against the base (with --base) or against the first run."""
    if not config.judge and engine is None:
        return [], []
    from generators.engines.factory import make_engine
    from sft.evaluation.judge import Side, judge_pair

    if len(names) < 2:
        raise CurateError("--judge needs two models: add --base or a second run")
    reference = names[0]
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    owned = engine is None
    engine = engine or make_engine(config.judge, config.judge_model, **config.judge_options)
    questions = [e.prompt[-1]["content"] for e in eval_set.examples]
    ids = [e.id for e in eval_set.examples]
    judged, judgments = [], []
    try:
        for name in names[1:]:
            say(f"judging {name} against {reference} ({len(ids)} pairs, both orders)")
            x, y = by_model[name], by_model[reference]
            rows_out, summary = judge_pair(engine, ids, questions,
                                           Side(name, [r["answer"] for r in x], [r["answer_tokens"] for r in x]),
                                           Side(reference, [r["answer"] for r in y], [r["answer_tokens"] for r in y]),
                                           seed=config.seed)
            judged.append(summary)
            judgments.extend(rows_out)
    finally:
        if owned:
            engine.close()
    return judged, judgments


def paired_nll(rows: list[dict[str, Any]], names: list[str], config: EvalConfig) -> list[dict[str, Any]]:
    """Each model minus the first (the base with --base) in per-example NLL per token, paired bootstrap CI.

    Both models score the same references, so the example-to-example spread cancels: this CI is
    the one that says whether the fine-tune moved the NLL, not the overlap of the two marginal CIs.
    """
    from sft.stats import paired_difference

    per_model: dict[str, list[float]] = {}
    for row in rows:
        per_model.setdefault(row["model"], []).append(row["nll"] / max(row["tokens"], 1))
    reference = names[0]
    out = []
    for name in names[1:]:
        est = paired_difference(per_model[name], per_model[reference], config.resamples, config.seed)
        out.append({"x": name, "y": reference, "metric": "nll_per_token (example mean)", **est.as_dict()})
    return out


def headline(result: dict[str, Any]) -> str:
    """One sentence per compared pair, led by the paired NLL CI (what the report prints above the table)."""
    parts = []
    for pair in result.get("paired_nll", []):
        verdict = ("lower (better)" if pair["hi"] < 0 else "higher (worse)" if pair["lo"] > 0
                   else "not different (CI spans 0)")
        parts.append(f"{pair['x']} vs {pair['y']}: reference NLL/token {verdict}, paired difference "
                     f"{pair['value']:+.3f} [{pair['lo']:+.3f}, {pair['hi']:+.3f}].")
    for pair in result.get("judged", []):
        parts.append(f"Judged win rate of {pair['x']} over {pair['y']}: {pair['win_rate']['value']:.2f} "
                     f"(length-controlled {pair['lc_win_rate']['value']:.2f}; judge order-inconsistent on "
                     f"{pair['order_inconsistency']['value']:.0%} of pairs).")
    return " ".join(parts)


def flat_rows(models: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per model (value, lo, hi per metric): what the report's table shows."""
    rows = []
    for name, entry in models.items():
        row: dict[str, Any] = {"model": name}
        for metric, est in entry["metrics"].items():
            row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = est["value"], est["lo"], est["hi"]
        rows.append(row)
    return rows


def _cell(est: dict[str, Any] | None, digits: int = 3) -> str:
    if not est:
        return "-"
    return f"{est['value']:.{digits}f} [{est['lo']:.{digits}f}, {est['hi']:.{digits}f}]"


def table(result: dict[str, Any]) -> str:
    """The one-screen summary printed by the command."""
    columns = (("NLL/token", "nll", 3), ("ppl", "perplexity", 2), ("ended", "ended", 2),
               ("tokens", "answer_tokens", 1), ("rep-4gram", "repeat4", 3),
               ("EM strict", "exact_match_strict", 2), ("EM last-num", "exact_match_flexible", 2))
    present = [c for c in columns if any(c[1] in m["metrics"] for m in result["models"].values())]
    lines = [f"eval set {result['eval_set']['path']}: {result['eval_set']['examples']} examples, "
             f"sha256 {result['eval_set']['sha256'][:12]}; 95% bootstrap CIs"]
    header = ["model"] + [title for title, _, _ in present]
    body = [[name] + [_cell(m["metrics"].get(key), d) for _, key, d in present]
            for name, m in result["models"].items()]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    for row in [header] + body:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    for pair in result.get("paired_nll", []):
        lines.append(f"NLL/token {pair['x']} - {pair['y']} (paired, per-example mean): "
                     f"{pair['value']:+.3f} [{pair['lo']:+.3f}, {pair['hi']:+.3f}]")
    for pair in result["judged"]:
        lines.append(f"judged {pair['x']} vs {pair['y']}: win rate {_cell(pair['win_rate'], 2)}, "
                     f"length-controlled {_cell(pair['lc_win_rate'], 2)}, mean tokens {pair['x_mean_tokens']:.0f} vs "
                     f"{pair['y_mean_tokens']:.0f}, order-inconsistent {pair['order_inconsistency']['value']:.0%}")
    return "\n".join(lines)
