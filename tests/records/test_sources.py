"""open_records: every container (JSON, gzip, Parquet, shard folders, save_to_disk, hub cache) and format."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from curate.cli import cli
from curate.errors import CurateError, InputError
from curate.records.convert import import_file, mix_sources
from curate.records.jsonl import read_records
from curate.records.sources import open_records

ALPACA = [{"instruction": f"Add {i} and {i + 1}.", "input": "" if i % 2 else "numbers", "output": str(2 * i + 1)}
          for i in range(6)]
SHAREGPT = [{"conversations": [{"from": "human", "value": f"Hi {i}"}, {"from": "gpt", "value": f"Hello {i}"}]}
            for i in range(4)]
OPENAI = [{"messages": [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Capital of France?"},
                        {"role": "assistant", "content": "Paris.", "weight": 1}]},
          {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4", "weight": 0}]}]


def _parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _records(path: Path) -> list[dict]:
    return list(read_records(path))


def test_alpaca_parquet_file_is_detected_and_converted(tmp_path: Path) -> None:
    source = _parquet(tmp_path / "alpaca.parquet", ALPACA)
    stream = open_records(source)
    records = list(stream)
    assert stream.format == "alpaca" and "Parquet; format: alpaca (detected)" in stream.notice()
    assert len(records) == 6
    assert records[0]["meta"]["source"] == "alpaca" and records[0]["meta"]["format"] == "alpaca"
    assert records[1]["messages"][0]["content"] == "Add 1 and 2."


def test_json_array_gzip_and_jsonl_give_the_same_records(tmp_path: Path) -> None:
    plain = tmp_path / "a.jsonl"
    plain.write_text("".join(json.dumps(r) + "\n" for r in ALPACA))
    packed = tmp_path / "a.json.gz"
    packed.write_bytes(gzip.compress(json.dumps(ALPACA).encode()))
    ids = [r["id"] for r in open_records(plain)]
    assert ids == [r["id"] for r in open_records(packed)]


def test_hub_style_folder_with_card(tmp_path: Path) -> None:
    folder = tmp_path / "org-dataset"
    _parquet(folder / "data" / "train-00000-of-00001.parquet", SHAREGPT[:3])
    _parquet(folder / "data" / "test-00000-of-00001.parquet", SHAREGPT[3:])
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# a card\n")
    records = list(open_records(folder))
    assert [r["messages"][0]["content"] for r in records] == ["Hi 0", "Hi 1", "Hi 2", "Hi 3"]
    assert records[0]["meta"]["source"] == "org-dataset" and records[0]["meta"]["format"] == "sharegpt"
    only_test = list(open_records(f"{folder}@test"))
    assert [r["messages"][0]["content"] for r in only_test] == ["Hi 3"]


def test_save_to_disk_folders(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_list(OPENAI).save_to_disk(str(tmp_path / "single"))
    records = list(open_records(tmp_path / "single"))
    assert [m["role"] for m in records[0]["messages"]] == ["system", "user", "assistant"]
    # OpenAI's per-message weight is kept (beside the message) and nulls Arrow adds for absent keys are not
    assert records[0]["meta"]["message_fields"] == {"2": {"weight": 1}}
    assert "0" not in records[0]["meta"]["message_fields"]
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ALPACA[:4]),
                               "test": datasets.Dataset.from_list(ALPACA[4:])})
    dd.save_to_disk(str(tmp_path / "dict"))
    assert len(list(open_records(tmp_path / "dict"))) == 4
    assert len(list(open_records(f"{tmp_path / 'dict'}@test"))) == 2
    with pytest.raises(CurateError, match="no split 'dev'"):
        list(open_records(f"{tmp_path / 'dict'}@dev"))


def _cache_dataset(cache: Path, repo: str, rows: list[dict], work: Path) -> None:
    """Put ``rows`` into a datasets cache the way a download of ``repo`` would leave them."""
    import datasets

    source = _parquet(work / "train.parquet", rows)
    datasets.load_dataset("parquet", data_files={"train": str(source)}, cache_dir=str(cache))
    built = next(p for p in (cache / "parquet").glob("default-*/0.0.0/*") if p.is_dir())
    namespace, name = repo.split("/")
    target = cache / f"{namespace}___{name}" / "default" / "0.0.0" / built.name
    target.parent.mkdir(parents=True)
    shutil.move(str(built), target)
    (target / "parquet-train.arrow").rename(target / f"{name}-train.arrow")
    info = json.loads((target / "dataset_info.json").read_text())
    info.update(config_name="default", dataset_name=name)
    (target / "dataset_info.json").write_text(json.dumps(info))


def test_hub_id_from_a_temporary_datasets_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    cache = tmp_path / "cache"
    _cache_dataset(cache, "someorg/tiny-dolly", [
        {"instruction": "Name a fruit.", "context": "", "response": "Apple.", "category": "brainstorming"}],
        tmp_path)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    stream = open_records("someorg/tiny-dolly")
    records = list(stream)
    assert stream.format == "dolly" and "hub dataset" in stream.notice()
    assert records[0]["meta"]["source"] == "someorg/tiny-dolly" and records[0]["meta"]["category"] == "brainstorming"
    with pytest.raises(CurateError, match="not cached and no network"):
        list(open_records("someorg/not-here"))


def test_errors_name_file_and_row(tmp_path: Path) -> None:
    bad = _parquet(tmp_path / "bad.parquet", [ALPACA[0], {"instruction": "x", "input": "", "output": None}])
    with pytest.raises(InputError) as err:
        list(open_records(bad))
    assert str(err.value) == f"{bad}:row 2: field 'output': missing"
    with pytest.raises(InputError, match="no such file or folder"):
        open_records(tmp_path / "missing.jsonl")


def test_curate_records_pass_through_unchanged(tmp_path: Path) -> None:
    source = tmp_path / "a.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in ALPACA))
    import_file(source, tmp_path / "records.jsonl")
    again = list(open_records(tmp_path / "records.jsonl"))
    assert again == _records(tmp_path / "records.jsonl")


def test_import_and_convert_refuse_to_overwrite_their_input(tmp_path: Path) -> None:
    source = tmp_path / "a.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in ALPACA))
    before = source.read_bytes()
    for args in (["import", str(source), "--out", str(source)],
                 ["convert", str(source), "--to", "alpaca", "--out", str(source)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and "would be overwritten" in result.output
    assert source.read_bytes() == before


def test_weighted_mixture_is_deterministic_with_per_source_provenance(tmp_path: Path) -> None:
    a = _parquet(tmp_path / "alpaca.parquet", ALPACA)
    b = tmp_path / "chat.jsonl"
    b.write_text("".join(json.dumps(r) + "\n" for r in SHAREGPT))
    runner = CliRunner()
    args = ["import", str(a), str(b), "--weights", "0.6,0.4", "--size", "5"]
    first = runner.invoke(cli, [*args, "--out", str(tmp_path / "m1.jsonl")])
    assert runner.invoke(cli, [*args, "--out", str(tmp_path / "m2.jsonl")]).exit_code == 0
    assert first.exit_code == 0, first.output
    assert "(alpaca 3, chat 2)" in first.output
    assert (tmp_path / "m1.jsonl").read_text() == (tmp_path / "m2.jsonl").read_text()
    sources = [r["meta"]["source"] for r in _records(tmp_path / "m1.jsonl")]
    assert sources == ["alpaca"] * 3 + ["chat"] * 2
    other_seed = mix_sources([a, b], tmp_path / "m3.jsonl", [0.6, 0.4], 5, seed=1)
    assert other_seed.records == 5
    everything = mix_sources([a, b], tmp_path / "all.jsonl")
    assert everything.per_source == {"alpaca": 6, "chat": 4}
    result = runner.invoke(cli, ["import", str(a), "--weights", "1", "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2 and "--weights applies to a mixture" in result.output


def test_filter_reads_a_parquet_file_and_a_save_to_disk_folder_directly(tmp_path: Path) -> None:
    import datasets

    parquet = _parquet(tmp_path / "alpaca.parquet", ALPACA + ALPACA[:2])  # two exact duplicates
    datasets.Dataset.from_list(ALPACA).save_to_disk(str(tmp_path / "arrow"))
    for source in (parquet, tmp_path / "arrow"):
        out = tmp_path / f"{source.stem}-kept.jsonl"
        result = CliRunner().invoke(cli, ["filter", str(source), "--out", str(out), "--preset", "none"])
        assert result.exit_code == 0, result.output
        assert "format: alpaca (detected), converted to records" in result.output
        assert "curate import" in result.output
        assert len(_records(out)) == 6


def test_rows_shaped_like_records_with_foreign_ids_are_converted(tmp_path: Path) -> None:
    row = {"id": "conv-001", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
           "meta": {"lang": "en"}}
    source = tmp_path / "other_tool.jsonl"
    source.write_text(json.dumps(row) + "\n")
    stream = open_records(source)
    (record,) = list(stream)
    assert stream.format == "messages" and record["meta"]["source_id"] == "conv-001"
    assert record["meta"]["lang"] == "en" and record["meta"]["source"] == "other_tool"


@pytest.mark.parametrize("name", ["alpaca", "sharegpt", "dolly", "prompt-completion", "messages", "self-instruct"])
def test_every_format_reads_the_same_from_parquet_as_from_jsonl(tmp_path: Path, name: str) -> None:
    from test_formats import SAMPLES

    rows = SAMPLES[name]

    def to_table(rows: list[dict]) -> pa.Table:  # columns from every row's keys (from_pylist looks at the first)
        return pa.Table.from_batches([pa.RecordBatch.from_struct_array(pa.array(rows))])

    try:
        table = to_table(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types in one column: Parquet cannot hold these rows
        rows = [{k: v for k, v in r.items() if k != "id"} for r in rows]
        table = to_table(rows)
    pq.write_table(table, tmp_path / "rows.parquet")
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from_parquet = list(open_records(tmp_path / "rows.parquet"))
    from_jsonl = list(open_records(tmp_path / "rows.jsonl"))
    assert [r["id"] for r in from_parquet] == [r["id"] for r in from_jsonl]
    assert [r["messages"] for r in from_parquet] == [r["messages"] for r in from_jsonl]


def test_truncated_gzip_names_where_it_breaks_and_json_errors_read_cleanly(tmp_path: Path) -> None:
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in ALPACA * 4000).encode())
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"not a readable gzip file: the data ends or breaks after line \d+"):
        list(open_records(truncated))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ALPACA[0]) + '\n{"instruction": "unterminated\n')
    with pytest.raises(InputError) as err:
        list(open_records(bad))
    assert str(err.value).startswith(f"{bad}:2: malformed JSON at column ") and "at at" not in str(err.value)


def test_a_run_folder_is_not_read_as_one_dataset(tmp_path: Path) -> None:
    from curate.records.jsonl import write_jsonl

    run = tmp_path / "run"
    run.mkdir()
    (run / "a.json").write_text(json.dumps(ALPACA))
    import_file(run / "a.json", run / "curated.jsonl")
    (run / "a.json").unlink()
    rejected = [{**r, "reject": {"stage": "filter", "reason": "too_short"}} for r in _records(run / "curated.jsonl")]
    write_jsonl(run / "rejected.jsonl", rejected[:2])
    with pytest.raises(InputError, match=r"rejected.jsonl: records \(rejected\).*name the file to read"):
        open_records(run)
    write_jsonl(run / "errors.jsonl", [{"batch": 1, "error": "HTTP 500"}])
    with pytest.raises(InputError, match="errors.jsonl: not records"):
        open_records(run)
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(2):
        (shards / f"part{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ALPACA[i * 3:(i + 1) * 3]))
    assert len(list(open_records(shards))) == 6  # a plain folder of same-format shards is fine
