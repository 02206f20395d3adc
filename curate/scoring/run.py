"""`curate score`: run scorers over a file, resumably, and write scored rows, errors and a report.

    run_score("curated.jsonl", "scored.jsonl", ScoreConfig(scorers=["ifd", "length"]))

Every input row ends in exactly one of ``scored.jsonl`` (with ``scores.<name>`` added and
``meta.scoring.<name>`` provenance, nothing else changed) or ``score_errors.jsonl`` (the whole
row plus ``error: {stage, scorer, reason}``); ``score_report.json`` and ``score_config.yaml``
land beside them, and the four are committed as one set (:mod:`curate.runs.commit`).

Resume: unique row ids, in input order, are cut into fixed chunks of ``chunk_size``; each
scorer group appends one fsynced line per finished chunk to
``score_cache/<group>-<config key>.jsonl`` beside the output. A rerun (after Ctrl-C or
kill -9) reads those lines and computes only the missing chunks, with exactly the batches an
uninterrupted run would have used, so the output is identical and no row is scored twice. A
torn last line is cut off and its chunk recomputed. The key covers everything that changes the
numbers (model, template-relevant settings, rubric, scorer version), so a changed config never
reuses stale scores.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.runs.commit import crash_point
from curate.scoring.base import SCORE_NAMES, config_key, groups_for, parse_scorer_names
from curate.scoring.ifd import LMConfig
from curate.scoring.judge import JudgeConfig, default_rubric
from curate.scoring.length import LengthConfig

SCORE_ERRORS = "score_errors.jsonl"  # not errors.jsonl: generate's errors.jsonl often shares the folder
SCORE_CONFIG = "score_config.yaml"
SCORE_CACHE = "score_cache"
PLAIN_STEM = "scored"
NESTED = {"lm": LMConfig, "length": LengthConfig, "judge": JudgeConfig}


@dataclass
class ScoreConfig:
    """Everything `curate score` does; written resolved to score_config.yaml."""

    scorers: list[str] = field(default_factory=lambda: ["ifd"], metadata={"help": ", ".join(SCORE_NAMES)})
    chunk_size: int = field(default=64, metadata={"help": "rows per cached chunk (one fsynced cache line)"})
    lm: LMConfig = field(default_factory=LMConfig)
    length: LengthConfig = field(default_factory=LengthConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def __post_init__(self) -> None:
        self.scorers = parse_scorer_names(self.scorers)
        if self.chunk_size < 1:
            raise CurateError(f"chunk_size must be at least 1, got {self.chunk_size}")
        if self.lm.batch_size < 1 or self.lm.max_length < 2:
            raise CurateError("lm.batch_size must be >= 1 and lm.max_length >= 2")


@dataclass(frozen=True)
class ScorePaths:
    out: Path
    errors: Path
    report: Path
    config: Path
    cache: Path


def score_paths(out: str | Path) -> ScorePaths:
    from curate.runs.names import SCORE_REPORT, sibling

    out = Path(out)
    return ScorePaths(out, sibling(out, SCORE_ERRORS, PLAIN_STEM), sibling(out, SCORE_REPORT, PLAIN_STEM),
                      sibling(out, SCORE_CONFIG, PLAIN_STEM), sibling(out, SCORE_CACHE, PLAIN_STEM))


def load_config(config_path: str | None, scorers: str | None, chunk_size: int | None,
                flags: Mapping[str, Any], sets: Sequence[str], applies: Mapping[str, tuple[str, tuple[str, ...]]]
                ) -> ScoreConfig:
    """Defaults <- ``--config`` YAML <- ``--set`` <- flags; a flag for a scorer not asked for is an error."""
    from curate.config import build, merge, parse_set, read_yaml

    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_path:
        data, where = read_yaml(config_path)
        layers.append((where, data))
    if sets:
        layers.append(("--set", parse_set(sets)))
    given: dict[str, Any] = {}
    if scorers is not None:
        given["scorers"] = scorers
    if chunk_size is not None:
        given["chunk_size"] = chunk_size
    if flags.get("base_url") is not None and flags.get("engine") is None:
        given = merge(given, {"judge": {"engine": "openai"}})  # --base-url means the OpenAI-compatible engine
    for flag, value in flags.items():
        if value is None:
            continue
        path = applies[flag][0].split(".")
        node = given
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    layers.append(("flags", given))
    cfg = build(ScoreConfig, layers, nested=NESTED)
    for flag, value in flags.items():
        if value is not None and not set(applies[flag][1]) & set(cfg.scorers):
            raise CurateError(f"--{flag.replace('_', '-')} applies to --scorer {' or '.join(applies[flag][1])}, "
                              f"which is not among {','.join(cfg.scorers)}")
    return cfg


def group_key(group: str, cfg: ScoreConfig) -> str:
    """The cache key of a scorer group, computed without loading its model."""
    if group == "judge":
        text = Path(cfg.judge.rubric).read_text(encoding="utf-8") if cfg.judge.rubric else default_rubric()
        return config_key(group, cfg.judge.settings(text))
    return config_key(group, getattr(cfg, group).settings())


def build_scorer(group: str, cfg: ScoreConfig) -> Any:
    if group == "lm":
        from curate.scoring.ifd import LMScorer

        return LMScorer(cfg.lm)
    if group == "length":
        from curate.scoring.length import LengthScorer

        return LengthScorer(cfg.length)
    from curate.scoring.judge import JudgeScorer

    return JudgeScorer(cfg.judge)


class ScoreCache:
    """One scorer group's finished chunks: an append-only JSONL file, one fsynced line per chunk."""

    def __init__(self, folder: Path, group: str, key: str):
        self.path = folder / f"{group}-{key}.jsonl"

    def load(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """Results by id, and the scorer's provenance as the run that computed them recorded it."""
        from curate.records.jsonl import AppendLog

        if not self.path.exists():
            return {}, {}
        log = AppendLog(self.path)  # cuts a torn last line left by kill -9
        try:
            done: dict[str, dict[str, Any]] = {}
            describe: dict[str, Any] = {}
            for line in log.existing():
                done.update(line["results"])
                describe = line.get("describe") or describe
            return done, describe
        finally:
            log.close()

    def add(self, chunk: int, results: Mapping[str, dict[str, Any]], describe: Mapping[str, Any]) -> None:
        from curate.records.jsonl import AppendLog

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with AppendLog(self.path) as log:
            log.write_many([{"chunk": chunk, "describe": dict(describe), "results": dict(results)}])


@dataclass
class GroupRun:
    key: str
    computed: int = 0
    cached: int = 0
    seconds: float = 0.0
    describe: dict[str, Any] = field(default_factory=dict)


def _score_group(group: str, key: str, make: Callable[[], Any], records: Sequence[Mapping[str, Any]],
                 chunk_size: int, cache: ScoreCache, done: dict[str, Any], describe: dict[str, Any],
                 tick: Callable[[int], None]) -> tuple[dict[str, Any], GroupRun]:
    """Results by id for ``records`` (unique ids): ``done`` (from the cache) plus the missing chunks."""
    run = GroupRun(key, cached=sum(1 for r in records if r["id"] in done), describe=describe)
    scorer = None
    for number, start in enumerate(range(0, len(records), chunk_size)):
        chunk = [r for r in records[start:start + chunk_size] if r["id"] not in done]
        if not chunk:
            continue
        if scorer is None:
            scorer = make()
        began = time.perf_counter()
        results = scorer(chunk)
        if len(results) != len(chunk):
            raise CurateError(f"scorer {group} returned {len(results)} results for {len(chunk)} rows")
        new = {record["id"]: result for record, result in zip(chunk, results, strict=True)}
        cache.add(number, new, scorer.describe())
        crash_point("score:chunk")  # tests kill -9 here (CURATE_TEST_KILL_AT_STEP)
        run.seconds += time.perf_counter() - began
        run.computed += len(chunk)
        done.update(new)
        tick(len(chunk))
    if scorer is not None:
        run.describe = scorer.describe()
    return done, run


def _error_kind(reason: str) -> str:
    """Error reasons grouped for the report: numbers and quoted text replaced."""
    reason = reason.split("; raw:")[0]
    return re.sub(r"\d+", "N", reason)[:120]


def assemble(records: Sequence[dict[str, Any]], names: Sequence[str], results: Mapping[str, Mapping[str, Any]],
             describe: Mapping[str, Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Scored rows and error rows, in input order; ``results[group][id]`` from the scorers."""
    groups = groups_for(names)
    scored, errors = [], []
    for record in records:
        failure = None
        scores: dict[str, Any] = {}
        provenance: dict[str, Any] = {}
        for group, keys in groups.items():
            result = results[group][record["id"]]
            if "error" in result:
                failure = {"stage": "score", "scorer": group, "reason": result["error"]}
                break
            scores.update({k: result["scores"][k] for k in keys})
            for name in names:
                if SCORE_NAMES[name][0] == group:
                    provenance[name] = {**describe.get(group, {}), **result.get("meta", {})}
        if failure is not None:
            errors.append({**record, "error": failure})
            continue
        row = dict(record)
        row["scores"] = {**(record.get("scores") or {}), **scores}
        row["meta"] = {**record["meta"], "scoring": {**(record["meta"].get("scoring") or {}), **provenance}}
        scored.append(row)
    return scored, errors


@dataclass
class ScoreOutcome:
    report: dict[str, Any]
    paths: ScorePaths


def run_score(source: str | Path, out: str | Path, cfg: ScoreConfig, progress: bool = True,
              scorers: Mapping[str, Any] | None = None, executor: str = "local", address: str | None = None
              ) -> ScoreOutcome:
    """Score ``source`` into ``out`` (see the module docstring); ``scorers`` overrides built ones (tests).

    ``executor="ray"``: the chunks are scored on a Ray cluster at ``address`` (:mod:`curate.scoring.ray`)."""
    if address is not None and executor != "ray":
        raise CurateError("--address applies only to --executor ray")
    from curate.runs.lock import check_writable, output_lock

    source, paths = Path(source), score_paths(out)
    if source.resolve() == paths.out.resolve():
        raise CurateError(f"--out {out}: is the input file; write the scored rows somewhere else")
    check_writable(paths.out)
    with output_lock(paths.out, "curate score"):
        return _run(source, paths, cfg, progress, dict(scorers or {}), executor, address)


def _ray_session(executor: str, address: str | None) -> Any:
    if executor != "ray":
        from contextlib import nullcontext

        return nullcontext(None)
    from curate.cluster import session

    return session(address)


def _score_group_ray(ray: Any, group: str, key: str, records: Sequence[Mapping[str, Any]], cfg: ScoreConfig,
                     cache: ScoreCache, done: dict[str, Any], describe: dict[str, Any],
                     tick: Callable[[int], None]) -> tuple[dict[str, Any], GroupRun]:
    from curate.scoring.ray import score_group

    cached = sum(1 for r in records if r["id"] in done)
    done, seconds, computed, described = score_group(ray, build_scorer, group, cfg, records, cfg.chunk_size, cache,
                                                     done, tick)
    return done, GroupRun(key, computed=computed, cached=cached, seconds=seconds, describe=described or describe)


def _run(source: Path, paths: ScorePaths, cfg: ScoreConfig, progress: bool,
         scorers: dict[str, Any], executor: str = "local", address: str | None = None) -> ScoreOutcome:
    from curate.records.jsonl import read_records

    began = time.perf_counter()
    records = list(read_records(source))
    unique = list({r["id"]: r for r in reversed(records)}.values())[::-1]  # first row of each id, input order
    groups = groups_for(cfg.scorers)
    results: dict[str, Any] = {}
    runs: dict[str, GroupRun] = {}
    with _progress_bar(progress) as bar, _ray_session(executor, address) as ray:
        for group in groups:
            key = scorers[group].key() if group in scorers else group_key(group, cfg)
            cache = ScoreCache(paths.cache, group, key)
            make = (lambda g=group: scorers[g]) if group in scorers else (lambda g=group: build_scorer(g, cfg))
            done, described = cache.load()
            task = bar.add_task(group, total=sum(1 for r in unique if r["id"] not in done))
            if ray is not None and group not in scorers:
                results[group], runs[group] = _score_group_ray(ray, group, key, unique, cfg, cache, done, described,
                                                               lambda n, t=task: bar.advance(t, n))
                continue
            results[group], runs[group] = _score_group(group, key, make, unique, cfg.chunk_size, cache, done,
                                                       described, lambda n, t=task: bar.advance(t, n))
    describe = {g: run.describe for g, run in runs.items()}
    scored, errors = assemble(records, cfg.scorers, results, describe)
    report = build_report(source, paths, cfg, records, scored, errors, runs, describe, time.perf_counter() - began)
    _write(paths, cfg, scored, errors, report)
    return ScoreOutcome(report, paths)


def build_report(source: Path, paths: ScorePaths, cfg: ScoreConfig, records: Sequence[Mapping[str, Any]],
                 scored: Sequence[Mapping[str, Any]], errors: Sequence[Mapping[str, Any]],
                 runs: Mapping[str, GroupRun], describe: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    from curate.runs.evidence import summarize

    keys = [k for keys in groups_for(cfg.scorers).values() for k in keys]
    by_reason: dict[str, Counter] = {}
    for row in errors:
        by_reason.setdefault(row["error"]["scorer"], Counter())[_error_kind(row["error"]["reason"])] += 1
    distributions = {}
    for key in keys:
        values = [float(row["scores"][key]) for row in scored]
        distributions[key] = {"summary": summarize(values), "histogram": histogram(values)}
    return {
        "stage": "score", "source": str(source), "out": str(paths.out), "scorers": list(cfg.scorers),
        "in": len(records), "scored": len(scored), "errors": len(errors), "unique_ids": len({r["id"] for r in records}),
        "errors_by_scorer": {g: dict(c.most_common()) for g, c in by_reason.items()},
        "distributions": distributions,
        "groups": {g: {"config_key": run.key, "computed": run.computed, "from_cache": run.cached,
                       "seconds": round(run.seconds, 3),
                       "rows_per_s": round(run.computed / run.seconds, 3) if run.seconds else None,
                       "scorer": describe.get(g, {})} for g, run in runs.items()},
        "seconds": round(seconds, 3),
    }


def histogram(values: Sequence[float], bins: int = 20) -> dict[str, list[float]] | None:
    import numpy as np

    if not values:
        return None
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def _write(paths: ScorePaths, cfg: ScoreConfig, scored: Sequence[Mapping[str, Any]],
           errors: Sequence[Mapping[str, Any]], report: Mapping[str, Any]) -> None:
    import json

    import yaml

    from curate.config import as_dict
    from curate.records.jsonl import dumps
    from curate.runs.commit import output_set
    from curate.runs.redact import redact

    with output_set([paths.out, paths.errors, paths.report, paths.config], command="curate score") as out:
        with out.open(paths.out) as handle:
            for row in scored:
                handle.write(dumps(row) + "\n")
        with out.open(paths.errors) as handle:
            for row in errors:
                handle.write(dumps(redact(row)) + "\n")  # engine errors may echo a key
        with out.open(paths.report) as handle:
            json.dump(redact(dict(report)), handle, ensure_ascii=False, indent=2)
            handle.write("\n")
        with out.open(paths.config) as handle:
            handle.write(yaml.safe_dump(redact(as_dict(cfg)), sort_keys=False, allow_unicode=True))


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass


def _progress_bar(enabled: bool) -> Any:
    """A rich progress bar on stderr: rows done / total, rows per second and the time left."""
    if not enabled:
        return _NoBar()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} rows/s" if speed else "  ? rows/s")

    return Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True))
