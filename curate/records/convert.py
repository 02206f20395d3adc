"""Import foreign formats into records (one source, or a weighted mixture), and export records back out.

``import_file``/``mix_sources`` and ``export_file`` are what `curate import` and `curate convert`
call; reading goes through :func:`curate.records.sources.open_records` (every container and
format); outputs are written atomically, so a failure leaves no partial file, and an output
that is one of the inputs is refused.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError, InputError
from curate.records.formats import get_format
from curate.records.jsonl import Quarantine, atomic_writer, dumps
from curate.records.sources import open_records


@dataclass
class ImportSummary:
    source: str
    format: str
    detected: bool
    records: int
    invalid: int
    quarantine: str | None
    notice: str = ""
    per_source: dict[str, int] | None = None
    sources: list[dict[str, Any]] | None = None  # per source: name, container, format, rows, licence

    def report(self, out: str | os.PathLike[str]) -> dict[str, Any]:
        """The import's evidence: what came in from where, in which format, under which licence."""
        return {"stage": "import", "output": Path(out).name, "rows": self.records, "invalid": self.invalid,
                "sources": self.sources or []}


def refuse_overwrite(inputs: list[str | os.PathLike[str]], out: str | os.PathLike[str]) -> None:
    """Stop before a command writes its output over one of its inputs."""
    target = Path(out).resolve()
    for source in inputs:
        if Path(source).exists() and Path(source).resolve() == target:
            raise CurateError(f"{out}: --out is the input file; it would be overwritten (choose another --out)")


def import_file(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    format_name: str = "auto",
    skip_invalid: bool = False,
    quarantine_path: str | os.PathLike[str] | None = None,
    source_name: str | None = None,
) -> ImportSummary:
    """Convert ``source`` (any container and format :func:`open_records` reads) to a records JSONL file.

    With ``skip_invalid``, bad rows go to ``quarantine_path`` (the caller names it: see
    ``curate.runs.names.quarantine_path``) and the import goes on.
    """
    refuse_overwrite([source], out)
    if skip_invalid and quarantine_path is None:
        raise ValueError("skip_invalid needs a quarantine_path")
    quarantine = Quarantine(quarantine_path) if skip_invalid and quarantine_path else None
    try:
        stream = open_records(source, format_name, quarantine=quarantine, source_name=source_name)
        count = _write_records(out, stream, str(source))
    finally:
        if quarantine is not None:
            quarantine.close()
    invalid = quarantine.count if quarantine else 0
    return ImportSummary(str(source), stream.format, stream.detected, count, invalid,
                         str(quarantine_path) if invalid else None, stream.notice(), sources=[stream.evidence()])


def _write_records(out: str | os.PathLike[str], records: Iterable[dict[str, Any]], source: str) -> int:
    count = 0
    with atomic_writer(out) as handle:
        for record in records:
            handle.write(dumps(record) + "\n")
            count += 1
        if count == 0:
            raise InputError(source, None, None, "has no valid rows")
    return count


def parse_weights(text: str | None, count: int) -> list[float] | None:
    """``0.5,0.3,0.2`` -> weights, one per source (they need not sum to 1)."""
    if text is None:
        return None
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise CurateError(f"--weights: expected numbers separated by commas, got {text!r}") from None
    if len(weights) != count:
        raise CurateError(f"--weights: {len(weights)} weights for {count} sources")
    if any(w < 0 for w in weights) or not sum(weights) > 0:
        raise CurateError("--weights: weights must be non-negative with a positive sum")
    return weights


def mix_sources(
    sources: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    weights: list[float] | None = None,
    size: int | None = None,
    seed: int = 0,
    format_name: str = "auto",
) -> ImportSummary:
    """A mixture of several sources: ``weights`` share of ``size`` rows from each, sampled deterministically.

    Without weights every row of every source is kept. With weights, the mixture has ``size`` rows
    (default: the most the smallest weighted share allows without repeating a row), each source's
    rows chosen by a seeded hash of (seed, source position, row index, record id), so the same command
    gives the same file. ``meta.source`` of each row says which source it came from.
    """
    refuse_overwrite(list(sources), out)
    streams = [open_records(s, format_name) for s in sources]
    pools = [list(stream) for stream in streams]
    for source, pool in zip(sources, pools, strict=True):
        if not pool:
            raise InputError(str(source), None, None, "has no valid rows")
    chosen = pools if weights is None else _weighted(pools, weights, size, seed)
    per_source = {stream.name: len(rows) for stream, rows in zip(streams, chosen, strict=True)}
    count = _write_records(out, (r for rows in chosen for r in rows), ", ".join(map(str, sources)))
    notice = "; ".join(stream.notice() for stream in streams)
    evidence = [{**stream.evidence(), "rows": len(rows), "rows_read": len(pool), "weight": weight}
                for stream, rows, pool, weight in zip(streams, chosen, pools, weights or [None] * len(streams),
                                                      strict=True)]
    return ImportSummary(", ".join(map(str, sources)), "mix", True, count, 0, None, notice, per_source, evidence)


def _weighted(pools: list[list[dict[str, Any]]], weights: list[float], size: int | None,
              seed: int) -> list[list[dict[str, Any]]]:
    total = sum(weights)
    shares = [w / total for w in weights]
    if size is None:
        size = int(min(len(pool) / share for pool, share in zip(pools, shares, strict=True) if share > 0))
    wanted = _apportion(size, shares)
    chosen = []
    for index, (pool, n) in enumerate(zip(pools, wanted, strict=True)):
        if n > len(pool):
            raise CurateError(f"--size {size}: source {index + 1} has {len(pool)} rows but its weight asks for {n}")
        ranked = sorted(range(len(pool)), key=lambda i: hashlib.sha256(
            f"{seed}:{index}:{i}:{pool[i]['id']}".encode()).digest())
        chosen.append([pool[i] for i in sorted(ranked[:n])])  # source order kept within a source
    return chosen


def _apportion(size: int, shares: list[float]) -> list[int]:
    """Integer counts summing to ``size`` in proportion to ``shares`` (largest remainders)."""
    exact = [size * s for s in shares]
    counts = [int(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in order[: size - sum(counts)]:
        counts[i] += 1
    return counts


def export_file(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    format_name: str,
    check_id: bool = True,
) -> int:
    """Write the records of ``source`` in ``format_name``; JSON array for ``.json``, else JSONL."""
    refuse_overwrite([source], out)
    fmt = get_format(format_name)
    out = Path(out)
    as_array = out.name.removesuffix(".gz").endswith(".json")
    rows = (fmt.from_record(record) for record in open_records(source, check_id=check_id))
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
