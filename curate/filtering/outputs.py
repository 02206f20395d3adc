"""The four outputs of `curate filter`: curated rows, rejected rows, the report and the resolved config.

Kept rows are passed through byte for byte (the input is streamed a second time), except
rows the filter changed (a trailing special token stripped, PII masked): those are parsed,
changed and written with their new id. A rejected row gets a ``reject`` object spliced in
(``{stage, reason, detail}`` plus ``dup_of``/``cluster_id`` for duplicates, ``eval_id`` for
contamination). The four files are one output set (:mod:`curate.runs.commit`): staged, then
committed together, so a reader sees all old or all new.
The report's counts come from the decisions frame itself, so ``in == kept + rejected``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl

from curate.errors import CurateError
from curate.filtering import hazards, rules
from curate.filtering.dedup.config import s_curve
from curate.filtering.settings import FilterConfig
from curate.records.jsonl import Quarantine, dumps, is_json_array, iter_json_rows, open_binary
from curate.runs import names
from curate.runs.commit import output_set

STAGES = ("filter", "decontaminate", "exact_dedup", "near_dedup")


def output_paths(out: str | os.PathLike[str]) -> dict[str, Path]:
    """curated.jsonl -> rejected.jsonl, filter_report.json, filter_config.yaml beside it (the one stem rule)."""
    return names.filter_paths(out).as_dict()


def source_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes | None, Any]]:
    """(line_no, raw line bytes or None, parsed value or None) for every row, cheaply (nothing decoded)."""
    if is_json_array(path):
        for line_no, value in iter_json_rows(path):
            yield line_no, None, value
        return
    with open_binary(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            text = raw.strip()
            if text:
                yield line_no, text, None


def _reject_json(rejected: pl.DataFrame) -> list[str]:
    base = ["stage", "reason", "detail"]
    expr = (
        pl.when(pl.col("stage").is_in(["exact_dedup", "near_dedup"]))
        .then(pl.struct(*base, "dup_of", "cluster_id").struct.json_encode())
        .when(pl.col("stage") == "decontaminate")
        .then(pl.struct(*base, "eval_id").struct.json_encode())
        .otherwise(pl.struct(*base).struct.json_encode())
    )
    return rejected.select(expr.alias("j"))["j"].to_list()


def _changed(raw: bytes | None, value: Any, cfg: FilterConfig) -> str:
    row = json.loads(raw) if raw is not None else value
    return dumps(hazards.rewrite_record(row, strip=cfg.strip_special_tokens, mask=cfg.pii == "mask",
                                        extra=tuple(cfg.thresholds["extra_special_tokens"])))


def _near_pairs(rows: pl.DataFrame) -> pl.DataFrame:
    """(line, rep_line, cluster_id, id, dup_of) of each near-duplicate whose representative is in this input."""
    near = rows.filter(pl.col("stage") == "near_dedup").select("line", "id", "dup_of", "cluster_id")
    return near.join(rows.select(pl.col("id").alias("dup_of"), pl.col("line").alias("rep_line")).unique("dup_of"),
                     on="dup_of", how="inner").sort("line")  # a join has no fixed order; the examples must not vary


def _response(raw: bytes | None, value: Any) -> str:
    row = json.loads(raw) if raw is not None else value
    return "\n\n".join(m.get("content", "") for m in row.get("messages", []) if m.get("role") == "assistant")


def cluster_sanity(pairs: pl.DataFrame, responses: dict[int, str], examples: int = 5) -> dict[str, Any]:
    """Flag near-dup clusters whose members' responses disagree (share under half their words with the kept one)."""
    import re

    def words(text: str) -> set[str]:
        return set(re.findall(r"\w+", text.lower()))

    flagged: dict[str, list[dict[str, Any]]] = {}
    for line, rep_line, cluster, member_id, rep_id in pairs.select(
            "line", "rep_line", "cluster_id", "id", "dup_of").iter_rows():
        a, b = words(responses.get(line, "")), words(responses.get(rep_line, ""))
        overlap = len(a & b) / max(1, len(a | b))
        if overlap < 0.5:
            flagged.setdefault(cluster, []).append({
                "cluster_id": cluster, "kept_id": rep_id, "dropped_id": member_id, "word_overlap": round(overlap, 3),
                "kept_response": responses.get(rep_line, "")[:200], "dropped_response": responses.get(line, "")[:200]})
    biggest = sorted(flagged.values(), key=len, reverse=True)
    return {"clusters_checked": int(pairs["cluster_id"].n_unique()), "flagged_clusters": len(flagged),
            "flagged_rows": sum(len(v) for v in flagged.values()),
            "rule": "a dropped row whose response shares under half its words with the kept row's response",
            "examples": [members[0] for members in biggest[:examples]]}


def _write_rows(source: str | os.PathLike[str], rows: pl.DataFrame, cfg: FilterConfig, curated: IO[str],
                rejected_out: IO[str], responses: dict[int, str]) -> int:
    """Stream the input again: kept lines to ``curated``, rejected ones (with ``reject``) to ``rejected_out``.

    The responses of the lines already keyed in ``responses`` are filled in on the way (cluster sanity).
    """
    lines = rows["line"].to_numpy()
    valid = np.zeros(int(lines.max()) + 2, bool)
    valid[lines] = True
    changed = np.zeros_like(valid)
    changed[rows.filter(pl.col("stripped") | pl.col("pii_masked"))["line"].to_numpy()] = True
    rejected = rows.filter(pl.col("reason").is_not_null()).sort("line")
    reject_lines = rejected["line"].to_list() + [-1]
    reject_texts = _reject_json(rejected)
    at = kept = 0
    for line_no, raw, value in source_rows(source):
        if line_no >= len(valid) or not valid[line_no]:
            continue  # quarantined (maybe not even UTF-8): never decoded here
        if line_no in responses:
            responses[line_no] = _response(raw, value)
        if reject_lines[at] != line_no:
            if changed[line_no]:
                curated.write(_changed(raw, value, cfg) + "\n")
            else:
                curated.write((raw.decode("utf-8") if raw is not None else dumps(value)) + "\n")
            kept += 1
            continue
        reject = reject_texts[at]
        at += 1
        text = raw.decode("utf-8") if raw is not None else None
        if text is not None and '"reject"' not in text and text.endswith("}"):
            # splice the reject object in: the row stays byte-identical, and no parse is needed
            rejected_out.write(f'{text[:-1]},"reject":{reject}}}\n')
            continue
        row = json.loads(text) if text is not None else value
        row["reject"] = json.loads(reject)
        rejected_out.write(dumps(row) + "\n")
    return kept


def _write_config(cfg: FilterConfig, score_key: str | None, out: IO[str]) -> None:
    import yaml

    resolved = cfg.as_dict()
    if resolved["dedup"] is not None:
        resolved["dedup"]["score_key"] = resolved["dedup"]["score_key"] or score_key
    out.write("# resolved `curate filter` settings; rerun with --config this file\n")
    yaml.safe_dump(resolved, out, sort_keys=False, allow_unicode=True)
    out.write("\n# filter and threshold documentation\n")
    docs = rules.describe()
    out.write("".join(f"#   {name}: {doc}\n" for name, doc in docs["filters"].items()))
    out.write("".join(f"#   threshold {name}: {d['doc']}\n" for name, d in docs["thresholds"].items()))


def write_outputs(source: str | os.PathLike[str], paths: dict[str, Path], cfg: FilterConfig, run: dict[str, Any],
                  rows: pl.DataFrame) -> dict[str, Any]:
    """Write the four outputs; ``run`` holds score_key, quarantine, seconds, started, dedup_stats, eval_sets,
    cluster_checks. Returns the report."""
    members = [paths["curated"], paths["rejected"], paths["report"], paths["config"]]
    with output_set(members, "curate filter") as out, contextlib.ExitStack() as stack:
        curated = stack.enter_context(out.open(paths["curated"]))
        rejected_out = stack.enter_context(out.open(paths["rejected"]))
        report_out = stack.enter_context(out.open(paths["report"]))
        config_out = stack.enter_context(out.open(paths["config"]))
        start = time.perf_counter()
        pairs = _near_pairs(rows) if cfg.dedup is not None else pl.DataFrame()
        responses = dict.fromkeys([*pairs["line"].to_list(), *pairs["rep_line"].to_list()], "") if pairs.height else {}
        kept = _write_rows(source, rows, cfg, curated, rejected_out, responses)
        if pairs.height:
            run["cluster_checks"] = cluster_sanity(pairs, responses)
        run["seconds"]["write"] += time.perf_counter() - start
        report = build_report(source, paths, cfg, rows, kept, run)
        if report["in"] != report["kept"] + report["rejected"]:
            raise CurateError(f"internal error: {report['in']} rows in but {report['kept']} kept + "
                              f"{report['rejected']} rejected; no output written")
        json.dump(report, report_out, ensure_ascii=False, indent=2)
        report_out.write("\n")
        _write_config(cfg, run.get("score_key"), config_out)
    return report


def _stage_table(cfg: FilterConfig, by_reason: pl.DataFrame, n_in: int, seconds: dict[str, float]) -> list[dict]:
    stages, remaining = [], n_in
    active = {"filter": bool(cfg.filters), "decontaminate": bool(cfg.decontaminate),
              "exact_dedup": cfg.exact_dedup, "near_dedup": cfg.dedup is not None}
    for stage in STAGES:
        dropped = int(by_reason.filter(pl.col("stage") == stage)["len"].sum()) if by_reason.height else 0
        stages.append({"stage": stage, "active": active[stage], "in": remaining, "dropped": dropped,
                       "out": remaining - dropped, "seconds": round(seconds.get(stage, 0.0), 3)})
        remaining -= dropped
    return stages


def _dedup_section(cfg: FilterConfig, run: dict[str, Any]) -> dict[str, Any]:
    if cfg.dedup is None:
        return {"exact_dedup": run["dedup_stats"]} if cfg.exact_dedup else {}
    d = cfg.dedup
    section = {
        "threshold": d.threshold, "ngram": d.ngram, "num_perm": d.num_perm, "bands": d.bands, "rows": d.rows,
        "engine": d.engine, "verify": d.verify, "clustering": d.clustering, "keep": d.keep, "dedup_on": d.dedup_on,
        "s_curve": s_curve(d.bands, d.rows), **run["dedup_stats"],
    }
    if d.dedup_on == "pair":
        section["response_threshold"] = d.response_threshold or d.threshold
    if run.get("cluster_checks") is not None:
        section["cluster_sanity"] = run["cluster_checks"]
    return {"near_dedup": section}


def build_report(source: str | os.PathLike[str], paths: dict[str, Path], cfg: FilterConfig, rows: pl.DataFrame,
                 kept: int, run: dict[str, Any]) -> dict[str, Any]:
    """Counts from the decisions frame itself (group_by reason), so the report cannot disagree with the data."""
    by_reason = rows.filter(pl.col("reason").is_not_null()).group_by("stage", "reason").len().sort(
        "len", descending=True)
    n_in = rows.height
    quarantine: Quarantine | None = run["quarantine"]
    seconds = run["seconds"]
    stages = _stage_table(cfg, by_reason, n_in, seconds)
    report: dict[str, Any] = {
        "input": str(source),
        "outputs": {k: str(v) for k, v in paths.items()},
        "invalid": quarantine.count if quarantine else 0,
        "quarantine": str(quarantine.path) if quarantine and quarantine.count else None,
        "in": n_in,
        "kept": kept,
        "rejected": int(by_reason["len"].sum()) if by_reason.height else 0,
        "reconciles": None,
        "rejected_by_reason": {r: int(n) for r, n in zip(by_reason["reason"], by_reason["len"], strict=True)},
        "rejected_by_stage": {s["stage"]: s["dropped"] for s in stages},
        "stages": stages,
        "seconds": {"total": round(time.perf_counter() - run["started"], 3), "read": round(seconds["read"], 3),
                    "write": round(seconds["write"], 3)},
        "preset": cfg.preset,
        "changed": {"special_token_stripped": int(rows["stripped"].sum()),
                    "pii_masked": int(rows["pii_masked"].sum())},
    }
    report["reconciles"] = n_in == kept + report["rejected"]
    if cfg.pii is not None:
        kinds = rows.select(pl.col("pii").str.split(",").explode().drop_nulls().value_counts(sort=True))
        report["pii"] = {"action": cfg.pii, "rows": int(rows["pii"].is_not_null().sum()),
                         "rows_by_kind": {r["pii"]: int(r["count"]) for r in kinds.unnest("pii").to_dicts()}}
    if run["eval_sets"]:
        report["decontaminate"] = [{"path": e.path, "rows": e.rows, "ngram": e.ngram} for e in run["eval_sets"]]
    report.update(_dedup_section(cfg, run))
    return report
