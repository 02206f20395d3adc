"""`curate export`: records -> a hub-ready folder that ``datasets.load_dataset(folder)`` loads.

    curate export curated.jsonl --out my-dataset [--format parquet|jsonl] [--split-eval 0.05]

writes::

    my-dataset/
      README.md                                   dataset card (YAML metadata + provenance), see curate.hub.card
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
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.hub.scan import ColumnPlan, ExportConfig, scan_records, tracked
from curate.hub.tools import write_tool_files
from curate.records import validate_record
from curate.records.jsonl import dumps, iter_valid
from curate.records.shards import ROWS_PER_BATCH, SPLIT_ORDER, shard_name
from curate.runs.commit import output_folder
from curate.runs.evidence import RunFiles, find_run_files
from curate.runs.lock import locks_output
from curate.runs.redact import redact_text


@dataclass
class ExportResult:
    out: Path
    splits: dict[str, int]
    shards: dict[str, list[Path]]
    card: Path
    promoted: list[str]
    evidence: list[Path]


# -- the column plan ----------------------------------------------------------------------


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
        if len(self._buffer) >= ROWS_PER_BATCH or self._left == 0:
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


@locks_output("config.out", "curate export", folder=True)
def export_records(source: str | os.PathLike[str], config: ExportConfig, progress: bool = False) -> ExportResult:
    """Write the hub-ready folder for the records in ``source`` (see the module docstring).

    The whole folder is built beside ``config.out`` (a hard-linked copy of the old one, so files
    export does not write survive) and swapped in with one rename: data, card and provenance
    are always from the same run (curate.runs.commit.output_folder).
    """
    from curate.hub.card import read_existing_card

    source = Path(source)
    final = config.out
    if final.exists() and not final.is_dir():
        raise CurateError(f"{final}: exists and is not a folder")
    existing_card = read_existing_card(final / "README.md")  # a card we cannot merge stops us before any write
    scan = scan_records(source, config.examples, progress)
    _check_duplicate_ids(source, scan.ids, config.strict)
    with output_folder(final, keep_existing=True) as out:
        result = _export_into(source, config, scan, out, existing_card, progress)

    def rebase(path: Path) -> Path:
        return final / path.relative_to(out)

    return ExportResult(final, result.splits, {k: [rebase(p) for p in v] for k, v in result.shards.items()},
                        rebase(result.card), result.promoted, [rebase(p) for p in result.evidence])


def _check_duplicate_ids(source: Path, ids: list[str], strict: bool) -> None:
    """Duplicate ids are published rows twice: a notice, or an error with --strict."""
    counts = Counter(ids)
    dups = {i: n for i, n in counts.items() if n > 1}
    if not dups:
        return
    extra = sum(dups.values()) - len(dups)
    example = next(iter(dups))
    line = (f"{source}: {len(ids)} rows but {len(counts)} unique ids ({extra} duplicate row(s); "
            f"e.g. {example} x{dups[example]}); `curate filter` removes exact duplicates")
    if strict:
        raise CurateError(f"{line}; refusing with --strict")
    print(f"warning: {line}", file=sys.stderr, flush=True)


def _export_into(source: Path, config: ExportConfig, scan: Any, out: Path, existing_card: Any,
                 progress: bool) -> ExportResult:
    from curate.hub.card import write_card

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
        for index, (_, record) in enumerate(tracked(second_pass, "export: writing", len(scan.ids), progress)):
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
    write_tool_files(out, config.pretty_name or config.out.name, config.repo_id, shards, config.format)
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


def without_local_paths(value: Any, text: str) -> str:
    """``text`` with every absolute path found in its parsed ``value`` cut to the file's name.

    Stage files record where they read and wrote (``/home/me/.venv/.../seed_tasks.jsonl``); a
    published dataset must not carry the publisher's file system, so only names survive.
    """
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str) and os.path.isabs(node) and "\n" not in node:
            found.add(node)

    walk(value)
    for path in sorted(found, key=len, reverse=True):  # longest first: a path may contain a shorter one
        text = text.replace(path, Path(path).name)
    return text


def _copy_evidence(files: RunFiles, folder: Path) -> list[Path]:
    """Copy the stage manifests, configs and reports beside the data, local paths cut to file names."""
    docs = files.evidence()
    if not docs:
        shutil.rmtree(folder, ignore_errors=True)  # an earlier export's files would describe other data
        return []
    staging = Path(tempfile.mkdtemp(prefix=".provenance-", dir=folder.parent))
    try:
        copied = []
        for doc in docs:
            text = redact_text(without_local_paths(doc.value, doc.text))  # stage files of older runs may hold keys
            (staging / doc.path.name).write_text(text, encoding="utf-8")
            copied.append(folder / doc.path.name)
        _swap_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return copied


# -- reading an export back ---------------------------------------------------------------


def parse_size(text: str) -> int:
    """'500MB', '2GB', '64KiB', '1000' -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", text, re.IGNORECASE)
    if not match:
        raise CurateError(f"--max-shard-size: cannot read {text!r} (examples: 500MB, 2GB, 64KiB)")
    number, unit, binary = float(match[1]), match[2].upper(), bool(match[3])
    base = 1024 if binary else 1000
    return int(number * base ** " KMGT".index(unit or " "))
