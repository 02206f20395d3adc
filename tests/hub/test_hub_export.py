"""`curate export`: shards, typed columns, splits, and exact round trips through datasets and import."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from curate.cli import cli
from curate.errors import CurateError, InputError
from curate.hub.export import choose_eval_ids, export_records, parse_size, plan_shards
from curate.hub.scan import ColumnPlan, ExportConfig
from curate.records import make_record
from curate.records.convert import import_file
from curate.records.jsonl import dumps, read_records, write_jsonl
from curate.records.shards import read_export


def _load(folder: Path, cache: Path):
    from datasets import load_dataset

    return load_dataset(str(folder), cache_dir=str(cache))


def _by_id(records):
    return sorted(records, key=lambda r: r["id"])


def test_export_loads_with_datasets_and_round_trips(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = CliRunner().invoke(cli, ["export", str(run_dir / "curated.jsonl"), "--out", str(out),
                                      "--split-eval", "0.1"])
    assert result.exit_code == 0, result.output
    assert "train 36, test 4" in result.output
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]

    ds = _load(out, tmp_path / "cache")
    assert {name: len(split) for name, split in ds.items()} == {"train": 36, "test": 4}
    features = ds["train"].features
    assert str(features["messages"]) == "List({'role': Value('string'), 'content': Value('string')})"
    assert features["scores"]["judge"].dtype == "float64"
    assert features["meta"].dtype == "string"
    assert features["meta_tokens_out"].dtype == "int64"
    assert features["meta_ratio"].dtype == "float64"
    assert "meta_mixed" not in features and "meta_seed_ids" not in features
    row = ds["train"][0]
    assert json.loads(row["meta"])["teacher"] == "SmolLM2-135M-Instruct"
    assert row["messages"][0]["role"] == "user"

    original = list(read_records(run_dir / "curated.jsonl"))
    back = list(read_export(out))
    assert [dumps(r) for r in _by_id(back)] == [dumps(r) for r in _by_id(original)]
    # what datasets loaded is the same data
    loaded_ids = sorted(list(ds["train"]["id"]) + list(ds["test"]["id"]))
    assert loaded_ids == sorted(r["id"] for r in original)

    # `curate import` reads the folder (and one shard) back into identical records
    summary = import_file(out, tmp_path / "back.jsonl")
    assert summary.records == 40 and summary.format == "curate-export"
    assert _by_id(read_records(tmp_path / "back.jsonl")) == _by_id(original)
    shard = out / "data" / "test-00000-of-00001.parquet"
    result = CliRunner().invoke(cli, ["import", str(shard), "--out", str(tmp_path / "test.jsonl")])
    assert result.exit_code == 0, result.output
    assert len(list(read_records(tmp_path / "test.jsonl"))) == 4


def test_jsonl_format_loads_with_the_same_features(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    export_records(run_dir / "curated.jsonl", ExportConfig(out=out, format="jsonl", split_eval=0.25))
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "test-00000-of-00001.jsonl", "train-00000-of-00001.jsonl"]
    ds = _load(out, tmp_path / "cache")
    assert {name: len(split) for name, split in ds.items()} == {"train": 30, "test": 10}
    assert ds["train"].features["scores"]["ifd"].dtype == "float64"
    assert _by_id(read_export(out)) == _by_id(read_records(run_dir / "curated.jsonl"))


def test_sharded_by_size_and_reexport_leaves_no_stale_shards(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    source = run_dir / "curated.jsonl"
    export_records(source, ExportConfig(out=out, max_shard_bytes=2_000))
    shards = sorted((out / "data").glob("train-*.parquet"))
    assert len(shards) > 3
    total = len(shards)
    assert [p.name for p in shards] == [f"train-{i:05d}-of-{total:05d}.parquet" for i in range(total)]
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in shards) == 40
    ds = _load(out, tmp_path / "cache")
    assert len(ds["train"]) == 40
    # order within the train split is the input order
    assert [r["id"] for r in read_export(out)] == [r["id"] for r in read_records(source)]

    (out / ".data-killed").mkdir()  # what a kill -9 mid-export leaves
    (out / ".data-killed" / "train-00000-of-00009.parquet").write_bytes(b"partial")
    export_records(source, ExportConfig(out=out))
    assert [p.name for p in (out / "data").iterdir()] == ["train-00000-of-00001.parquet"]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "axolotl.yaml", "data", "dataset_info.json",
                                                     "provenance"]


def test_plan_shards_and_sizes() -> None:
    assert plan_shards([5, 5, 5, 5], 10) == [2, 2]
    assert plan_shards([50, 1, 1], 10) == [1, 2]  # an oversized row gets a shard of its own
    assert plan_shards([], 10) == []
    assert parse_size("500MB") == 500_000_000 and parse_size("64KiB") == 65_536 and parse_size("1000") == 1000
    with pytest.raises(CurateError, match="max-shard-size"):
        parse_size("lots")


def test_eval_split_is_exact_and_deterministic() -> None:
    ids = [f"id{i}" for i in range(200)]
    first = choose_eval_ids(ids, 0.05, seed=0)
    assert len(first) == 10 and first == choose_eval_ids(list(reversed(ids)), 0.05, seed=0)
    assert first != choose_eval_ids(ids, 0.05, seed=1)
    assert choose_eval_ids(ids[:3], 0.01, seed=0) and len(choose_eval_ids(ids[:3], 0.01, seed=0)) == 1
    assert choose_eval_ids(ids[:1], 0.5, seed=0) == set()


def test_meta_promotion_rules() -> None:
    plan = ColumnPlan()
    rows = [
        {"flag": True, "n": 1, "x": 1, "s": "a", "mixed": "a", "nested": {"a": 1}, "bad key": "v", "maybe": None},
        {"flag": False, "n": 2, "x": 2.5, "s": None, "mixed": 3, "nested": {"a": 2}, "bad key": "w", "maybe": 4},
        {"text": "long " * 50},  # a text, not a label: stays in meta only
    ]
    for meta in rows:
        plan.observe(make_record([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], meta))
    assert plan.promoted == {"flag": "bool", "n": "int64", "x": "float64", "s": "string", "maybe": "int64"}


def test_integer_scores_round_trip_exactly(tmp_path: Path) -> None:
    records = [make_record([{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
                           {"source": "x"}, {"judge": i} if i else None) for i in range(5)]
    records[2]["scores"] = {}  # an empty scores object survives too
    write_jsonl(tmp_path / "in.jsonl", records)
    export_records(tmp_path / "in.jsonl", ExportConfig(out=tmp_path / "ds"))
    assert [dumps(r) for r in read_export(tmp_path / "ds")] == [dumps(r) for r in records]
    schema = pq.read_schema(tmp_path / "ds" / "data" / "train-00000-of-00001.parquet")
    assert str(schema.field("scores").type) == "struct<judge: int64>"


def test_bad_input_stops_with_file_and_line_and_writes_nothing(run_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    lines = (run_dir / "curated.jsonl").read_text().splitlines()
    lines[4] = lines[4].replace('"role":"user"', '"role":"narrator"')
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "ds"
    result = CliRunner().invoke(cli, ["export", str(source), "--out", str(out)])
    assert result.exit_code == 2
    assert f"{source}:5: field 'messages[0].role'" in result.output
    assert not out.exists()


def test_rejected_rows_are_refused(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="rejected row"):
        export_records(run_dir / "rejected.jsonl", ExportConfig(out=tmp_path / "ds"))
    assert not (tmp_path / "ds").exists()


def test_config_errors_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(CurateError, match="--split-eval"):
        ExportConfig(out=tmp_path, split_eval=1.5)
    with pytest.raises(CurateError, match="--format"):
        ExportConfig(out=tmp_path, format="csv")


def test_reading_a_damaged_export_names_the_shard(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    export_records(run_dir / "curated.jsonl", ExportConfig(out=out, format="jsonl"))
    shard = out / "data" / "train-00000-of-00001.jsonl"
    lines = shard.read_text().splitlines()
    row = json.loads(lines[2])
    row["messages"][1]["content"] = "edited by hand"
    lines[2] = json.dumps(row)
    shard.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"train-00000-of-00001.jsonl:3: field 'id'"):
        list(read_export(out))


@pytest.mark.slow
def test_kill_9_mid_export_leaves_the_previous_export_whole(run_dir: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "ds"
    export_records(run_dir / "curated.jsonl", ExportConfig(out=out))
    before = {p.name: p.read_bytes() for p in (out / "data").iterdir()}
    card = (out / "README.md").read_bytes()

    big = tmp_path / "big.jsonl"
    write_jsonl(big, (make_record([{"role": "user", "content": f"question {i} " * 20},
                                   {"role": "assistant", "content": f"answer {i} " * 60}], {"n": i})
                      for i in range(15_000)))
    proc = subprocess.Popen([sys.executable, "-m", "curate", "export", str(big), "--out", str(out),
                             "--max-shard-size", "1MB"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob(".ds.*.staged/.data-*/*.parquet")):  # second pass under way, beside out
        assert proc.poll() is None and time.monotonic() < deadline, "export finished before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert {p.name: p.read_bytes() for p in (out / "data").iterdir()} == before
    assert (out / "README.md").read_bytes() == card
    export_records(run_dir / "curated.jsonl", ExportConfig(out=out))  # the next run cleans up and succeeds
    assert not list(out.glob(".data-*")) and not list(tmp_path.glob(".ds.*"))
