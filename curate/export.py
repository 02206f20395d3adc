"""`curate export`: records -> a hub-ready folder that ``datasets.load_dataset(folder)`` loads.

    curate export curated.jsonl --out my-dataset [--format parquet|jsonl] [--split-eval 0.05]

writes::

    my-dataset/
      README.md                                   dataset card (YAML metadata + provenance), see curate.card
      data/train-00000-of-00002.parquet ...       shards of at most --max-shard-size (uncompressed)
      data/test-00000-of-00001.parquet            with --split-eval
      provenance/manifest.json, filter_report.json, filter_config.yaml   when the stages left them

The columns (one schema for every source, so the shards and the card agree):

    id        string                       the record id (content hash)
    messages  list<struct<role, content>>  the conversation, Hugging Face chat format
    scores    struct<name: float64|int64>  quality scores; null when the record has none
    meta_<k>  bool|int64|float64|string    typed copies of scalar meta fields (for filtering and the viewer)
    meta      string                       the whole meta object as JSON: the source of truth

``meta`` differs from source to source (Alpaca rows carry ``instruction``/``input``, seed
tasks carry ``instances`` lists, generated rows carry token counts), and Parquet needs one
type per column. So the full object travels as a JSON string, which round-trips exactly,
and each top-level meta key whose values are scalars of one type in every row (strings of
at most 200 characters: labels, not texts) is also promoted to a typed ``meta_<key>`` column. Reading back (``read_export``, and ``curate
import FOLDER``) uses only ``id``, ``messages``, ``scores`` and ``meta``, so records come
back identical. A score named in some rows is int64 when every value is an integer, else
float64.

The eval split is chosen by a seeded hash of the id: exact in size, stable across
re-exports, and every copy of an id lands in the same split.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import CurateError, InputError, RecordError
from curate.jsonl import dumps, iter_json_rows, iter_valid
from curate.records import validate_record
from curate.runinfo import RecordStats, RunFiles, find_run_files

SCHEMA_TAG = "curate.export/1"
FORMATS = ("parquet", "jsonl")
SPLIT_ORDER = ("train", "validation", "test")
MAX_PROMOTED = 64
MAX_PROMOTED_CHARS = 200
_SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.(?P<ext>parquet|jsonl)$")
_PROMOTABLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_ROWS_PER_WRITE = 1000  # also the Parquet row-group size: small enough for the hub's viewer


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

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.format not in FORMATS:
            raise CurateError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not 0.0 <= self.split_eval < 1.0:
            raise CurateError(f"--split-eval must be a fraction in [0, 1), got {self.split_eval}")
        if self.max_shard_bytes <= 0:
            raise CurateError("--max-shard-size must be positive")


@dataclass
class ExportResult:
    out: Path
    splits: dict[str, int]
    shards: dict[str, list[Path]]
    card: Path
    promoted: list[str]
    evidence: list[Path]


# -- the column plan ----------------------------------------------------------------------

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


def record_to_row(record: Mapping[str, Any], plan: ColumnPlan) -> dict[str, Any]:
    """One record as a row of the export schema."""
    row: dict[str, Any] = {
        "id": record["id"],
        "messages": [{"role": m["role"], "content": m["content"]} for m in record["messages"]],
    }
    if plan.score_kinds:
        scores = record.get("scores")
        row["scores"] = None if scores is None else {
            name: (None if name not in scores else (float(scores[name]) if kind == "float64" else scores[name]))
            for name, kind in plan.score_types.items()
        }
    meta = record["meta"]
    for key, kind in plan.promoted.items():
        value = meta.get(key)
        row[f"meta_{key}"] = float(value) if kind == "float64" and value is not None else value
    row["meta"] = dumps(meta)
    return row


def row_to_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """The record an exported row came from (promoted ``meta_*`` copies are ignored)."""
    if not isinstance(row, Mapping):
        raise RecordError("<row>", f"expected an object, got {type(row).__name__}")
    try:
        meta = json.loads(row["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise RecordError("meta", f"expected a JSON object string ({err})") from None
    try:
        messages = [{"role": m["role"], "content": m["content"]} for m in row.get("messages") or []]
    except (KeyError, TypeError):
        raise RecordError("messages", "expected a list of {role, content}") from None
    record: dict[str, Any] = {"id": row.get("id"), "messages": messages, "meta": meta}
    scores = row.get("scores")
    if scores is not None:
        record["scores"] = {name: value for name, value in scores.items() if value is not None}
    return validate_record(record)


# -- splits and shards --------------------------------------------------------------------

def choose_eval_ids(ids: list[str], fraction: float, seed: int) -> set[str]:
    """The ids of the held-out split: exactly round(fraction * unique ids), by a seeded hash."""
    unique = list(dict.fromkeys(ids))
    if fraction <= 0 or len(unique) < 2:
        return set()
    count = min(len(unique) - 1, max(1, round(fraction * len(unique))))
    ranked = sorted(unique, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
    return set(ranked[:count])


def plan_shards(sizes: list[int], max_bytes: int) -> list[int]:
    """Rows per shard, in order: a new shard starts before the row that would overflow."""
    shards: list[int] = []
    rows = used = 0
    for size in sizes:
        if rows and used + size > max_bytes:
            shards.append(rows)
            rows = used = 0
        rows += 1
        used += size
    if rows:
        shards.append(rows)
    return shards


def shard_name(split: str, index: int, total: int, fmt: str) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.{fmt}"


class _ShardWriter:
    """Writes one split's rows into its planned shards, rotating files at the planned counts."""

    def __init__(self, folder: Path, split: str, counts: list[int], schema: Any, fmt: str):
        self.folder, self.split, self.counts, self.schema, self.fmt = folder, split, counts, schema, fmt
        self.paths: list[Path] = []
        self._index = -1
        self._left = 0
        self._buffer: list[dict[str, Any]] = []
        self._handle: Any = None

    def write(self, row: dict[str, Any]) -> None:
        if self._left == 0:
            self._open_next()
        self._buffer.append(row)
        self._left -= 1
        if len(self._buffer) >= _ROWS_PER_WRITE or self._left == 0:
            self._flush()
        if self._left == 0:
            self._close_current()

    def _open_next(self) -> None:
        self._index += 1
        if self._index >= len(self.counts):
            raise CurateError("the input changed while it was being exported (more rows than in the first pass)")
        path = self.folder / shard_name(self.split, self._index, len(self.counts), self.fmt)
        self.paths.append(path)
        self._left = self.counts[self._index]
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            # zstd level 3: a third smaller than pyarrow's default level 1 at the same speed (bench/results/export.md)
            self._handle = pq.ParquetWriter(path, self.schema, compression="zstd", compression_level=3)
        else:
            self._handle = path.open("w", encoding="utf-8")

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self.fmt == "parquet":
            import pyarrow as pa

            self._handle.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
        else:
            self._handle.write("".join(dumps(row) + "\n" for row in self._buffer))
        self._buffer = []

    def _close_current(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        self._flush()
        self._close_current()
        if self._index != len(self.counts) - 1:
            raise CurateError("the input changed while it was being exported (fewer rows than in the first pass)")


# -- the export ---------------------------------------------------------------------------

@dataclass
class ScanResult:
    """What the first pass learned: enough to plan columns, splits and shards, and the card."""

    plan: ColumnPlan
    ids: list[str]
    sizes: list[int]
    stats: RecordStats


def _tracked(rows: Iterator[Any], description: str, total: int | None, enabled: bool) -> Iterator[Any]:
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
    for line_no, record in _tracked(iter_valid(path, validate_record), "export: checking", None, progress):
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


def export_records(source: str | os.PathLike[str], config: ExportConfig, progress: bool = False) -> ExportResult:
    """Write the hub-ready folder for the records in ``source`` (see the module docstring)."""
    from curate.card import read_existing_card, write_card

    source = Path(source)
    out = config.out
    if out.exists() and not out.is_dir():
        raise CurateError(f"{out}: exists and is not a folder")
    existing_card = read_existing_card(out / "README.md")  # a card we cannot merge stops us before any write
    scan = scan_records(source, config.examples, progress)
    eval_ids = choose_eval_ids(scan.ids, config.split_eval, config.seed)
    split_of = ["test" if i in eval_ids else "train" for i in scan.ids]
    split_sizes: dict[str, list[int]] = {}
    for split, size in zip(split_of, scan.sizes, strict=True):
        split_sizes.setdefault(split, []).append(size)
    splits = {s: len(split_sizes[s]) for s in SPLIT_ORDER if s in split_sizes}
    schema = scan.plan.arrow_schema()

    out.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    staging = Path(tempfile.mkdtemp(prefix=".data-", dir=out))
    try:
        writers = {
            split: _ShardWriter(staging, split, plan_shards(split_sizes[split], config.max_shard_bytes), schema,
                                config.format)
            for split in splits
        }
        # ids were checked in the first pass; here each row only has to match it
        second_pass = iter_valid(source, lambda value: validate_record(value, check_id=False))
        for index, (_, record) in enumerate(_tracked(second_pass, "export: writing", len(scan.ids), progress)):
            if index >= len(scan.ids) or record["id"] != scan.ids[index]:
                raise CurateError(f"{source}: changed while it was being exported; run the export again")
            writers[split_of[index]].write(record_to_row(record, scan.plan))
        for writer in writers.values():
            writer.close()
        _swap_in(staging, out / "data")
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    files = find_run_files(source.parent, curated=source)
    evidence = _copy_evidence(files, out / "provenance")
    shards = {split: sorted((out / "data").glob(f"{split}-*.{config.format}")) for split in splits}
    split_bytes = {s: sum(split_sizes[s]) for s in splits}
    card = write_card(out, config, files, scan, splits, split_bytes, shards, schema, evidence, existing_card)
    return ExportResult(out, splits, shards, card, list(scan.plan.promoted), evidence)


def _remove_leftovers(out: Path) -> None:
    """Staging folders a killed export left behind (they would otherwise be pushed with the rest)."""
    for pattern in (".data-*", ".provenance-*"):
        for path in out.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with two renames, so readers never see half a folder."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _copy_evidence(files: RunFiles, folder: Path) -> list[Path]:
    """Copy the stage manifests, configs and reports verbatim beside the data."""
    docs = files.evidence()
    if not docs:
        shutil.rmtree(folder, ignore_errors=True)  # an earlier export's files would describe other data
        return []
    staging = Path(tempfile.mkdtemp(prefix=".provenance-", dir=folder.parent))
    try:
        copied = []
        for doc in docs:
            shutil.copyfile(doc.path, staging / doc.path.name)
            copied.append(folder / doc.path.name)
        _swap_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return copied


# -- reading an export back ---------------------------------------------------------------

def export_shards(path: str | os.PathLike[str]) -> list[Path]:
    """The shard files of an exported folder (train, validation, test, then others), or one file."""
    path = Path(path)
    if path.is_file():
        return [path]
    data = path / "data"
    if not data.is_dir():
        raise CurateError(f"{path}: not an exported dataset folder (no data/ inside)")
    shards = [p for p in data.iterdir() if _SHARD_NAME.match(p.name)]
    if not shards:
        raise CurateError(f"{data}: no shards named like train-00000-of-00001.parquet")

    def order(p: Path) -> tuple[int, str, int]:
        match = _SHARD_NAME.match(p.name)
        assert match is not None
        split = match["split"]
        rank = SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER)
        return rank, split, int(match["index"])

    return sorted(shards, key=order)


def read_export(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Records of an exported folder (or one shard), validated; errors name the shard and row."""
    for shard in export_shards(path):
        for row_no, row in _iter_shard_rows(shard):
            try:
                yield row_to_record(row)
            except RecordError as err:
                raise InputError(str(shard), row_no, err.field, err.reason) from None


def _iter_shard_rows(shard: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if shard.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(shard)
        except Exception as err:  # pyarrow raises several types for a bad file
            raise InputError(str(shard), None, None, f"not a readable Parquet file ({err})") from None
        missing = {"id", "messages", "meta"} - set(parquet.schema_arrow.names)
        if missing:
            raise InputError(str(shard), None, sorted(missing)[0], "column missing (not a curate export)")
        row_no = 0
        for batch in parquet.iter_batches(batch_size=_ROWS_PER_WRITE):
            for row in batch.to_pylist():
                row_no += 1
                yield row_no, row
    else:
        yield from iter_json_rows(shard)


def parse_size(text: str) -> int:
    """'500MB', '2GB', '64KiB', '1000' -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", text, re.IGNORECASE)
    if not match:
        raise CurateError(f"--max-shard-size: cannot read {text!r} (examples: 500MB, 2GB, 64KiB)")
    number, unit, binary = float(match[1]), match[2].upper(), bool(match[3])
    base = 1024 if binary else 1000
    return int(number * base ** " KMGT".index(unit or " "))
