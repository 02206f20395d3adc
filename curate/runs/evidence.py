"""What a run left on disk, and the numbers the dataset card and the HTML report show.

Every stage writes its outputs and its evidence beside each other:

    generated.jsonl  manifest.json  errors.jsonl            (curate generate)
    curated.jsonl    rejected.jsonl filter_report.json  filter_config.yaml   (curate filter)
    compare/<name>/results.json  curve.png                  (curate compare)

``find_run_files`` looks for those names in one folder (and follows a filter report's
pointer to the generated file's folder); nothing is required, everything missing is
reported as missing. The funnel is counted from the data itself (kept rows plus the
rejected rows' ``reject.stage``/``reject.reason``), so it cannot disagree with the files;
the stage reports are shown as they were written, never retyped.

    from curate.runs.evidence import find_run_files, compute_funnel
    files = find_run_files("runs/demo")
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curate.errors import CurateError, InputError
from curate.records.jsonl import iter_json_rows

CURATED = "curated.jsonl"
GENERATED = "generated.jsonl"
REJECTED = "rejected.jsonl"
ERRORS = "errors.jsonl"
MANIFEST = "manifest.json"
FILTER_REPORT = "filter_report.json"
FILTER_CONFIG = "filter_config.yaml"
# Stage evidence that travels with a published dataset (STYLE: config.yaml + report.json per stage).
EVIDENCE_NAMES = (MANIFEST, FILTER_REPORT, FILTER_CONFIG, "config.yaml", "report.json")
_INPUT_KEYS = ("input", "inputs", "source", "generated", "input_path", "in")


@dataclass
class StageDoc:
    """One evidence file as the stage wrote it: parsed value plus its raw text."""

    path: Path
    value: Any
    text: str


@dataclass
class CompareRun:
    folder: Path
    results: Any | None
    images: list[Path]


@dataclass
class RunFiles:
    folder: Path
    curated: Path | None = None
    generated: Path | None = None
    rejected: Path | None = None
    errors: Path | None = None
    manifest: StageDoc | None = None
    filter_report: StageDoc | None = None
    filter_config: StageDoc | None = None
    extra_docs: list[StageDoc] = field(default_factory=list)
    compare: list[CompareRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def evidence(self) -> list[StageDoc]:
        docs = [self.manifest, self.filter_config, self.filter_report, *self.extra_docs]
        return [doc for doc in docs if doc is not None]


def read_doc(path: Path, problems: list[str]) -> StageDoc | None:
    """Parse a JSON or YAML evidence file; a broken one becomes a noted problem, not a crash."""
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
        value = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        problems.append(f"{path}: could not be read ({str(err).splitlines()[0]})")
        return None
    return StageDoc(path, value, text)


def find_run_files(folder: str | os.PathLike[str], curated: str | os.PathLike[str] | None = None) -> RunFiles:
    """Everything the stages left in ``folder`` (the curated file may be named explicitly)."""
    folder = Path(folder)
    files = RunFiles(folder)

    prefix = _filter_prefix(folder, Path(curated) if curated else None)

    def present(name: str) -> Path | None:
        path = folder / name
        return path if path.is_file() else None

    files.curated = Path(curated) if curated else present(f"{prefix}jsonl" if prefix else CURATED)
    files.rejected = present(prefix + REJECTED)
    files.filter_report = read_doc(folder / (prefix + FILTER_REPORT), files.problems)
    files.filter_config = read_doc(folder / (prefix + FILTER_CONFIG), files.problems)
    files.generated = present(GENERATED)
    gen_folder = folder
    if files.generated is None:
        # filter may have read generated.jsonl from another folder; its report or config says which
        pointer = _generated_pointer(files)
        if pointer is not None:
            files.generated, gen_folder = pointer, pointer.parent
    files.manifest = read_doc(gen_folder / MANIFEST, files.problems)
    files.errors = (gen_folder / ERRORS) if (gen_folder / ERRORS).is_file() else None
    for name in ("config.yaml", "report.json"):
        doc = read_doc(folder / name, files.problems)
        if doc is not None:
            files.extra_docs.append(doc)
    files.compare = _find_compare_runs(folder)
    return files


def _filter_prefix(folder: Path, curated: Path | None) -> str:
    """'' for curated.jsonl; 'name.' when filter wrote name.jsonl and name.rejected.jsonl etc. beside it."""
    if curated is not None:
        stem = curated.name.removesuffix(".gz").removesuffix(".jsonl").removesuffix(".json")
        return "" if stem == "curated" else f"{stem}."
    if (folder / CURATED).is_file() or (folder / FILTER_REPORT).is_file():
        return ""
    reports = sorted(folder.glob(f"*.{FILTER_REPORT}"))
    return reports[0].name.removesuffix(FILTER_REPORT) if len(reports) == 1 else ""


def _generated_pointer(files: RunFiles) -> Path | None:
    for doc in (files.filter_report, files.filter_config):
        if doc is None:
            continue
        for value in find_values(doc.value, _INPUT_KEYS):
            if isinstance(value, str) and value.endswith((".jsonl", ".jsonl.gz", ".json")):
                candidate = Path(value)
                if not candidate.is_absolute():
                    candidate = (files.folder / candidate) if (files.folder / candidate).exists() else candidate
                if candidate.is_file():
                    return candidate
    return None


_CURVE_FILES = ("compare/**/results.json", "*/results.json", "results.json",  # curate compare
                "*/metrics.json", "runs/*/metrics.json", "metrics.json")          # curate train


def _find_compare_runs(folder: Path) -> list[CompareRun]:
    """Folders holding a compare ``results.json`` or a training ``metrics.json``, with their PNG curves."""
    runs = []
    seen: set[Path] = set()
    for results in (path for pattern in _CURVE_FILES for path in sorted(folder.glob(pattern))):
        parent = results.parent
        if parent in seen:
            continue
        seen.add(parent)
        problems: list[str] = []
        doc = read_doc(results, problems)
        runs.append(CompareRun(parent, doc.value if doc else None, sorted(parent.glob("*.png"))))
    return runs


def find_values(obj: Any, names: Sequence[str], depth: int = 4) -> Iterator[Any]:
    """Values of keys named ``names`` anywhere in nested dicts, shallowest first.

    Stage files are written by other stages and may nest their settings; we look them up
    by name rather than by a fixed path so the card degrades instead of breaking.
    """
    level: list[Any] = [obj]
    for _ in range(depth):
        following: list[Any] = []
        for node in level:
            if isinstance(node, Mapping):
                for name in names:
                    if name in node and node[name] not in (None, "", [], {}):
                        yield node[name]
                following.extend(v for v in node.values() if isinstance(v, (Mapping, list)))
            elif isinstance(node, list):
                following.extend(v for v in node if isinstance(v, (Mapping, list)))
        level = following


def first_value(obj: Any, names: Sequence[str]) -> Any:
    return next(find_values(obj, names), None)


# -- rows ---------------------------------------------------------------------------------

def iter_rows(path: Path | None) -> Iterator[dict[str, Any]]:
    """Objects of a JSONL stage file, tolerant of rows that are not records (errors.jsonl)."""
    if path is None:
        return
    try:
        for _, row in iter_json_rows(path):
            if isinstance(row, dict):
                yield row
    except InputError as err:
        if "is empty" in err.reason:
            return
        raise


def count_rows(path: Path | None) -> int | None:
    if path is None:
        return None
    return sum(1 for _ in iter_rows(path))


def reject_info(row: Mapping[str, Any]) -> dict[str, Any]:
    """``{stage, reason, detail, dup_of, cluster_id}`` of a rejected row, wherever they were put."""
    reject = row.get("reject")
    reject = dict(reject) if isinstance(reject, Mapping) else {"reason": str(reject or "unknown")}
    detail = reject.get("detail")
    for key in ("dup_of", "cluster_id"):
        if key not in reject:
            if key in row:
                reject[key] = row[key]
            elif isinstance(detail, Mapping) and key in detail:
                reject[key] = detail[key]
    reject.setdefault("stage", "filter")
    reject.setdefault("reason", "unknown")
    return reject


def text_of(row: Mapping[str, Any], role: str) -> str:
    messages = row.get("messages")
    if not isinstance(messages, list):
        return ""
    return "\n\n".join(
        m.get("content", "") for m in messages if isinstance(m, Mapping) and m.get("role") == role
        and isinstance(m.get("content"), str)
    )


def words(text: str) -> int:
    return len(text.split())


# -- the funnel ---------------------------------------------------------------------------

@dataclass
class FunnelStep:
    stage: str
    rejected: int
    remaining: int
    reasons: dict[str, int]


@dataclass
class Funnel:
    generated: int | None
    start: int
    kept: int
    steps: list[FunnelStep]
    errors: int | None
    unaccounted: int | None
    source: str

    def rows(self) -> list[tuple[str, int]]:
        """(label, rows remaining) from the start to kept, for tables and bar charts."""
        out = [("generated" if self.generated is not None else "input", self.start)]
        out += [(f"after {step.stage}", step.remaining) for step in self.steps]
        out.append(("kept", self.kept))
        return out


def compute_funnel(files: RunFiles, kept: int | None = None, reject_counts: Counter | None = None) -> Funnel | None:
    """Generated -> each reject stage -> kept, counted from the files (or the filter report)."""
    if kept is None:
        kept = count_rows(files.curated)
    if kept is None:
        return None
    if reject_counts is None and files.rejected is not None:
        reject_counts = Counter()
        for row in iter_rows(files.rejected):
            info = reject_info(row)
            reject_counts[(str(info["stage"]), str(info["reason"]))] += 1
    source = "rejected.jsonl"
    if not reject_counts and files.rejected is None:  # an empty rejected.jsonl is an answer: nothing dropped
        reject_counts = _reject_counts_from_report(files)
        source = FILTER_REPORT if reject_counts else "curated.jsonl"
    reject_counts = reject_counts or Counter()
    generated = count_rows(files.generated)
    errors = count_rows(files.errors)
    start = kept + sum(reject_counts.values())
    # stage order (and stages that dropped nothing) from the filter report when it lists them
    stages: dict[str, dict[str, int]] = {name: {} for name in _reported_stages(files)}
    for (stage, reason), count in reject_counts.items():  # insertion order = order first seen
        stages.setdefault(stage, {})[reason] = count
    steps, remaining = [], start
    for stage, reasons in stages.items():
        removed = sum(reasons.values())
        remaining -= removed
        steps.append(FunnelStep(stage, removed, remaining, dict(sorted(reasons.items(), key=lambda kv: -kv[1]))))
    unaccounted = None if generated is None else generated - start
    return Funnel(generated, generated if generated is not None and unaccounted == 0 else start,
                  kept, steps, errors, unaccounted, source)


def _reported_stages(files: RunFiles) -> list[str]:
    """Active stages in pipeline order, from filter_report.json's ``stages`` list."""
    stages = files.filter_report.value.get("stages") if files.filter_report and isinstance(
        files.filter_report.value, Mapping) else None
    if not isinstance(stages, list):
        return []
    return [str(s["stage"]) for s in stages if isinstance(s, Mapping) and "stage" in s and s.get("active", True)]


def generation_rejects(files: RunFiles) -> dict[str, int]:
    """Candidates the generator dropped before writing rows (manifest ``totals.rejected``)."""
    totals = first_value(files.manifest.value if files.manifest else None, ("totals",))
    rejected = totals.get("rejected") if isinstance(totals, Mapping) else None
    if not isinstance(rejected, Mapping):
        return {}
    counts = {str(k): int(v) for k, v in rejected.items() if isinstance(v, int) and not isinstance(v, bool) and v}
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _reject_counts_from_report(files: RunFiles) -> Counter:
    """Best effort: a ``{reason: count}`` map found in filter_report.json."""
    if files.filter_report is None:
        return Counter()
    for value in find_values(files.filter_report.value, ("rejected_by_reason", "reasons", "by_reason", "rejected")):
        if isinstance(value, Mapping) and value and all(isinstance(v, int) for v in value.values()):
            return Counter({("filter", str(k)): int(v) for k, v in value.items() if v})
        if isinstance(value, Mapping) and all(isinstance(v, Mapping) for v in value.values()):
            counts = Counter()
            for stage, reasons in value.items():
                for reason, count in reasons.items():
                    if isinstance(count, int) and count:
                        counts[(str(stage), str(reason))] = count
            if counts:
                return counts
    return Counter()


# -- statistics ---------------------------------------------------------------------------

def summarize(values: Iterable[float]) -> dict[str, float] | None:
    """count, min, p10, median, mean, p90, max of ``values`` (None when empty)."""
    data = sorted(v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))
    if not data:
        return None

    def quantile(q: float) -> float:
        pos = q * (len(data) - 1)
        low, high = math.floor(pos), math.ceil(pos)
        return data[low] + (data[high] - data[low]) * (pos - low)

    return {"count": len(data), "min": data[0], "p10": quantile(0.1), "median": quantile(0.5),
            "mean": sum(data) / len(data), "p90": quantile(0.9), "max": data[-1]}


@dataclass
class RecordStats:
    """Lengths (in words) and scores of a stream of records, plus the first few as examples."""

    count: int = 0
    prompt_words: list[int] = field(default_factory=list)
    response_words: list[int] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)
    sources: Counter = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    max_examples: int = 3

    def add(self, record: Mapping[str, Any]) -> None:
        self.count += 1
        self.prompt_words.append(words(text_of(record, "user")))
        self.response_words.append(words(text_of(record, "assistant")))
        messages = record.get("messages")
        self.turns.append(len(messages) if isinstance(messages, list) else 0)
        scores = record.get("scores")
        if isinstance(scores, Mapping):
            for name, value in scores.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.scores.setdefault(str(name), []).append(float(value))
        meta = record.get("meta")
        if isinstance(meta, Mapping) and "source" in meta:
            self.sources[str(meta["source"])] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(dict(record))


def require_dir(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise CurateError(f"{path}: not a folder (expected a run folder with curated.jsonl and friends)")
    return path
