"""The export format on disk, read side: shard names, and records back from Parquet/JSONL shards.

`curate export` (curate.hub.export) writes this layout; `curate import FOLDER` and every reader of an
exported folder read it through here, so the two agree on names and columns.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from curate.errors import CurateError, InputError, RecordError
from curate.records.jsonl import iter_json_rows
from curate.records.schema import validate_record

SCHEMA_TAG = "curate.export/1"
SPLIT_ORDER = ("train", "validation", "test")
_SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.(?P<ext>parquet|jsonl)$")
ROWS_PER_BATCH = 1000  # also the Parquet row-group size: small enough for the hub's viewer


def shard_name(split: str, index: int, total: int, fmt: str) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.{fmt}"


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
        for batch in parquet.iter_batches(batch_size=ROWS_PER_BATCH):
            for row in batch.to_pylist():
                row_no += 1
                yield row_no, row
    else:
        yield from iter_json_rows(shard)

