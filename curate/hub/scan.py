"""The export's first pass: the config, and what one pass over the records learns (columns, sizes, stats).

Both the writer (curate.hub.export) and the card (curate.hub.card) build on these types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import CurateError, InputError
from curate.records import validate_record
from curate.records.jsonl import dumps, iter_valid
from curate.records.shards import SCHEMA_TAG
from curate.runs.evidence import RecordStats

FORMATS = ("parquet", "jsonl")

MAX_PROMOTED = 64
MAX_PROMOTED_CHARS = 200
_PROMOTABLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass
class ExportConfig:
    """What `curate export` was asked for."""

    out: Path
    format: str = "parquet"
    split_eval: float = 0.0  # fraction of ids held out as the ``test`` split
    seed: int = 0  # salts the split hash; the same seed gives the same split
    max_shard_bytes: int = 500_000_000  # uncompressed, like datasets' push_to_hub
    license: str | None = None
    language: list[str] | None = None
    pretty_name: str | None = None
    repo_id: str | None = None  # shown in the card's usage snippet
    examples: int = 3
    strict: bool = False  # duplicate ids are an error instead of a warning

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.format not in FORMATS:
            raise CurateError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not 0.0 <= self.split_eval < 1.0:
            raise CurateError(f"--split-eval must be a fraction in [0, 1), got {self.split_eval}")
        if self.max_shard_bytes <= 0:
            raise CurateError("--max-shard-size must be positive")


@dataclass
class ColumnPlan:
    """Which typed columns the data needs, learned in one pass over the records."""

    score_kinds: dict[str, set[str]] = field(default_factory=dict)
    meta_kinds: dict[str, set[str]] = field(default_factory=dict)
    longest: dict[str, int] = field(default_factory=dict)  # longest string per meta key

    def observe(self, record: Mapping[str, Any]) -> None:
        for name, value in (record.get("scores") or {}).items():
            self.score_kinds.setdefault(name, set()).add("int" if isinstance(value, int) else "float")
        for key, value in record["meta"].items():
            self.meta_kinds.setdefault(key, set()).add(_scalar_kind(value))
            if isinstance(value, str) and len(value) > self.longest.get(key, 0):
                self.longest[key] = len(value)

    @property
    def score_types(self) -> dict[str, str]:
        return {name: "int64" if kinds == {"int"} else "float64" for name, kinds in self.score_kinds.items()}

    @property
    def promoted(self) -> dict[str, str]:
        """meta key -> Arrow type name, for keys that hold one scalar type (nulls allowed)."""
        out: dict[str, str] = {}
        for key, kinds in self.meta_kinds.items():
            kinds = kinds - {"null"}
            if not kinds or "other" in kinds or not _PROMOTABLE_KEY.match(key):
                continue
            if kinds == {"bool"}:
                out[key] = "bool"
            elif kinds == {"int"}:
                out[key] = "int64"
            elif kinds <= {"int", "float"}:
                out[key] = "float64"
            elif kinds == {"str"} and self.longest.get(key, 0) <= MAX_PROMOTED_CHARS:
                out[key] = "string"  # labels and ids, not texts: those are in messages and meta already
            if len(out) == MAX_PROMOTED:
                break
        return out

    def arrow_schema(self) -> Any:
        import pyarrow as pa

        types = {"bool": pa.bool_(), "int64": pa.int64(), "float64": pa.float64(), "string": pa.string()}
        fields = [
            pa.field("id", pa.string()),
            pa.field("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ]
        if self.score_kinds:
            fields.append(pa.field("scores", pa.struct([(n, types[t]) for n, t in self.score_types.items()])))
        fields += [pa.field(f"meta_{key}", types[t]) for key, t in self.promoted.items()]
        fields.append(pa.field("meta", pa.string()))
        note = {"format": SCHEMA_TAG, "meta": "JSON string; meta_* columns are typed copies"}
        return pa.schema(fields, metadata={"curate": json.dumps(note)})


def _scalar_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "other"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "other"


@dataclass
class ScanResult:
    """What the first pass learned: enough to plan columns, splits and shards, and the card."""

    plan: ColumnPlan
    ids: list[str]
    sizes: list[int]
    stats: RecordStats


def tracked(rows: Iterator[Any], description: str, total: int | None, enabled: bool) -> Iterator[Any]:
    """``rows`` with a progress bar on stderr when ``enabled`` (a terminal), else as they are."""
    if not enabled:
        yield from rows
        return
    from rich.console import Console
    from rich.progress import track

    yield from track(rows, description=description, total=total, transient=True, console=Console(stderr=True))


def scan_records(path: Path, examples: int = 3, progress: bool = False) -> ScanResult:
    """First pass: validate every record and learn the column plan and the row sizes."""
    plan, ids, sizes = ColumnPlan(), [], []
    stats = RecordStats(max_examples=examples)
    for line_no, record in tracked(iter_valid(path, validate_record), "export: checking", None, progress):
        _check_exportable(record, path, line_no)
        plan.observe(record)
        ids.append(record["id"])
        sizes.append(len(dumps(record).encode()))
        stats.add(record)
    if not ids:
        raise InputError(str(path), None, None, "has no records to export")
    return ScanResult(plan, ids, sizes, stats)


def _check_exportable(record: Mapping[str, Any], path: Path, line_no: int) -> None:
    if "reject" in record:
        raise InputError(str(path), line_no, "reject", "is a rejected row; export the curated (kept) file")
    for i, message in enumerate(record["messages"]):
        extra = sorted(set(message) - {"role", "content"})
        if extra:
            raise InputError(str(path), line_no, f"messages[{i}].{extra[0]}",
                             "messages hold role and content only; re-import the file with `curate import`")

