"""The file names every stage writes, and the one rule that derives sibling names from an output's stem.

Writers (generate, filter, train, import, score, select, eval, compare) and readers (the
dataset card, the report, resume) take their names from here, so a rename happens once.

The stem rule: an output's stem is its name without ``.gz``, then without ``.jsonl``/``.json``/
``.parquet``. A sibling of ``OUT`` is ``STEM.NAME`` beside it, except where the stem is the
stage's own default (``curated`` for filter), whose siblings go unprefixed::

    curated.jsonl      -> rejected.jsonl, filter_report.json, filter_config.yaml
    mix.jsonl          -> mix.rejected.jsonl, mix.filter_report.json, mix.filter_config.yaml
    records.jsonl.gz   -> records.invalid.jsonl   (import/filter --skip-invalid: always prefixed)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from curate.records.sources import file_stem

# generate (all beside --out, unprefixed: one run per folder)
GENERATED = "generated.jsonl"
GENERATE_ERRORS = "errors.jsonl"
REJECTED_CANDIDATES = "rejected_candidates.jsonl"
MANIFEST = "manifest.json"
GENERATE_BATCHES = "batches.jsonl"  # the batch ledger (generators/run.py)
# filter
CURATED = "curated.jsonl"
REJECTED = "rejected.jsonl"
FILTER_REPORT = "filter_report.json"
FILTER_CONFIG = "filter_config.yaml"
# import / filter --skip-invalid
INVALID = "invalid.jsonl"
IMPORT_REPORT = "import.json"  # STEM.import.json beside `curate import --out STEM.jsonl`
# train (inside runs/NAME/)
TRAIN_CONFIG = "config.yaml"
TRAIN_METRICS = "metrics.json"
LOSS_CURVE = "loss_curve.png"
# score / select / eval / compare (their stages add readers in curate.runs.evidence)
SCORE_REPORT = "score_report.json"
SELECT_REPORT = "select_report.json"
EVAL_RESULTS = "eval.json"
COMPARE_RESULTS = "results.json"

# The evidence each stage leaves beside its output: one place that says which file proves what ran.
# (Historical names differ per stage; they stay, since users' folders and scripts use them.)
EVIDENCE = {
    "import": (IMPORT_REPORT,),
    "generate": (MANIFEST,),
    "filter": (FILTER_REPORT, FILTER_CONFIG),
    "score": (SCORE_REPORT,),
    "select": (SELECT_REPORT,),
    "train": (TRAIN_CONFIG, TRAIN_METRICS),
    "eval": (EVAL_RESULTS,),
    "compare": (COMPARE_RESULTS,),
}


def stem(path: str | os.PathLike[str]) -> str:
    """``curated.jsonl.gz`` -> ``curated``; ``mix.json`` -> ``mix``; ``notes.txt`` -> ``notes.txt``."""
    return file_stem(path)


def sibling(out: str | os.PathLike[str], name: str, plain_stem: str | None = None) -> Path:
    """``name`` beside ``out``, prefixed with ``out``'s stem unless that stem is ``plain_stem``."""
    out = Path(out)
    base = stem(out)
    return out.with_name(name if base == plain_stem else f"{base}.{name}")


def prefix_of(evidence: str | os.PathLike[str], name: str) -> str | None:
    """The stem prefix of a sibling file (``mix.`` for ``mix.filter_report.json``), '' if unprefixed, else None."""
    file = Path(evidence).name
    if file == name:
        return ""
    return file.removesuffix(name) if file.endswith("." + name) else None


def import_report_path(out: str | os.PathLike[str]) -> Path:
    """Where `curate import --out OUT` records its sources (``records.jsonl`` -> ``records.import.json``)."""
    return sibling(out, IMPORT_REPORT)


def quarantine_path(out: str | os.PathLike[str]) -> Path:
    """Where ``--skip-invalid`` sets bad rows aside for output ``out``."""
    return sibling(out, INVALID)


@dataclass(frozen=True)
class FilterPaths:
    curated: Path
    rejected: Path
    report: Path
    config: Path

    def as_dict(self) -> dict[str, Path]:
        return {"curated": self.curated, "rejected": self.rejected, "report": self.report, "config": self.config}


def filter_paths(out: str | os.PathLike[str]) -> FilterPaths:
    """The files ``curate filter --out OUT`` writes."""
    out = Path(out)
    plain = stem(CURATED)
    return FilterPaths(out, sibling(out, REJECTED, plain), sibling(out, FILTER_REPORT, plain),
                       sibling(out, FILTER_CONFIG, plain))


def curated_for_report(report: str | os.PathLike[str]) -> Path:
    """The kept-rows file a filter report belongs to (``mix.filter_report.json`` -> ``mix.jsonl``)."""
    report = Path(report)
    prefix = prefix_of(report, FILTER_REPORT)
    return report.with_name(f"{prefix}jsonl" if prefix else CURATED)


@dataclass(frozen=True)
class GeneratePaths:
    out: Path
    errors: Path
    rejected: Path
    manifest: Path


def generate_paths(out: str | os.PathLike[str]) -> GeneratePaths:
    """The files ``curate generate --out OUT`` writes: the logs and manifest sit beside OUT, unprefixed."""
    out = Path(out)
    return GeneratePaths(out, out.parent / GENERATE_ERRORS, out.parent / REJECTED_CANDIDATES, out.parent / MANIFEST)
