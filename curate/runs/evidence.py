"""What a run left on disk, read through one typed reader per stage file, and the numbers the card and report show.

Every stage writes its outputs and its evidence beside each other (names: :mod:`curate.runs.names`):

    generated.jsonl  manifest.json  errors.jsonl  rejected_candidates.jsonl        (curate generate)
    curated.jsonl    rejected.jsonl filter_report.json  filter_config.yaml         (curate filter; STEM.* for other stems)
    runs/NAME/config.yaml  metrics.json  loss_curve.png                            (curate train)
    compare/<name>/results.json  *.png                                             (curate compare)
    eval/<name>/eval.json                                                          (curate eval)

Each evidence file has one reader here (:class:`Manifest`, :class:`FilterReport`, :class:`FilterSettings`,
:class:`TrainRun`) whose fields are the keys the stage writes, so the card and the report read typed
fields instead of searching for likely key names. ``find_run_files`` looks for the files in one
folder (and follows a filter report's ``input`` to the generated file's folder); nothing is
required, a missing file is ``None``, a broken one a noted problem. The funnel is counted from the
data itself (kept rows plus the rejected rows' ``reject.stage``/``reject.reason``), so it cannot
disagree with the files.

    from curate.runs.evidence import find_run_files, compute_funnel
    files = find_run_files("runs/demo")
    files.manifest.teacher, files.filter_report.kept
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curate.errors import CurateError, InputError
from curate.records.jsonl import iter_json_rows
from curate.runs import names

CURATED = names.CURATED
GENERATED = names.GENERATED
REJECTED = names.REJECTED
ERRORS = names.GENERATE_ERRORS
MANIFEST = names.MANIFEST
FILTER_REPORT = names.FILTER_REPORT
FILTER_CONFIG = names.FILTER_CONFIG


@dataclass
class StageDoc:
    """One evidence file as the stage wrote it: parsed value plus its raw text."""

    path: Path
    value: Any
    text: str


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
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a mapping at the top, got {type(value).__name__}")
        return None
    return StageDoc(path, value, text)


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- one reader per stage file ------------------------------------------------------------

@dataclass
class Manifest:
    """``manifest.json`` of ``curate generate`` (generators/run.py writes these keys)."""

    doc: StageDoc
    teacher: str | None
    engine: str | None
    preset: str | None
    status: str | None
    seeds_path: str | None
    seeds_sha256: str | None
    seeds_count: int | None
    seeds_license: str | None
    config: dict[str, Any]
    totals: dict[str, Any]

    @classmethod
    def from_doc(cls, doc: StageDoc) -> Manifest:
        v = doc.value
        seeds, config, engine = _dict(v.get("seeds")), _dict(v.get("config")), v.get("engine")
        engine_name = engine.get("name") if isinstance(engine, Mapping) else engine
        teacher = v.get("teacher") or (engine.get("model") if isinstance(engine, Mapping) else None)
        return cls(doc, str(teacher) if teacher else None, str(engine_name) if engine_name else None,
                   config.get("preset"), v.get("status"), seeds.get("path"), seeds.get("sha256"),
                   _int(seeds.get("count")), seeds.get("license"), config, _dict(v.get("totals")))

    @property
    def rejected(self) -> dict[str, int]:
        """Candidates generation dropped before writing rows, by reason, largest first."""
        counts = {str(k): n for k, v in _dict(self.totals.get("rejected")).items() if (n := _int(v))}
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


@dataclass
class FilterReport:
    """``filter_report.json`` of ``curate filter`` (curate/filtering writes these keys)."""

    doc: StageDoc
    input: str | None
    rows_in: int | None
    kept: int | None
    rejected: int | None
    rejected_by_reason: dict[str, int]
    rejected_by_stage: dict[str, int]
    stages: list[dict[str, Any]]
    preset: str | None
    decontaminate: list[dict[str, Any]]
    near_dedup: dict[str, Any] | None
    exact_dedup: dict[str, Any] | None

    @classmethod
    def from_doc(cls, doc: StageDoc) -> FilterReport:
        v = doc.value
        stages = [dict(s) for s in v.get("stages") or [] if isinstance(s, Mapping) and "stage" in s]
        decon = [dict(e) for e in v.get("decontaminate") or [] if isinstance(e, Mapping)]
        return cls(doc, v.get("input") if isinstance(v.get("input"), str) else None, _int(v.get("in")),
                   _int(v.get("kept")), _int(v.get("rejected")),
                   {str(k): n for k, n in _dict(v.get("rejected_by_reason")).items() if _int(n)},
                   {str(k): n for k, n in _dict(v.get("rejected_by_stage")).items() if _int(n) is not None},
                   stages, v.get("preset"), decon, v.get("near_dedup") if isinstance(v.get("near_dedup"), Mapping)
                   else None, v.get("exact_dedup") if isinstance(v.get("exact_dedup"), Mapping) else None)

    @property
    def active_stages(self) -> list[str]:
        return [str(s["stage"]) for s in self.stages if s.get("active", True)]


@dataclass
class FilterSettings:
    """``filter_config.yaml``: the resolved filter settings (FilterConfig.as_dict)."""

    doc: StageDoc
    preset: str | None
    filters: list[str]
    thresholds: dict[str, Any]
    exact_dedup: bool | None
    dedup: dict[str, Any] | None
    decontaminate: list[str]
    decontam_ngram: int | None
    against: list[str]

    @classmethod
    def from_doc(cls, doc: StageDoc) -> FilterSettings:
        v = doc.value
        return cls(doc, v.get("preset"), [str(f) for f in v.get("filters") or []], _dict(v.get("thresholds")),
                   v.get("exact_dedup"), v.get("dedup") if isinstance(v.get("dedup"), Mapping) else None,
                   [str(p) for p in v.get("decontaminate") or []], _int(v.get("decontam_ngram")),
                   [str(p) for p in v.get("against") or []])


@dataclass
class ImportReport:
    """``STEM.import.json`` of ``curate import``: per source its name, container, format, rows and licence."""

    doc: StageDoc
    output: str | None
    sources: list[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: StageDoc) -> ImportReport:
        v = doc.value
        return cls(doc, v.get("output"), [dict(s) for s in v.get("sources") or [] if isinstance(s, Mapping)])

    def licenses(self) -> dict[str, str | None]:
        """source name -> the licence its own card or dataset info declared (None when it declared none)."""
        return {str(s.get("name")): (str(s["license"]) if s.get("license") else None) for s in self.sources}


@dataclass
class TrainRun:
    """A ``curate train`` folder: ``config.yaml`` (resolved recipe + ``run``) and ``metrics.json``."""

    folder: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    images: list[Path]

    @property
    def model(self) -> str | None:
        return _dict(self.config.get("run")).get("base_model") or self.config.get("model")

    @property
    def method(self) -> str:
        named = {"hft": "Half Fine-Tuning", "full": "full fine-tuning", "qlora": "QLoRA"}  # `curate train --method`
        if self.config.get("method") in named:
            return named[self.config["method"]]
        quant = self.config.get("quantization")
        peft = "LoRA" if self.config.get("lora") else "full fine-tuning"
        return f"Q{peft}" if quant in ("nf4", "fp4") and peft == "LoRA" else peft

    @property
    def data(self) -> str | None:
        data = _dict(self.config.get("run")).get("data")
        return Path(str(data)).name if data else None

    @property
    def max_length(self) -> int | None:
        return _int(_dict(self.config.get("sft")).get("max_length"))

    @property
    def steps(self) -> int | None:
        return _int(self.metrics.get("steps"))

    @property
    def train_loss(self) -> list[dict[str, Any]]:
        return [e for e in self.metrics.get("train_loss") or [] if isinstance(e, Mapping)]

    @property
    def eval_loss(self) -> list[dict[str, Any]]:
        return [e for e in self.metrics.get("eval_loss") or [] if isinstance(e, Mapping)]

    def title(self) -> str:
        """What ran, in words: model, method, data, steps."""
        model = Path(str(self.model)).name if self.model else "a model"
        steps = f"{self.steps:,} steps" if self.steps is not None else "steps unknown"
        return f"{model}, {self.method}, on {self.data or 'unknown data'}, {steps}"


@dataclass
class EvalResults:
    """``eval.json`` of `curate eval`: the eval set (path, sha256), per-model metrics with CIs, judged pairs."""

    path: Path
    eval_set: dict[str, Any]
    models: dict[str, Any]
    judged: list[dict[str, Any]]
    results: list[dict[str, Any]]

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> EvalResults:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(Path(path), value["eval_set"], value["models"], value.get("judged", []), value.get("results", []))


@dataclass
class CompareResults:
    """``results.json`` of `curate compare`: one row per arm x size x seed, paired differences, the conclusion."""

    path: Path
    conclusion: str
    budget: str
    eval_set: dict[str, Any]
    paired: list[dict[str, Any]]
    results: list[dict[str, Any]]

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> CompareResults:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(Path(path), value["conclusion"], value["budget"], value["eval_set"], value["paired"],
                   value["results"])


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
    rejected_candidates: Path | None = None
    manifest: Manifest | None = None
    filter_report: FilterReport | None = None
    filter_config: FilterSettings | None = None
    extra_docs: list[StageDoc] = field(default_factory=list)
    imports: list[ImportReport] = field(default_factory=list)
    train: list[TrainRun] = field(default_factory=list)
    compare: list[CompareRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def evidence(self) -> list[StageDoc]:
        docs = [d.doc for d in (*self.imports, self.manifest, self.filter_config, self.filter_report) if d is not None]
        return docs + self.extra_docs

    @property
    def generated_here(self) -> bool:
        """Whether `curate generate` made the rows (its manifest was found): the only proof we accept."""
        return self.manifest is not None


def _typed(path: Path, reader: Any, problems: list[str]) -> Any:
    doc = read_doc(path, problems)
    return reader.from_doc(doc) if doc is not None else None


def find_run_files(folder: str | os.PathLike[str], curated: str | os.PathLike[str] | None = None) -> RunFiles:
    """Everything the stages left in ``folder`` (the curated file may be named explicitly)."""
    folder = Path(folder)
    files = RunFiles(folder)

    def present(path: Path) -> Path | None:
        return path if path.is_file() else None

    kept = Path(curated) if curated else _default_curated(folder)
    paths = names.filter_paths(kept)
    check_output_set(kept, files.problems)
    files.curated = present(kept)
    files.rejected = present(paths.rejected)
    files.filter_report = _typed(paths.report, FilterReport, files.problems)
    files.filter_config = _typed(paths.config, FilterSettings, files.problems)
    gen = names.generate_paths(folder / GENERATED)
    if not gen.out.is_file() and files.filter_report and files.filter_report.input:
        # filter may have read generated.jsonl from another folder; its report says which
        pointed = Path(files.filter_report.input)
        pointed = pointed if pointed.is_absolute() or not (folder / pointed).exists() else folder / pointed
        if pointed.is_file() and (pointed.parent / MANIFEST).is_file():
            gen = names.generate_paths(pointed)
    files.generated = present(gen.out)
    files.manifest = _typed(gen.manifest, Manifest, files.problems)
    files.errors = present(gen.errors)
    files.rejected_candidates = present(gen.rejected)
    files.imports = _lineage_imports(folder, kept, files)
    files.train = _find_train_runs(folder)
    files.compare = _find_compare_runs(folder)
    return files


def check_output_set(primary: Path, problems: list[str]) -> None:
    """Read a stage's files only as one run's set: finish a commit a killed run left half done,
    refuse a mix of runs (CurateError), note files edited after their run (curate.runs.commit)."""
    from curate.runs.commit import journal_members, read_set

    status = read_set(journal_members(primary))
    if status.state == "modified":
        problems.append(f"{primary.parent}: {status.describe()}")


def _lineage_imports(folder: Path, kept: Path, files: RunFiles) -> list[ImportReport]:
    """Import reports of the rows at hand: the import wrote the kept file itself, or the file filter read.

    Another import in the same folder (an eval set, say) is not this data's provenance.
    """
    wanted = {kept.name}
    if files.filter_report is not None and files.filter_report.input:
        wanted.add(Path(files.filter_report.input).name)
    reports = []
    for path in sorted(folder.glob(f"*.{names.IMPORT_REPORT}")):
        report = _typed(path, ImportReport, files.problems)
        if report is not None and report.output in wanted:
            reports.append(report)
    return reports


def _default_curated(folder: Path) -> Path:
    """curated.jsonl, or STEM.jsonl when the folder holds exactly one STEM.filter_report.json."""
    if (folder / CURATED).is_file() or (folder / FILTER_REPORT).is_file():
        return folder / CURATED
    reports = sorted(folder.glob(f"*.{FILTER_REPORT}"))
    return names.curated_for_report(reports[0]) if len(reports) == 1 else folder / CURATED


def _find_train_runs(folder: Path) -> list[TrainRun]:
    runs = []
    for metrics in sorted({*folder.glob(names.TRAIN_METRICS), *folder.glob(f"*/{names.TRAIN_METRICS}"),
                           *folder.glob(f"runs/*/{names.TRAIN_METRICS}")}):
        problems: list[str] = []
        check_output_set(metrics.parent / names.TRAIN_CONFIG, problems)
        doc = read_doc(metrics, problems)
        config = read_doc(metrics.parent / names.TRAIN_CONFIG, problems)
        if doc is not None:
            runs.append(TrainRun(metrics.parent, config.value if config else {}, doc.value,
                                 sorted(metrics.parent.glob("*.png"))))
    return runs


def _find_compare_runs(folder: Path) -> list[CompareRun]:
    """Folders holding a compare ``results.json``, with their PNG curves."""
    runs = []
    seen: set[Path] = set()
    for pattern in (f"compare/**/{names.COMPARE_RESULTS}", f"*/{names.COMPARE_RESULTS}", names.COMPARE_RESULTS,
                    f"eval/*/{names.EVAL_RESULTS}", f"*/{names.EVAL_RESULTS}", names.EVAL_RESULTS):  # curate eval
        for results in sorted(folder.glob(pattern)):
            if results.parent in seen:
                continue
            seen.add(results.parent)
            problems: list[str] = []
            doc = read_doc(results, problems)
            runs.append(CompareRun(results.parent, doc.value if doc else None, sorted(results.parent.glob("*.png"))))
    return runs


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
    return files.filter_report.active_stages if files.filter_report else []


def generation_rejects(files: RunFiles) -> dict[str, int]:
    """Candidates the generator dropped before writing rows (manifest ``totals.rejected``)."""
    return files.manifest.rejected if files.manifest else {}


def _reject_counts_from_report(files: RunFiles) -> Counter:
    """(stage, reason) counts from filter_report.json when there is no rejected.jsonl to count."""
    report = files.filter_report
    if report is None:
        return Counter()
    stages = [s for s in report.active_stages if report.rejected_by_stage.get(s)]
    if len(stages) == 1:
        return Counter({(stages[0], reason): n for reason, n in report.rejected_by_reason.items()})
    return Counter({("filter", reason): n for reason, n in report.rejected_by_reason.items()})


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
    sources: Counter = field(default_factory=Counter)  # meta.source: where rows came from
    formats: Counter = field(default_factory=Counter)  # meta.format: the format imported rows had
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
        if isinstance(meta, Mapping) and "format" in meta:
            self.formats[str(meta["format"])] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(dict(record))


def require_dir(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise CurateError(f"{path}: not a folder (expected a run folder with curated.jsonl and friends)")
    return path
