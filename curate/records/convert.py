"""Import foreign formats into records, and export records back out.

``import_file`` and ``export_file`` are what `curate import` and `curate convert` call;
both write their output atomically, so a failure leaves no partial file.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError, InputError
from curate.records.formats import Format, detect_format, get_format
from curate.records.jsonl import (
    Quarantine,
    atomic_writer,
    dumps,
    iter_json_rows,
    iter_valid,
    read_records,
    write_jsonl,
)


@dataclass
class ImportSummary:
    source: str
    format: str
    detected: bool
    records: int
    invalid: int
    quarantine: str | None


def sniff_format(path: str | os.PathLike[str]) -> Format:
    """Detect the format from the first row that parses."""
    for _, row in iter_json_rows(path):
        return detect_format(row)
    raise InputError(str(path), None, None, "is empty")


def default_quarantine_path(out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    name = out.name.removesuffix(".gz").removesuffix(".jsonl").removesuffix(".json")
    return out.with_name(f"{name}.invalid.jsonl")


def import_file(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    format_name: str = "auto",
    skip_invalid: bool = False,
    quarantine_path: str | os.PathLike[str] | None = None,
) -> ImportSummary:
    """Convert ``source`` (any supported format, JSONL or JSON array, maybe gzipped) to records.

    A folder written by `curate export` (or one of its shards) is read back as records.
    """
    if Path(source).is_dir() or str(source).endswith(".parquet"):
        from curate.records.shards import read_export

        count = write_jsonl(out, read_export(source))
        return ImportSummary(str(source), "curate-export", True, count, 0, None)
    detected = format_name == "auto"
    fmt = sniff_format(source) if detected else get_format(format_name)
    side = Path(quarantine_path) if quarantine_path else default_quarantine_path(out)
    quarantine = Quarantine(side) if skip_invalid else None
    count = 0
    try:
        with atomic_writer(out) as handle:
            for _, record in iter_valid(source, fmt.to_record, quarantine):
                handle.write(dumps(record) + "\n")
                count += 1
            if count == 0:
                raise InputError(str(source), None, None, "has no valid rows")
    finally:
        if quarantine is not None:
            quarantine.close()
    invalid = quarantine.count if quarantine else 0
    return ImportSummary(str(source), fmt.name, detected, count, invalid, str(side) if invalid else None)


def export_file(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    format_name: str,
    check_id: bool = True,
) -> int:
    """Write the records of ``source`` in ``format_name``; JSON array for ``.json``, else JSONL."""
    fmt = get_format(format_name)
    out = Path(out)
    as_array = out.name.removesuffix(".gz").endswith(".json")
    rows = (fmt.from_record(record) for record in read_records(source, check_id=check_id))
    count = 0
    with atomic_writer(out, "wb") as raw:
        compress = gzip.GzipFile(fileobj=raw, mode="wb") if out.suffix == ".gz" else contextlib.nullcontext(raw)
        with compress as sink:
            for chunk in _render(rows, as_array):
                sink.write(chunk.encode("utf-8"))
                count += 1
            if count == 0:
                raise CurateError(f"{source}: no records to convert")
            if as_array:
                sink.write(b"\n]\n")
    return count


def _render(rows: Iterator[dict[str, Any]], as_array: bool) -> Iterator[str]:
    """One chunk of text per row: JSONL lines, or the items of a JSON array."""
    for i, row in enumerate(rows):
        if as_array:
            yield ("[\n" if i == 0 else ",\n") + json.dumps(row, ensure_ascii=False)
        else:
            yield dumps(row) + "\n"
