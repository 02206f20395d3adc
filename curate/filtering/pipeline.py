"""`curate filter`: quality filters, decontamination, exact and near-duplicate removal, every drop explained.

::

    curate filter generated.jsonl --out out/curated.jsonl [--preset sft] [--config filter.yaml]
        [--decontaminate EVAL.jsonl] [--against OLD.jsonl] [--threshold 0.7 --ngram 5 --num-perm 128]

Beside ``curated.jsonl`` it writes ``rejected.jsonl`` (each dropped row whole, plus
``reject: {stage, reason, detail}`` and, for duplicates, ``dup_of`` and ``cluster_id``),
``filter_report.json`` (rows in, kept, rejected by reason and stage, seconds per stage, the
LSH S-curve; ``in == kept + rejected`` always) and ``filter_config.yaml`` (the resolved
settings: run it again with ``--config`` to reproduce). An output named other than
``curated.jsonl`` gets ``<stem>.rejected.jsonl`` etc. All four appear together at the end
(temp files renamed), so an interrupted run leaves the previous outputs as they were.

How it scales: the input is read once in chunks; per chunk the filters, the contamination
join, the exact keys and the MinHash signatures are computed and the texts are dropped,
so memory holds a few numbers per row (signature, band keys), not the data. The outputs
are then written by streaming the input a second time, passing kept lines through as
they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.errors import CurateError
from curate.filtering import rules as ff
from curate.filtering.dedup import minhash as dd
from curate.records.jsonl import Quarantine, atomic_writer, dumps, iter_json_rows, read_records
from curate.runs import names

STAGES = ("filter", "decontaminate", "exact_dedup", "near_dedup")


@dataclass
class FilterConfig:
    """Everything one `curate filter` run needs; ``--config`` YAML has the same keys."""

    preset: str = ff.DEFAULT_PRESET
    filters: list[str] | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    dedup: dd.DedupConfig | None = field(default_factory=dd.DedupConfig)
    exact_dedup: bool = True
    decontaminate: list[str] = field(default_factory=list)
    decontam_ngram: int = 13
    against: list[str] = field(default_factory=list)
    chunk_rows: int = 50_000
    check_ids: bool = True
    """Re-hash every record's messages to check its id (``--trust-ids`` skips it; the schema is still checked)."""

    def __post_init__(self) -> None:
        self.filters = ff.resolve_filters(self.preset, self.filters)
        self.thresholds = ff.resolve_thresholds(self.thresholds)
        if self.decontam_ngram < 1:
            raise CurateError(f"--decontam-ngram must be at least 1, got {self.decontam_ngram}")
        if self.chunk_rows < 1:
            raise CurateError(f"chunk_rows must be at least 1, got {self.chunk_rows}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "filters": list(self.filters or []),
            "thresholds": dict(self.thresholds),
            "exact_dedup": self.exact_dedup,
            "dedup": self.dedup.as_dict() if self.dedup else None,
            "decontaminate": list(self.decontaminate),
            "decontam_ngram": self.decontam_ngram,
            "against": list(self.against),
            "chunk_rows": self.chunk_rows,
            "check_ids": self.check_ids,
        }


def load_config(path: str | os.PathLike[str] | None, overrides: dict[str, Any]) -> FilterConfig:
    """YAML file (optional) then command-line ``overrides`` (None = not given); dedup keys nest under ``dedup``."""
    import yaml

    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise CurateError(f"{path}: cannot read config ({err})") from None
        if not isinstance(raw, dict):
            raise CurateError(f"{path}: expected a mapping at the top level")
    known = {"preset", "filters", "thresholds", "dedup", "exact_dedup", "decontaminate", "decontam_ngram",
             "against", "chunk_rows", "check_ids"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise CurateError(f"{path}: unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")
    dedup_raw = raw.get("dedup", {})
    no_dedup = overrides.pop("no_dedup", False) or raw.get("dedup", {}) is None
    dedup_fields = set(dd.DedupConfig.__dataclass_fields__)
    dedup_raw = dict(dedup_raw or {})
    for key in list(dedup_raw):
        if key not in dedup_fields:
            raise CurateError(f"{path}: unknown dedup key '{key}' (known: {', '.join(sorted(dedup_fields))})")
    if dedup_raw.get("bands") is not None and ("threshold" in overrides and overrides["threshold"] is not None):
        dedup_raw.pop("bands", None)  # a new threshold on the command line re-derives bands/rows
        dedup_raw.pop("rows", None)
    for key, value in overrides.items():
        if value is None:
            continue
        if key in dedup_fields:
            dedup_raw[key] = value
        else:
            raw[key] = value
    for listy in ("decontaminate", "against"):
        if isinstance(raw.get(listy), str):
            raw[listy] = [raw[listy]]
    raw.pop("dedup", None)
    return FilterConfig(dedup=None if no_dedup else dd.DedupConfig(**dedup_raw), **raw)


# -- reading ------------------------------------------------------------------------------------


@dataclass
class Columns:
    """The per-row values the stages need, gathered while reading (texts are dropped after each chunk)."""

    cfg: FilterConfig
    score_key: str | None = None
    data: dict[str, list[Any]] = field(default_factory=dict)

    NAMES = ("line", "id", "prompt", "response", "instruction", "input", "empty_turn", "finish_reason", "tokens_out",
             "language", "score", "length", "text")

    def __post_init__(self) -> None:
        if self.score_key is None and self.cfg.dedup is not None:
            self.score_key = self.cfg.dedup.score_key
        self.clear()

    def clear(self) -> None:
        self.data = {name: [] for name in self.NAMES}

    def __len__(self) -> int:
        return len(self.data["id"])

    def add(self, line_no: int, record: dict[str, Any]) -> None:
        messages = record["messages"]
        meta = record["meta"]
        users = [m["content"] for m in messages if m["role"] == "user"]
        assistants = [m["content"] for m in messages if m["role"] == "assistant"]
        d = self.data
        d["line"].append(line_no)
        d["id"].append(record["id"])
        prompt, response = "\n\n".join(users), "\n\n".join(assistants)
        d["prompt"].append(prompt)
        d["response"].append(response)
        instruction, given = meta.get("instruction"), meta.get("input")
        d["instruction"].append(instruction if isinstance(instruction, str) else users[0])
        d["input"].append(given if isinstance(given, str) else "")
        d["empty_turn"].append(any(not m["content"].strip() for m in messages))
        finish = meta.get("finish_reason")
        d["finish_reason"].append(finish if isinstance(finish, str) else None)
        tokens = meta.get("tokens_out")
        d["tokens_out"].append(tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None)
        language = meta.get("language")
        d["language"].append(language if isinstance(language, str) else None)
        scores = record.get("scores") or {}
        if self.score_key is None and scores:
            self.score_key = sorted(scores)[0]
        d["score"].append(float(scores[self.score_key]) if self.score_key in scores else None)
        d["length"].append(sum(len(m["content"]) for m in messages))
        d["text"].append(self._dedup_text(messages, users, assistants, prompt, response))

    def _dedup_text(self, messages: list[dict[str, str]], users: list[str], assistants: list[str], prompt: str,
                    response: str) -> str:
        dedup = self.cfg.dedup
        on, turns = (dedup.dedup_on, dedup.multi_turn) if dedup else ("both", "all")
        if turns == "first-user":
            first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
            reply = next((m["content"] for m in messages[first_user:] if m["role"] == "assistant"), "")
            prompt, response = users[0], reply
        if on == "prompt":
            return prompt
        if on == "response":
            return response
        return f"{prompt}\n{response}"

    def frame(self, first_row: int) -> pl.DataFrame:
        schema = {"line": pl.Int64, "id": pl.String, "prompt": pl.String, "response": pl.String,
                  "instruction": pl.String, "input": pl.String, "empty_turn": pl.Boolean, "finish_reason": pl.String,
                  "tokens_out": pl.Int64, "language": pl.String, "score": pl.Float64, "length": pl.Int64,
                  "text": pl.String}
        frame = pl.DataFrame(self.data, schema=schema)
        return frame.with_columns(pl.int_range(first_row, first_row + frame.height, dtype=pl.Int64).alias("row"))


def _chunks(path: str | os.PathLike[str], cfg: FilterConfig, columns: Columns,
            quarantine: Quarantine | None) -> Iterator[pl.DataFrame]:
    from curate.errors import RecordError
    from curate.records import record_id, validate_record
    from curate.records.jsonl import iter_valid

    def validate(value: Any) -> dict[str, Any]:
        record = validate_record(value, check_id=False)
        if cfg.check_ids and record["id"] != record_id(record["messages"]):
            raise RecordError("id", "does not match the hash of the messages (edited by hand? run `curate import`)")
        return record

    first_row = 0

    for line_no, record in iter_valid(path, validate, quarantine):
        columns.add(line_no, record)
        if len(columns) >= cfg.chunk_rows:
            yield columns.frame(first_row)
            first_row += len(columns)
            columns.clear()
    if len(columns):
        yield columns.frame(first_row)
        columns.clear()


# -- the run ------------------------------------------------------------------------------------


@dataclass
class DedupState:
    """What the dedup stages keep per row after the texts are gone."""

    signatures: list[np.ndarray] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)
    shingles: list[pl.DataFrame] = field(default_factory=list)


class Timer:
    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


def _dedup_features(cfg: FilterConfig, frame: pl.DataFrame, state: DedupState, timer: Timer,
                    node_offset: int) -> pl.DataFrame:
    """Exact keys, MinHash signatures and band keys for the rows still alive (the others get none)."""
    dedup = cfg.dedup or dd.DedupConfig()
    alive = frame["reason"].is_null()
    local = frame.select(pl.int_range(0, frame.height, dtype=pl.Int64).alias("row"), "text").filter(alive)
    with timer.stage("exact_dedup"):
        word_frame, local_keys = dd.words_and_exact_keys(dedup, local)
        keys = np.zeros(frame.height, np.uint64)
        keys[local["row"].to_numpy()] = local_keys.to_numpy()
    frame = frame.with_columns(pl.Series("exact_key", keys))
    if cfg.dedup is None:
        return frame
    with timer.stage("near_dedup"):
        shingles = dd.shingles(dedup, local, word_frame)
        sig = dd.signatures(dedup, shingles, frame.height)
        state.signatures.append(sig)
        state.keys.append(dd.band_keys(dedup, sig))
        if dedup.verify == "exact":
            state.shingles.append(shingles.with_columns(pl.col("row") + node_offset))
    return frame


_SLIM = ("row", "line", "id", "reason", "detail", "eval_id", "exact_key", "length", "score")


def _process_chunk(cfg: FilterConfig, frame: pl.DataFrame, eval_sets: list[Any], state: DedupState,
                   timer: Timer) -> pl.DataFrame:
    with timer.stage("filter"):
        frame = ff.apply_filters(frame, cfg.filters or [], cfg.thresholds).with_columns(
            pl.when(pl.col("reason").is_not_null()).then(pl.lit("filter")).alias("stage"),
            pl.lit(None, pl.String).alias("eval_id"))
    if eval_sets:
        from curate.filtering.decontam import find_contamination

        with timer.stage("decontaminate"):
            for eval_set in eval_sets:
                alive = frame.filter(pl.col("reason").is_null()).select("row", "prompt", "response")
                hits = find_contamination(alive, eval_set).rename({"eval_id": "hit_id", "detail": "hit_detail"})
                frame = frame.join(hits, on="row", how="left").with_columns(
                    pl.when(pl.col("hit_id").is_not_null()).then(pl.lit("contamination")).otherwise("reason")
                    .alias("reason"),
                    pl.when(pl.col("hit_id").is_not_null()).then(pl.lit("decontaminate")).otherwise("stage")
                    .alias("stage"),
                    pl.coalesce("hit_detail", "detail").alias("detail"),
                    pl.coalesce("hit_id", "eval_id").alias("eval_id"),
                ).drop("hit_id", "hit_detail")
    first_row = int(frame["row"][0])
    if cfg.exact_dedup or cfg.dedup is not None:
        frame = _dedup_features(cfg, frame, state, timer, first_row)
    else:
        frame = frame.with_columns(pl.lit(None, pl.UInt64).alias("exact_key"))
    return frame.select(*_SLIM, "stage")


def _read_against(cfg: FilterConfig, timer: Timer, state: DedupState, first_node: int) -> pl.DataFrame:
    """Rows of earlier datasets: keys and signatures only, they are never filtered or written."""
    frames = []
    node = first_node
    for path in cfg.against:
        columns = Columns(cfg)
        for record in read_records(path):
            columns.add(0, record)
            if len(columns) >= cfg.chunk_rows:
                frames.append(_dedup_features(cfg, columns.frame(node).with_columns(
                    pl.lit(None, pl.String).alias("reason")), state, timer, node))
                node += len(columns)
                columns.clear()
        if len(columns):
            frames.append(_dedup_features(cfg, columns.frame(node).with_columns(
                pl.lit(None, pl.String).alias("reason")), state, timer, node))
            node += len(columns)
            columns.clear()
    if not frames:
        return pl.DataFrame()
    return pl.concat([f.select("row", "id", "exact_key", "length", "score") for f in frames])


@dataclass
class FilterResult:
    report: dict[str, Any]
    paths: dict[str, str]


def output_paths(out: str | os.PathLike[str]) -> dict[str, Path]:
    """curated.jsonl -> rejected.jsonl, filter_report.json, filter_config.yaml beside it (else stem-prefixed)."""
    return names.filter_paths(out).as_dict()


def run_filter(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    cfg: FilterConfig,
    skip_invalid: bool = False,
    quarantine_path: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> FilterResult:
    """Filter and dedup ``source`` into ``out`` and its siblings; see the module docstring."""
    started = time.perf_counter()
    timer = Timer()
    paths = output_paths(out)
    if Path(source).resolve() in {p.resolve() for p in paths.values()}:
        raise CurateError(f"{source}: the input would be overwritten by an output; choose another --out")
    eval_sets = []
    if cfg.decontaminate:
        from curate.filtering.decontam import load_eval_set

        with timer.stage("decontaminate_load"):
            eval_sets = [load_eval_set(p, cfg.decontam_ngram) for p in cfg.decontaminate]
        timer.seconds["decontaminate"] += timer.seconds["decontaminate_load"]
    _remove_stale_temps(paths)
    side = Path(quarantine_path) if quarantine_path else names.quarantine_path(out)
    quarantine = Quarantine(side) if skip_invalid else None
    state = DedupState()
    columns = Columns(cfg)
    slim_parts = []
    loop_start = time.perf_counter()
    with _progress(progress, source) as advance:
        try:
            for frame in _chunks(source, cfg, columns, quarantine):
                slim_parts.append(_process_chunk(cfg, frame, eval_sets, state, timer))
                advance(frame.height)
        finally:
            if quarantine is not None:
                quarantine.close()
    inside = sum(timer.seconds[s] for s in STAGES)
    timer.seconds["read"] = time.perf_counter() - loop_start - inside + timer.seconds["decontaminate_load"]
    if not slim_parts:
        raise CurateError(f"{source}: no valid records to filter")
    rows = pl.concat(slim_parts)
    n_rows = rows.height
    anchors = _read_against(cfg, timer, state, n_rows) if cfg.against else pl.DataFrame()
    dedup_stats: dict[str, Any] = {}
    rows = _dedup(cfg, rows, anchors, state, timer, dedup_stats)
    report = _write_outputs(source, paths, cfg, columns.score_key, rows, quarantine, timer, started,
                            dedup_stats, eval_sets)
    return FilterResult(report, {k: str(v) for k, v in paths.items()})


def _remove_stale_temps(paths: dict[str, Path]) -> None:
    """Temp files a killed (kill -9) run left beside our outputs; the outputs themselves were never touched."""
    for path in paths.values():
        if path.parent.is_dir():
            for stale in path.parent.glob(f".{path.name}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()


@contextlib.contextmanager
def _progress(enabled: bool, source: str | os.PathLike[str]) -> Iterator[Any]:
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    total = None
    path = Path(source)
    if path.suffix != ".gz" and path.stat().st_size < 4 << 30:
        with path.open("rb") as handle:
            total = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 24), b""))
    with Progress(SpinnerColumn(), TextColumn("filtering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task("rows", total=total)
        yield lambda n: bar.advance(task, n)


def _dedup(cfg: FilterConfig, rows: pl.DataFrame, anchors: pl.DataFrame, state: DedupState, timer: Timer,
           stats: dict[str, Any]) -> pl.DataFrame:
    """Exact then near-duplicate decisions; adds dup_of, cluster_id and the dedup reasons to ``rows``."""
    rows = rows.with_columns(pl.lit(None, pl.String).alias("dup_of"), pl.lit(None, pl.String).alias("cluster_id"))
    if not cfg.exact_dedup and cfg.dedup is None:
        return rows
    keep = cfg.dedup.keep if cfg.dedup else "first"
    nodes = rows.filter(pl.col("reason").is_null()).select(
        pl.col("row").alias("node"), "id", "exact_key", "length", "score", pl.lit(False).alias("anchor"))
    if anchors.height:
        nodes = pl.concat([nodes, anchors.select(pl.col("row").alias("node"), "id", "exact_key", "length", "score",
                                                 pl.lit(True).alias("anchor"))])
    id_of = dict(zip(nodes["node"].to_list(), nodes["id"].to_list(), strict=True))
    anchor_nodes = set(anchors["row"].to_list()) if anchors.height else set()
    decided = []
    if cfg.exact_dedup:
        with timer.stage("exact_dedup"):
            ranked = nodes.sort(dd.rank_expr(keep))
            reps = ranked.group_by("exact_key", maintain_order=True).agg(pl.col("node").first().alias("rep"))
            exact = nodes.join(reps, on="exact_key").filter(
                (pl.col("node") != pl.col("rep")) & pl.col("anchor").not_())
            stats["exact_clusters"] = int(exact["rep"].n_unique())
            decided.append(exact.select("node", "rep", pl.lit("exact_dedup").alias("stage"),
                                        pl.lit(None, pl.Float32).alias("similarity"),
                                        pl.concat_str(pl.lit("exact-"), pl.col("rep").cast(pl.String)).alias("cluster")))
            nodes = nodes.filter(pl.col("node").is_in(exact["node"].implode()).not_())
    if cfg.dedup is not None:
        with timer.stage("near_dedup"):
            sig = np.concatenate(state.signatures) if state.signatures else np.zeros((0, cfg.dedup.num_perm), np.uint32)
            keys = np.concatenate(state.keys) if state.keys else np.zeros((0, cfg.dedup.bands), np.uint64)
            shingles = pl.concat(state.shingles) if state.shingles else None
            chosen, near_stats = dd.near_duplicates(cfg.dedup, sig, keys, nodes, shingles)
            stats.update(near_stats)
            near = chosen.filter((pl.col("node") != pl.col("rep")) & pl.col("node").is_in(list(anchor_nodes)).not_())
            decided.append(near.select("node", "rep", pl.lit("near_dedup").alias("stage"),
                                       "similarity",
                                       pl.concat_str(pl.lit("near-"), pl.col("cluster").cast(pl.String)).alias("cluster")))
    if not decided:
        return rows
    dups = pl.concat(decided, how="vertical_relaxed")
    rep_ids = [id_of[r] for r in dups["rep"].to_list()]
    is_existing = [r in anchor_nodes for r in dups["rep"].to_list()]
    dups = dups.with_columns(
        pl.Series("dup_of_new", rep_ids, dtype=pl.String),
        pl.Series("existing", is_existing, dtype=pl.Boolean),
    ).with_columns(
        pl.when(pl.col("stage") == "exact_dedup").then(pl.lit("exact_duplicate")).otherwise(pl.lit("near_duplicate"))
        .alias("reason_new"),
    ).with_columns(
        pl.when(pl.col("existing")).then(pl.col("reason_new") + "_of_existing").otherwise("reason_new")
        .alias("reason_new"),
        pl.format("{} {}", pl.when(pl.col("stage") == "exact_dedup").then(pl.lit("same normalized text as"))
                  .otherwise(pl.format("estimated Jaccard {} with", pl.col("similarity").round(3))),
                  pl.col("dup_of_new")).alias("detail_new"),
    )
    rows = rows.join(dups.select(pl.col("node").alias("row"), pl.col("stage").alias("stage_new"), "reason_new",
                                 "detail_new", "dup_of_new", pl.col("cluster").alias("cluster_new")),
                     on="row", how="left")
    return rows.with_columns(
        pl.coalesce("reason", "reason_new").alias("reason"),
        pl.coalesce("stage", "stage_new").alias("stage"),
        pl.coalesce("detail", "detail_new").alias("detail"),
        pl.coalesce("dup_of", "dup_of_new").alias("dup_of"),
        pl.coalesce("cluster_id", "cluster_new").alias("cluster_id"),
    ).drop("stage_new", "reason_new", "detail_new", "dup_of_new", "cluster_new")


# -- writing ------------------------------------------------------------------------------------


def _is_json_array(path: str | os.PathLike[str]) -> bool:
    from curate.records.jsonl import _open_binary, _peek_first_char

    with _open_binary(Path(path)) as handle:
        return _peek_first_char(handle) == b"["


def _source_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, str | None, Any]]:
    """(line_no, raw JSON text or None, parsed value or None) for every row, cheaply."""
    if _is_json_array(path):
        for line_no, value in iter_json_rows(path):
            yield line_no, None, value
        return
    from curate.records.jsonl import _open_binary

    with _open_binary(Path(path)) as handle:
        for line_no, raw in enumerate(handle, start=1):
            text = raw.strip()
            if text:
                yield line_no, text.decode("utf-8"), None


def _write_outputs(source: str | os.PathLike[str], paths: dict[str, Path], cfg: FilterConfig,
                   score_key: str | None, rows: pl.DataFrame, quarantine: Quarantine | None, timer: Timer,
                   started: float, dedup_stats: dict[str, Any], eval_sets: list[Any]) -> dict[str, Any]:
    import yaml

    rejected = rows.filter(pl.col("reason").is_not_null()).sort("line")
    lines = rows["line"].to_numpy()
    valid = np.zeros(int(lines.max()) + 2, bool)
    valid[lines] = True
    base = ["stage", "reason", "detail"]
    reject_json = (
        pl.when(pl.col("stage").is_in(["exact_dedup", "near_dedup"]))
        .then(pl.struct(*base, "dup_of", "cluster_id").struct.json_encode())
        .when(pl.col("stage") == "decontaminate")
        .then(pl.struct(*base, "eval_id").struct.json_encode())
        .otherwise(pl.struct(*base).struct.json_encode())
    )
    reject_lines = rejected["line"].to_list() + [-1]
    reject_texts = rejected.select(reject_json.alias("j"))["j"].to_list()
    at = 0
    kept = 0
    with contextlib.ExitStack() as stack:
        curated = stack.enter_context(atomic_writer(paths["curated"]))
        rejected_out = stack.enter_context(atomic_writer(paths["rejected"]))
        report_out = stack.enter_context(atomic_writer(paths["report"]))
        config_out = stack.enter_context(atomic_writer(paths["config"]))
        with timer.stage("write"):
            for line_no, raw, value in _source_rows(source):
                if line_no >= len(valid) or not valid[line_no]:
                    continue  # quarantined
                if reject_lines[at] != line_no:
                    curated.write((raw if raw is not None else dumps(value)) + "\n")
                    kept += 1
                    continue
                reject = reject_texts[at]
                at += 1
                if raw is not None and '"reject"' not in raw and raw.endswith("}"):
                    # splice the reject object in: the row stays byte-identical, and no parse is needed
                    rejected_out.write(f'{raw[:-1]},"reject":{reject}}}\n')
                    continue
                row = json.loads(raw) if raw is not None else value
                row["reject"] = json.loads(reject)
                rejected_out.write(dumps(row) + "\n")
        resolved = cfg.as_dict()
        if resolved["dedup"] is not None:
            resolved["dedup"]["score_key"] = resolved["dedup"]["score_key"] or score_key
        report = build_report(source, paths, cfg, rows, kept, quarantine, timer, started, dedup_stats, eval_sets)
        if report["in"] != report["kept"] + report["rejected"]:
            raise CurateError(f"internal error: {report['in']} rows in but {report['kept']} kept + "
                              f"{report['rejected']} rejected; no output written")
        json.dump(report, report_out, ensure_ascii=False, indent=2)
        report_out.write("\n")
        config_out.write("# resolved `curate filter` settings; rerun with --config this file\n")
        yaml.safe_dump(resolved, config_out, sort_keys=False, allow_unicode=True)
        config_out.write("\n# filter and threshold documentation\n")
        docs = ff.describe()
        config_out.write("".join(f"#   {name}: {doc}\n" for name, doc in docs["filters"].items()))
        config_out.write("".join(f"#   threshold {name}: {d['doc']}\n" for name, d in docs["thresholds"].items()))
    return report


def build_report(source: str | os.PathLike[str], paths: dict[str, Path], cfg: FilterConfig, rows: pl.DataFrame,
                 kept: int, quarantine: Quarantine | None, timer: Timer, started: float,
                 dedup_stats: dict[str, Any], eval_sets: list[Any]) -> dict[str, Any]:
    """Counts from the decisions frame itself (group_by reason), so the report cannot disagree with the data."""
    by_reason = rows.filter(pl.col("reason").is_not_null()).group_by("stage", "reason").len().sort(
        "len", descending=True)
    n_in = rows.height
    rejected = int(by_reason["len"].sum()) if by_reason.height else 0
    stages = []
    remaining = n_in
    for stage in STAGES:
        dropped = int(by_reason.filter(pl.col("stage") == stage)["len"].sum()) if by_reason.height else 0
        active = {"filter": bool(cfg.filters), "decontaminate": bool(cfg.decontaminate),
                  "exact_dedup": cfg.exact_dedup, "near_dedup": cfg.dedup is not None}[stage]
        stages.append({"stage": stage, "active": active, "in": remaining, "dropped": dropped,
                       "out": remaining - dropped, "seconds": round(timer.seconds.get(stage, 0.0), 3)})
        remaining -= dropped
    report: dict[str, Any] = {
        "input": str(source),
        "outputs": {k: str(v) for k, v in paths.items()},
        "invalid": quarantine.count if quarantine else 0,
        "quarantine": str(quarantine.path) if quarantine and quarantine.count else None,
        "in": n_in,
        "kept": kept,
        "rejected": rejected,
        "reconciles": n_in == kept + rejected,
        "rejected_by_reason": {r: int(n) for r, n in zip(by_reason["reason"], by_reason["len"], strict=True)},
        "rejected_by_stage": {s["stage"]: s["dropped"] for s in stages},
        "stages": stages,
        "seconds": {"total": round(time.perf_counter() - started, 3), "read": round(timer.seconds["read"], 3),
                    "write": round(timer.seconds["write"], 3)},
        "preset": cfg.preset,
    }
    if eval_sets:
        report["decontaminate"] = [{"path": e.path, "rows": e.rows, "ngram": e.ngram} for e in eval_sets]
    if cfg.dedup is not None:
        d = cfg.dedup
        report["near_dedup"] = {
            "threshold": d.threshold, "ngram": d.ngram, "num_perm": d.num_perm, "bands": d.bands, "rows": d.rows,
            "engine": d.engine, "verify": d.verify, "clustering": d.clustering, "keep": d.keep,
            "s_curve": dd.s_curve(d.bands, d.rows), **dedup_stats,
        }
    elif cfg.exact_dedup:
        report["exact_dedup"] = dedup_stats
    return report


def summary_table(report: dict[str, Any]) -> Any:
    """A rich Table: the funnel per stage and the reasons, one screen."""
    from rich.table import Table

    table = Table(title=f"curate filter: {report['in']} in, {report['kept']} kept, {report['rejected']} rejected"
                        + (f", {report['invalid']} invalid (quarantined)" if report["invalid"] else ""))
    table.add_column("stage")
    table.add_column("reason")
    table.add_column("rows", justify="right")
    table.add_column("% of in", justify="right")
    table.add_column("seconds", justify="right")
    reasons_by_stage: dict[str, list[str]] = {}
    for reason in report["rejected_by_reason"]:
        stage = _stage_of(reason)
        reasons_by_stage.setdefault(stage, []).append(reason)
    total = max(report["in"], 1)
    for stage in report["stages"]:
        if not stage["active"]:
            continue
        table.add_row(stage["stage"], "[dim](all)[/dim]", str(stage["dropped"]),
                      f"{100 * stage['dropped'] / total:.1f}", f"{stage['seconds']:.2f}")
        for reason in reasons_by_stage.get(stage["stage"], []):
            n = report["rejected_by_reason"][reason]
            table.add_row("", reason, str(n), f"{100 * n / total:.1f}", "")
    table.add_row("[bold]kept[/bold]", "", f"[bold]{report['kept']}[/bold]", f"{100 * report['kept'] / total:.1f}",
                  f"{report['seconds']['total']:.2f}")
    return table


def _stage_of(reason: str) -> str:
    if reason == "contamination":
        return "decontaminate"
    if reason.startswith("exact_duplicate"):
        return "exact_dedup"
    if reason.startswith("near_duplicate"):
        return "near_dedup"
    return "filter"
