"""`curate select`: choose rows by a score (top-N, fraction, thresholds), with a diversity gate, or at random.

    chosen, unselected, report = select_rows(records, SelectConfig(by="ifd", top_fraction=0.1, diversity=0.7))

Pure functions over a list of records; every row ends in ``chosen`` or in ``unselected`` with
``reject: {stage: "select", reason, detail}``. Reasons, in the order they are applied:

* ``no_score``: the row has no ``scores.<by>``;
* ``below_min`` / ``above_max``: outside ``--min`` / ``--max``;
* ``too_similar``: the diversity gate (detail: the chosen row it resembles and the similarity);
* ``not_in_top``: ranked below the ``--top`` / ``--top-fraction`` cut;
* ``not_sampled``: not drawn by ``--random N --seed S``.

Ranking is by score, highest first (``--ascending``: lowest first), ties broken by id and then by
input position, so the same input always gives the same subset. The diversity gate is Deita's
greedy rule: walk the ranking and take a row only if its similarity to *every* row already
taken is below ``D``. Similarity is MinHash Jaccard over word shingles of prompt and response
(``curate filter``'s own signatures), or the cosine of mean-pooled hidden states of a small
local LM (``--similarity embedding``); bench/RESULTS.md compares the two. Chosen rows keep
their input order.

``select_report.json`` answers the confound every selection paper must answer: the subset's
size, mean score, mean response length, and its overlap with the longest-N subset of the same
size (response tokens from ``scores.length`` when every row has it, else words).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from curate.errors import CurateError

SIMILARITIES = ("minhash", "embedding")


@dataclass
class SelectConfig:
    """How rows are chosen; written resolved to select_config.yaml."""

    by: str | None = field(default=None, metadata={"help": "the scores field to rank by"})
    top: int | None = field(default=None, metadata={"help": "keep the N best rows"})
    top_fraction: float | None = field(default=None, metadata={"help": "keep this fraction of the input (0-1]"})
    min: float | None = field(default=None, metadata={"help": "drop rows scoring below this"})
    max: float | None = field(default=None, metadata={"help": "drop rows scoring above this"})
    ascending: bool = field(default=False, metadata={"help": "lowest scores are best (e.g. perplexity)"})
    diversity: float | None = field(default=None, metadata={
        "help": "take a row only if its similarity to every chosen row is below this (0-1)"})
    similarity: str = field(default="minhash", metadata={"help": "minhash | embedding"})
    ngram: int = field(default=5, metadata={"help": "minhash: shingle size in words"})
    num_perm: int = field(default=128, metadata={"help": "minhash: signature length (power of two)"})
    embed_model: str = field(default="bundled", metadata={"help": "embedding: a causal LM (bundled, folder, hub id)"})
    random: int | None = field(default=None, metadata={"help": "draw N rows uniformly at random instead"})
    seed: int = field(default=0, metadata={"help": "seed for --random"})

    def __post_init__(self) -> None:
        if self.random is not None:
            for name in ("by", "top", "top_fraction", "min", "max", "diversity"):
                if getattr(self, name) is not None:
                    raise CurateError(f"--{name.replace('_', '-')} does not apply with --random (a random subset "
                                      "ignores scores)")
            if self.random < 0:
                raise CurateError(f"--random must be at least 0, got {self.random}")
            return
        if not self.by:
            raise CurateError("--by SCORE is needed (or --random N for a random subset)")
        if self.top is not None and self.top_fraction is not None:
            raise CurateError("give --top or --top-fraction, not both")
        if self.top is not None and self.top < 0:
            raise CurateError(f"--top must be at least 0, got {self.top}")
        if self.top_fraction is not None and not 0.0 < self.top_fraction <= 1.0:
            raise CurateError(f"--top-fraction must be in (0, 1], got {self.top_fraction}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise CurateError(f"--min {self.min} is above --max {self.max}")
        if self.diversity is not None and not 0.0 < self.diversity <= 1.0:
            raise CurateError(f"--diversity must be in (0, 1], got {self.diversity}")
        if self.similarity not in SIMILARITIES:
            raise CurateError(f"--similarity must be one of {', '.join(SIMILARITIES)}, got {self.similarity!r}")


def _score(record: Mapping[str, Any], name: str) -> float | None:
    value = (record.get("scores") or {}).get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _reject(record: Mapping[str, Any], reason: str, detail: Any = None) -> dict[str, Any]:
    return {**record, "reject": {"stage": "select", "reason": reason, "detail": detail}}


def row_text(record: Mapping[str, Any]) -> str:
    """What similarity compares: every turn's content, in order."""
    return "\n\n".join(m["content"] for m in record["messages"])


def minhash_signatures(texts: Sequence[str], ngram: int = 5, num_perm: int = 128, seed: int = 1) -> Any:
    """MinHash signatures (rows x num_perm, uint32) of ``texts``, computed by `curate filter`'s dedup code."""
    import polars as pl

    from curate.filtering.dedup.config import DedupConfig
    from curate.filtering.dedup.minhash import signatures
    from curate.filtering.dedup.shingles import shingles

    cfg = DedupConfig(ngram=ngram, num_perm=num_perm, seed=seed)
    frame = pl.DataFrame({"row": list(range(len(texts))), "text": list(texts)}, schema={"row": pl.Int64, "text": pl.Utf8})
    return signatures(cfg, shingles(cfg, frame), len(texts))


def lm_embeddings(texts: Sequence[str], model_name: str = "bundled", batch_size: int = 16,
                  max_tokens: int = 512) -> Any:
    """Unit-length mean-pooled last hidden states of a causal LM (rows x hidden), for cosine similarity."""
    import numpy as np
    import torch

    if model_name == "bundled":
        from curate.records.model import load_bundled_hf

        model, tokenizer = load_bundled_hf()
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer, model = AutoTokenizer.from_pretrained(model_name), AutoModelForCausalLM.from_pretrained(model_name)
    model.eval()
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[start:start + batch_size]), return_tensors="pt", padding=True, truncation=True,
                        max_length=max_tokens)
        with torch.inference_mode():
            hidden = model.get_decoder()(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


class Gate:
    """Greedy diversity gate: ``admit(i)`` takes row i if its similarity to every admitted row is below D."""

    def __init__(self, features: Any, kind: str, threshold: float):
        import numpy as np

        self.features, self.kind, self.threshold = features, kind, threshold
        self.taken = np.empty((len(features),) + features.shape[1:], features.dtype)
        self.members: list[int] = []

    def nearest(self, i: int) -> tuple[int | None, float]:
        if not self.members:
            return None, 0.0
        k = len(self.members)
        if self.kind == "minhash":
            sims = (self.taken[:k] == self.features[i]).mean(axis=1)
        else:
            sims = self.taken[:k] @ self.features[i]
        best = int(sims.argmax())
        return self.members[best], float(sims[best])

    def admit(self, i: int) -> tuple[bool, int | None, float]:
        j, sim = self.nearest(i)
        if j is not None and sim >= self.threshold:
            return False, j, sim
        self.taken[len(self.members)] = self.features[i]
        self.members.append(i)
        return True, j, sim


def _features(records: Sequence[Mapping[str, Any]], cfg: SelectConfig) -> Any:
    texts = [row_text(r) for r in records]
    if cfg.similarity == "minhash":
        return minhash_signatures(texts, cfg.ngram, cfg.num_perm)
    return lm_embeddings(texts, cfg.embed_model)


def rank(records: Sequence[Mapping[str, Any]], indices: Sequence[int], by: str, ascending: bool) -> list[int]:
    """``indices`` best first; ties by id, then by input position."""
    sign = 1.0 if ascending else -1.0
    return sorted(indices, key=lambda i: (sign * _score(records[i], by), str(records[i].get("id", "")), i))


def target_size(cfg: SelectConfig, n_rows: int) -> int | None:
    if cfg.top is not None:
        return cfg.top
    if cfg.top_fraction is not None:
        return int(math.floor(cfg.top_fraction * n_rows + 0.5))
    return None


def choose(records: Sequence[Mapping[str, Any]], cfg: SelectConfig,
           features: Any = None) -> tuple[list[int], dict[int, tuple[str, Any]]]:
    """Chosen row indices (rank order) and ``{index: (reason, detail)}`` for every other row."""
    if cfg.random is not None:
        import numpy as np

        order = np.random.default_rng(cfg.seed).permutation(len(records))
        picked = [int(i) for i in order[: cfg.random]]
        others = {int(i): ("not_sampled", {"seed": cfg.seed}) for i in order[cfg.random:]}
        return picked, others
    rejected: dict[int, tuple[str, Any]] = {}
    eligible = []
    for i, record in enumerate(records):
        value = _score(record, cfg.by)  # type: ignore[arg-type]
        if value is None:
            rejected[i] = ("no_score", {"by": cfg.by})
        elif cfg.min is not None and value < cfg.min:
            rejected[i] = ("below_min", {"score": value, "min": cfg.min})
        elif cfg.max is not None and value > cfg.max:
            rejected[i] = ("above_max", {"score": value, "max": cfg.max})
        else:
            eligible.append(i)
    ranked = rank(records, eligible, cfg.by, cfg.ascending)  # type: ignore[arg-type]
    target = target_size(cfg, len(records))
    gate = None
    if cfg.diversity is not None:
        gate = Gate(features if features is not None else _features(records, cfg), cfg.similarity, cfg.diversity)
    chosen: list[int] = []
    for position, i in enumerate(ranked):
        if target is not None and len(chosen) >= target:
            rejected[i] = ("not_in_top", {"rank": position + 1, "top": target})
            continue
        if gate is not None:
            admitted, j, sim = gate.admit(i)
            if not admitted:
                rejected[i] = ("too_similar", {"similar_to": records[j]["id"], "similarity": round(sim, 4),
                                               "threshold": cfg.diversity})
                continue
        chosen.append(i)
    return chosen, rejected


def response_length(record: Mapping[str, Any], use_tokens: bool) -> float:
    if use_tokens:
        return float(record["scores"]["length"])
    return float(sum(len(m["content"].split()) for m in record["messages"] if m["role"] == "assistant"))


def selection_report(records: Sequence[Mapping[str, Any]], chosen: Sequence[int],
                     rejected: Mapping[int, tuple[str, Any]], cfg: SelectConfig) -> dict[str, Any]:
    """Size, mean score, mean response length, reasons, and the overlap with the longest-N subset."""
    use_tokens = bool(records) and all(_score(r, "length") is not None for r in records)
    unit = "tokens (scores.length)" if use_tokens else "words"
    lengths = [response_length(r, use_tokens) for r in records]

    def stats(indices: Sequence[int]) -> dict[str, Any]:
        values = [v for v in (_score(records[i], cfg.by) for i in indices) if v is not None] if cfg.by else []
        return {"rows": len(indices),
                "mean_score": sum(values) / len(values) if values else None,
                "mean_response_length": sum(lengths[i] for i in indices) / len(indices) if indices else None}

    n = len(chosen)
    longest = sorted(range(len(records)), key=lambda i: (-lengths[i], str(records[i].get("id", "")), i))[:n]
    overlap = len(set(longest) & set(chosen))
    return {
        "stage": "select", "in": len(records), "chosen": n, "unselected": len(rejected), "by": cfg.by,
        "response_length_unit": unit, "subset": stats(chosen), "pool": stats(range(len(records))),
        "unselected_by_reason": dict(Counter(reason for reason, _ in rejected.values()).most_common()),
        "overlap_with_longest": {"rows": overlap, "fraction": overlap / n if n else None,
                                 "expected_at_random": n / len(records) if records else None,
                                 "longest_by": unit},
    }


def select_rows(records: Sequence[Mapping[str, Any]], cfg: SelectConfig, features: Any = None
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Chosen rows (input order), unselected rows (input order, with ``reject``) and the report."""
    chosen, rejected = choose(records, cfg, features)
    if len(chosen) + len(rejected) != len(records):
        raise AssertionError("select lost rows")  # every row is chosen or rejected exactly once
    keep = set(chosen)
    chosen_rows = [dict(records[i]) for i in range(len(records)) if i in keep]
    unselected = [_reject(records[i], *rejected[i]) for i in range(len(records)) if i not in keep]
    return chosen_rows, unselected, selection_report(records, chosen, rejected, cfg)


UNSELECTED = "unselected.jsonl"
SELECT_CONFIG = "select_config.yaml"
PLAIN_STEM = "chosen"


def select_paths(out: Any) -> dict[str, Any]:
    from pathlib import Path

    from curate.runs.names import SELECT_REPORT, sibling

    out = Path(out)
    return {"chosen": out, "unselected": sibling(out, UNSELECTED, PLAIN_STEM),
            "report": sibling(out, SELECT_REPORT, PLAIN_STEM), "config": sibling(out, SELECT_CONFIG, PLAIN_STEM)}


def run_select(source: Any, out: Any, cfg: SelectConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``source``, select, and commit chosen / unselected / report / config as one set."""
    import json
    from pathlib import Path

    import yaml

    from curate.config import as_dict
    from curate.records.jsonl import dumps, read_records
    from curate.runs.commit import output_set
    from curate.runs.lock import check_writable, output_lock

    paths = select_paths(out)
    if Path(source).resolve() == paths["chosen"].resolve():
        raise CurateError(f"--out {out}: is the input file; write the chosen rows somewhere else")
    check_writable(paths["chosen"])
    with output_lock(paths["chosen"], "curate select"):
        records = list(read_records(source))
        if cfg.by and not any(_score(r, cfg.by) is not None for r in records):
            found = sorted({k for r in records for k in (r.get("scores") or {})})
            raise CurateError(f"--by {cfg.by}: no row of {source} has scores.{cfg.by} "
                              f"(scores found: {', '.join(found) or 'none'}; run `curate score` first)")
        chosen, unselected, report = select_rows(records, cfg)
        report = {**report, "source": str(source), "out": str(out), "config": as_dict(cfg)}
        with output_set(list(paths.values()), command="curate select") as files:
            for key, rows in (("chosen", chosen), ("unselected", unselected)):
                with files.open(paths[key]) as handle:
                    for row in rows:
                        handle.write(dumps(row) + "\n")
            with files.open(paths["report"]) as handle:
                json.dump(report, handle, ensure_ascii=False, indent=2)
                handle.write("\n")
            with files.open(paths["config"]) as handle:
                handle.write(yaml.safe_dump(as_dict(cfg), sort_keys=False, allow_unicode=True))
    return report, paths
