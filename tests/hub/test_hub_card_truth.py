"""Cards say only what the stage files prove: a human-written import, a generated run, a filtered mix."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from hub_fixtures import write_run
from huggingface_hub import DatasetCard

from curate.cli import cli
from curate.hub.export import export_records
from curate.hub.scan import ExportConfig
from curate.records.convert import import_file, mix_sources
from curate.records.jsonl import write_json

HUMAN = [{"instruction": f"What is {i} times 3?", "input": "", "output": f"{3 * i}."} for i in range(12)]
CHAT = [{"conversations": [{"from": "human", "value": f"Say {w}."}, {"from": "gpt", "value": w}]}
        for w in ("yes", "no", "maybe", "later", "never", "always")]
MAX_CARD_LINES = 260  # a small dataset's card fits on a screen or two


def _export(source: Path, out: Path) -> tuple[DatasetCard, str]:
    export_records(source, ExportConfig(out=out))
    card = DatasetCard.load(out / "README.md")
    everything = "\n".join(p.read_text(encoding="utf-8") for p in out.rglob("*") if p.is_file()
                           and p.suffix in (".md", ".json", ".yaml"))
    return card, everything


def _check_common(card: DatasetCard, everything: str, tmp_path: Path) -> None:
    assert str(tmp_path) not in everything and "/opt/venv" not in everything  # no absolute path anywhere
    assert len(card.content.splitlines()) < MAX_CARD_LINES


def test_human_written_import(tmp_path: Path) -> None:
    source = tmp_path / "gsm_like.json"
    source.write_text(json.dumps(HUMAN))
    import_file(source, tmp_path / "work" / "records.jsonl")
    card, everything = _export(tmp_path / "work" / "records.jsonl", tmp_path / "ds")
    data, text = card.data.to_dict(), card.text
    assert "synthetic" not in data["tags"] and "annotations_creators" not in data
    assert "machine-generated" not in text and "curate did not generate these rows" in text
    assert "(import → export)" in text
    assert "| gsm_like | 12 |" in text and "formats (`meta.format`): alpaca 12" in text
    assert data["license"] == "other" and "imported source(s) (gsm_like) is not recorded" in text
    _check_common(card, everything, tmp_path)


def test_generated_run_with_the_shipped_seeds(tmp_path: Path) -> None:
    from generators.seeds import default_seeds_path, seeds_hash

    run = write_run(tmp_path / "run", with_compare=False)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["seeds"]["sha256"] = seeds_hash(default_seeds_path())  # the seeds curate ships: Apache-2.0
    write_json(run / "manifest.json", manifest)
    card, everything = _export(run / "curated.jsonl", tmp_path / "ds")
    data, text = card.data.to_dict(), card.text
    assert "synthetic" in data["tags"] and data["annotations_creators"] == ["machine-generated"]
    assert data["license"] == "apache-2.0"
    assert "the teacher (SmolLM2-135M-Instruct) and the seed file (seed_tasks.jsonl) are both apache-2.0" in text
    assert "Responses are machine-generated" in text
    _check_common(card, everything, tmp_path)


def test_filtered_mix(tmp_path: Path) -> None:
    a, b = tmp_path / "human.json", tmp_path / "chat.jsonl"
    a.write_text(json.dumps(HUMAN))
    b.write_text("".join(json.dumps(r) + "\n" for r in CHAT))
    mix_sources([a, b], tmp_path / "work" / "mix.jsonl", [0.5, 0.5], 10)
    result = CliRunner().invoke(cli, ["filter", str(tmp_path / "work" / "mix.jsonl"), "--out",
                                      str(tmp_path / "work" / "curated.jsonl"), "--preset", "none"])
    assert result.exit_code == 0, result.output
    card, everything = _export(tmp_path / "work" / "curated.jsonl", tmp_path / "ds")
    data, text = card.data.to_dict(), card.text
    assert "synthetic" not in data["tags"] and data["license"] == "other"
    assert "(import → filter → dedup → export)" in text
    assert "| human | 5 |" in text and "| chat | 5 |" in text
    assert "alpaca 5" in text and "sharegpt 5" in text
    assert (tmp_path / "ds" / "provenance" / "filter_report.json").is_file()
    _check_common(card, everything, tmp_path)


def test_training_tool_entries_use_the_documented_field_names(run_dir: Path, tmp_path: Path) -> None:
    import yaml

    export_records(run_dir / "curated.jsonl", ExportConfig(out=tmp_path / "ds", split_eval=0.1))
    entry = json.loads((tmp_path / "ds" / "dataset_info.json").read_text())["ds"]
    assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages"}
    assert entry["tags"] == {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                             "assistant_tag": "assistant", "system_tag": "system"}
    assert (tmp_path / "ds" / entry["file_name"]).is_file()  # the train shard, not the test one
    dataset = yaml.safe_load((tmp_path / "ds" / "axolotl.yaml").read_text())["datasets"][0]
    assert dataset["type"] == "chat_template" and dataset["field_messages"] == "messages"
    assert dataset["message_property_mappings"] == {"role": "role", "content": "content"}


def test_export_reads_a_parquet_file_directly(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(HUMAN), tmp_path / "people.parquet")
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "people.parquet"), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert "Parquet; format: alpaca (detected)" in result.output
    text = (tmp_path / "ds" / "README.md").read_text()
    assert "| people | 12 |" in text and "alpaca 12" in text and str(tmp_path) not in text


def _hub_folder(path: Path, rows: list[dict], licence: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (path / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), path / "data" / "train-00000-of-00001.parquet")
    (path / "README.md").write_text(f"---\nlicense: {licence}\n---\n# a dataset\n")
    return path


def test_licence_comes_from_the_imported_sources_card(tmp_path: Path) -> None:
    import datasets

    folder = _hub_folder(tmp_path / "people", HUMAN, "mit")
    runner = CliRunner()
    result = runner.invoke(cli, ["import", str(folder), "--out", str(tmp_path / "w" / "records.jsonl")])
    assert result.exit_code == 0, result.output
    (tmp_path / "evalset.json").write_text(json.dumps(HUMAN[:2]))  # another import in the folder: not this data's
    assert runner.invoke(cli, ["import", str(tmp_path / "evalset.json"), "--out",
                               str(tmp_path / "w" / "eval.jsonl")]).exit_code == 0
    report = json.loads((tmp_path / "w" / "records.import.json").read_text())
    assert report["sources"][0]["license"] == "mit" and report["sources"][0]["source"] == "people"
    card, everything = _export(tmp_path / "w" / "records.jsonl", tmp_path / "ds")
    assert card.data.license == "mit" and "the card of people declares mit" in card.text
    assert sorted(p.name for p in (tmp_path / "ds" / "provenance").iterdir()) == ["records.import.json"]
    _check_common(card, everything, tmp_path)

    # a save_to_disk folder carries its licence in the dataset info; mixed with an unlicensed file: other
    info = datasets.DatasetInfo(license="mit")
    datasets.Dataset.from_list(CHAT, info=info).save_to_disk(str(tmp_path / "chat_arrow"))
    (tmp_path / "loose.json").write_text(json.dumps(HUMAN[:4]))
    result = runner.invoke(cli, ["import", str(tmp_path / "chat_arrow"), str(tmp_path / "loose.json"),
                                 "--out", str(tmp_path / "m" / "mix.jsonl")])
    assert result.exit_code == 0, result.output
    card, everything = _export(tmp_path / "m" / "mix.jsonl", tmp_path / "ds2")
    assert card.data.license == "other"
    assert "the licence of the imported source(s) (loose) is not recorded" in card.text
    assert "Rows from `chat_arrow`: `mit`" in card.text
    _check_common(card, everything, tmp_path)
