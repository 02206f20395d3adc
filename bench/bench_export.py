"""Benchmark `curate export` against the usual ways of turning records into Parquet.

    .venv/bin/python bench/bench_export.py [--out bench/out/export] [--limit 0]

Input: the real files of ../shared/data imported as curate records and concatenated
(T0 prompt/completion 55k rows, GSM8K Alpaca 7.5k, Self-Instruct seeds 175): their
``meta`` objects differ by source, which is the case that matters. Measured side by side:

- ``curate export``: typed columns, meta as JSON + promoted columns (this repo);
- ``datasets``: ``Dataset.from_json(records.jsonl).to_parquet(...)`` (what a datasets-based
  push does), meta inferred as one struct;
- ``polars``: ``pl.read_ndjson(records.jsonl).write_parquet(...)``.

For each: wall time, output size, and whether reading the Parquet back gives the records
that went in (identical JSON per row). Then ``load_dataset`` and ``curate import`` of the
export, ``curate report`` on the same rows, and ``open_records`` over the same Alpaca rows as a
JSON array, a Parquet file and a ``save_to_disk`` Arrow folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SOURCES = ("t0_prompt_completion.jsonl.gz", "gsm8k_train_alpaca.json", "self_instruct_seed_tasks.jsonl")


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_input(work: Path, limit: int) -> Path:
    from curate.records.convert import import_file

    merged = work / "records.jsonl"
    if merged.exists():
        return merged
    parts = []
    for name in SOURCES:
        part = work / f"{name.split('.')[0]}.records.jsonl"
        import_file(DATA / name, part)
        parts.append(part)
    with merged.open("w", encoding="utf-8") as out:
        for part in parts:
            with part.open(encoding="utf-8") as handle:
                for i, line in enumerate(handle):
                    if limit and i >= limit:
                        break
                    out.write(line)
    return merged


def exact(records_path: Path, rows: list[dict]) -> int:
    """Rows (in order) whose JSON differs from the input's."""
    from curate.records.jsonl import dumps

    with records_path.open(encoding="utf-8") as handle:
        wanted = [dumps(json.loads(line)) for line in handle]
    got = [dumps(r) for r in rows]
    return sum(a != b for a, b in zip(wanted, got, strict=False)) + abs(len(wanted) - len(got))


def strip_nulls(value):
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/out/export")
    parser.add_argument("--limit", type=int, default=0, help="rows per source (0: all)")
    args = parser.parse_args()
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    source = build_input(work, args.limit)
    rows = sum(1 for _ in source.open(encoding="utf-8"))
    print(f"input: {source} ({rows:,} records, {source.stat().st_size / 1e6:.1f} MB)")
    results = []

    from curate.hub.export import ExportConfig, export_records
    from curate.records.shards import read_export

    target = work / "curate"
    shutil.rmtree(target, ignore_errors=True)
    result, seconds = timed(lambda: export_records(source, ExportConfig(out=target, split_eval=0.01)))
    back, read_s = timed(lambda: list(read_export(target)))
    # read_export returns train then test; compare by id
    by_id = {r["id"]: r for r in back}
    with source.open(encoding="utf-8") as handle:
        ordered = [by_id.get(json.loads(line)["id"]) for line in handle]
    results.append(("curate export", seconds, folder_bytes(target / "data"), exact(source, ordered),
                    f"{len(result.promoted)} promoted meta columns; read back {read_s:.1f} s"))

    from datasets import Dataset, load_dataset

    target = work / "datasets.parquet"
    cache = work / "hf_cache"
    try:
        def datasets_path() -> None:
            Dataset.from_json(str(source), cache_dir=str(cache)).to_parquet(str(target))
        _, seconds = timed(datasets_path)
        table = Dataset.from_parquet(str(target), cache_dir=str(cache))
        back = [strip_nulls(dict(r)) for r in table]
        raw_diff = exact(source, [dict(r) for r in table])
        results.append(("datasets from_json+to_parquet", seconds, target.stat().st_size, raw_diff,
                        f"{exact(source, back)} rows still differ after dropping the nulls the struct union added"))
    except Exception as err:  # a peer failing on this input is a result
        results.append(("datasets from_json+to_parquet", None, None, None, f"failed: {type(err).__name__}: {err}"[:200]))

    import polars as pl

    target = work / "polars.parquet"
    try:
        _, seconds = timed(lambda: pl.read_ndjson(source, infer_schema_length=None).write_parquet(target))
        back = pl.read_parquet(target).to_dicts()
        results.append(("polars read_ndjson+write_parquet", seconds, target.stat().st_size, exact(source, back),
                        f"{exact(source, [strip_nulls(r) for r in back])} differ after dropping nulls"))
    except Exception as err:
        results.append(("polars read_ndjson+write_parquet", None, None, None, f"failed: {type(err).__name__}: {err}"[:200]))

    _, load_s = timed(lambda: load_dataset(str(work / "curate"), cache_dir=str(work / "hf_cache_load")))
    from curate.records.convert import import_file

    _, import_s = timed(lambda: import_file(work / "curate", work / "reimported.jsonl"))
    from curate.reporting.page import write_report

    run = work / "run"
    run.mkdir(exist_ok=True)
    shutil.copyfile(source, run / "curated.jsonl")
    _, report_s = timed(lambda: write_report(run, run / "report.html"))

    print("\n| path | wall s | rows/s | output MB | rows not identical on read-back | note |\n|---|---|---|---|---|---|")
    for name, seconds, size, diff, note in results:
        if seconds is None:
            print(f"| {name} | – | – | – | – | {note} |")
        else:
            print(f"| {name} | {seconds:.1f} | {rows / seconds:,.0f} | {size / 1e6:.1f} | {diff:,} | {note} |")
    print(f"\nload_dataset(export folder): {load_s:.1f} s; curate import (folder -> JSONL): {import_s:.1f} s; "
          f"curate report on {rows:,} kept rows: {report_s:.1f} s "
          f"({(run / 'report.html').stat().st_size / 1e3:.0f} kB page)")
    import_containers(work)


def import_containers(work: Path) -> None:
    """open_records over the same Alpaca rows (GSM8K train) in each container: JSON array, Parquet, Arrow."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.records.sources import open_records

    rows = json.loads((DATA / "gsm8k_train_alpaca.json").read_text(encoding="utf-8"))
    pq.write_table(pa.Table.from_pylist(rows), work / "gsm8k.parquet")
    datasets.Dataset.from_list(rows).save_to_disk(str(work / "gsm8k_arrow"))
    print("\n| container (GSM8K Alpaca rows) | rows | open_records s | rows/s |\n|---|---|---|---|")
    for label, source in (("JSON array", DATA / "gsm8k_train_alpaca.json"), ("Parquet file", work / "gsm8k.parquet"),
                          ("Arrow save_to_disk", work / "gsm8k_arrow")):
        records, seconds = timed(lambda source=source: list(open_records(source)))
        print(f"| {label} | {len(records):,} | {seconds:.2f} | {len(records) / seconds:,.0f} |")


if __name__ == "__main__":
    main()
