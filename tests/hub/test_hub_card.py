"""The dataset card: hub metadata that validates, provenance read from the stage files, merging."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hub_fixtures import SEEDS_SHA, write_run
from huggingface_hub import DatasetCard, DatasetCardData

from curate.errors import CurateError
from curate.hub.card import BEGIN, END, merge_metadata, size_category
from curate.hub.export import export_records
from curate.hub.scan import ExportConfig


def _export(run: Path, out: Path, **options) -> DatasetCard:
    export_records(run / "curated.jsonl", ExportConfig(out=out, **options))
    return DatasetCard.load(out / "README.md")


def test_card_metadata_is_what_the_hub_reads(run_dir: Path, tmp_path: Path) -> None:
    card = _export(run_dir, tmp_path / "ds", split_eval=0.1)
    data = card.data.to_dict()
    DatasetCardData(**data)  # the hub client's own model accepts it
    assert data["license"] == "other"  # these seeds are not the shipped ones and record no licence: not guessed
    assert data["language"] == ["en"]
    assert data["task_categories"] == ["text-generation"]
    assert data["size_categories"] == ["n<1K"]
    assert {"synthetic", "curate"} <= set(data["tags"])
    assert data["annotations_creators"] == ["machine-generated"]
    assert data["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*"}, {"split": "test", "path": "data/test-*"}]}]
    info = data["dataset_info"]
    assert [f["name"] for f in info["features"]][:3] == ["id", "messages", "scores"]
    assert info["features"][-1] == {"name": "meta", "dtype": "string"}
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == {"train": 36, "test": 4}
    assert info["download_size"] == sum(p.stat().st_size for p in (tmp_path / "ds" / "data").iterdir())


def test_card_body_is_read_from_the_stage_files(run_dir: Path, tmp_path: Path) -> None:
    text = _export(run_dir, tmp_path / "ds").text
    assert "(generate → filter → dedup → score → export)" in text
    # generation settings from manifest.json: the seed file by name, never by path
    assert "| teacher model | SmolLM2-135M-Instruct |" in text
    assert SEEDS_SHA in text and "| seed file | seed_tasks.jsonl (95 tasks) |" in text
    assert "| preset | self-instruct |" in text
    assert "max_tokens=1024, temperature=0.7" in text
    # filter settings from filter_config.yaml
    assert "min_response_words=3" in text and "threshold=0.8" in text
    assert "| decontaminated against | user_oriented_instructions.jsonl |" in text
    # funnel counted from the files: 64 generated, 14 filtered, 10 near-dups, 40 kept
    assert "| generated | 64 |  |  |" in text
    assert "| filter | 50 | −14 | refusal 8, too_short 6 |" in text
    assert "| near_dedup | 40 | −10 | near_duplicate 10 |" in text
    assert "rouge_novelty 31" in text and "2 generation requests failed" in text
    assert "| response words |" in text and "| score: judge |" in text
    assert "Rows scored: ifd 30/40, judge 30/40." in text
    assert "SmolLM2 models are released under Apache-2.0." in text
    assert "## Limitations" in text and "Decontaminated only against" in text
    # raw stage files are linked, not pasted, and carry no local path
    for name in ("manifest.json", "filter_config.yaml", "filter_report.json"):
        copied = (tmp_path / "ds" / "provenance" / name).read_text()
        assert f"(provenance/{name})" in text and "<summary><code>" not in text
        assert str(run_dir) not in copied and "/opt/venv" not in copied and "/home/someone" not in copied
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_card_degrades_when_the_stage_files_are_absent(tmp_path: Path) -> None:
    run = write_run(tmp_path / "bare", with_manifests=False)
    (run / "rejected.jsonl").unlink()
    card = _export(run, tmp_path / "ds")
    assert "No stage manifest or filter report" in card.text
    assert "## Funnel" not in card.text  # nothing was filtered: no section for a stage that did not run
    assert "annotations_creators" not in card.data.to_dict()
    assert not (tmp_path / "ds" / "provenance").exists()


def test_existing_card_is_merged_not_overwritten(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "README.md").write_text(
        "---\nlicense: mit\npretty_name: My Set\ntags:\n- my-tag\nlanguage:\n- fr\n"
        "configs:\n- config_name: extra\n  data_files: extra/*.csv\nsource_datasets:\n- original\n---\n\n"
        "# My Set\n\nHand-written intro that must survive.\n", encoding="utf-8")
    (out / "extra").mkdir()
    (out / "extra" / "x.csv").write_text("a\n1\n")
    card = _export(run_dir, out)
    data = card.data.to_dict()
    assert data["license"] == "mit" and data["pretty_name"] == "My Set" and data["source_datasets"] == ["original"]
    assert data["tags"][0] == "my-tag" and "synthetic" in data["tags"]
    assert data["language"] == ["fr"]
    assert [c["config_name"] for c in data["configs"]] == ["default", "extra"]
    assert "Hand-written intro that must survive." in card.text
    # a second export replaces our section in place, once
    card = _export(run_dir, out, license="apache-2.0")
    assert card.text.count(BEGIN) == 1 and "Hand-written intro" in card.text
    assert card.data.license == "apache-2.0"  # an explicit flag is the one thing that changes it


def test_unparsable_existing_card_stops_the_export(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    broken = "---\nlicense: [unclosed\n---\nbody\n"
    (out / "README.md").write_text(broken)
    with pytest.raises(CurateError, match="never overwritten"):
        export_records(run_dir / "curated.jsonl", ExportConfig(out=out))
    assert (out / "README.md").read_text() == broken
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]  # stopped before writing anything


def test_card_yaml_is_plain_yaml(run_dir: Path, tmp_path: Path) -> None:
    export_records(run_dir / "curated.jsonl", ExportConfig(out=tmp_path / "ds"))
    content = (tmp_path / "ds" / "README.md").read_text()
    assert content.startswith("---\n")
    front = yaml.safe_load(content.split("---\n")[1])
    assert front["configs"][0]["data_files"][0]["path"] == "data/train-*"


def test_merge_rules() -> None:
    ours = {"license": "other", "tags": ["synthetic"], "size_categories": ["n<1K"],
            "configs": [{"config_name": "default", "data_files": "data/*"}], "dataset_info": {"features": []}}
    existing = {"license": "mit", "tags": "mine", "size_categories": ["1K<n<10K"],
                "dataset_info": [{"config_name": "other", "features": []}, {"config_name": "default"}]}
    merged = merge_metadata(existing, ours)
    assert merged["license"] == "mit" and merged["tags"] == ["mine", "synthetic"]
    assert merged["size_categories"] == ["n<1K"]
    assert [d["config_name"] for d in merged["dataset_info"]] == ["default", "other"]
    assert size_category(999) == "n<1K" and size_category(1000) == "1K<n<10K"


def test_manifest_found_through_the_filter_reports_input(run_dir: Path, tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    gen.mkdir()
    for name in ("generated.jsonl", "manifest.json", "errors.jsonl"):
        (run_dir / name).rename(gen / name)
    (run_dir / "filter_report.json").write_text(f'{{"input": "{gen / "generated.jsonl"}", "kept": 40}}')
    text = _export(run_dir, tmp_path / "ds").text
    assert "| teacher model | SmolLM2-135M-Instruct |" in text and "| generated | 64 |" in text
