"""The shipped seed tasks (seeds/seed_tasks.jsonl): schema, mix, wording rules, that curate imports them,
and that they ship as package data (`curate generate` finds them from any folder).

Run: .venv/bin/pytest tests/generators/test_seeds.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate.cli import cli
from curate.errors import InputError
from generators.instruction_rules import SELF_INSTRUCT_BLACKLIST
from generators.seeds import load_seeds, seeds_hash

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "seed_tasks.jsonl"

# Self-Instruct drops generated instructions containing these words (the model cannot
# see or produce such media); seeds containing them would teach the generator to write
# instructions that the filter then throws away.
BLACKLIST = list(SELF_INSTRUCT_BLACKLIST)

# Instructions that point at material they do not contain must come with an input.
POINTS_AT_INPUT = re.compile(
    r"\b(this|these|below|following|each (sentence|date)|the (second|first) sentence|"
    r"the (passage|text|paragraph|sentences?|story|news story|notice|email|review|message|log excerpt|"
    r"data|csv data|snippet|advertisement|announcement|report|conversation|booking confirmation|"
    r"explanation|argument|headline|news headline|product review|animal|question|recipe text|"
    r"two job offers|three people))\b",
    re.IGNORECASE,
)


def _lines() -> list[str]:
    return [line for line in SEEDS.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in _lines()]


def test_every_line_is_a_json_object_and_there_are_enough(rows):
    raw = SEEDS.read_text(encoding="utf-8")
    assert raw.endswith("\n") and "\n\n" not in raw, "one object per line, no blank lines"
    assert all(isinstance(row, dict) for row in rows)
    assert len(rows) >= 60


def test_rows_follow_the_self_instruct_seed_schema(rows):
    for row in rows:
        where = row.get("id")
        assert list(row) == ["id", "name", "instruction", "instances", "is_classification"], where
        assert isinstance(row["name"], str) and re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", row["name"]), where
        assert isinstance(row["instruction"], str) and row["instruction"].strip(), where
        assert isinstance(row["is_classification"], bool), where
        assert isinstance(row["instances"], list) and row["instances"], where
        for instance in row["instances"]:
            assert list(instance) == ["input", "output"], where
            assert isinstance(instance["input"], str), where
            assert isinstance(instance["output"], str) and instance["output"].strip(), where


def test_ids_are_consecutive_and_names_unique(rows):
    assert [row["id"] for row in rows] == [f"seed_task_{i}" for i in range(len(rows))]
    names = [row["name"] for row in rows]
    assert len(set(names)) == len(names)


def test_no_duplicate_instructions(rows):
    normalized = [" ".join(row["instruction"].lower().split()) for row in rows]
    duplicates = {text for text in normalized if normalized.count(text) > 1}
    assert not duplicates


def test_instruction_length_and_opening(rows):
    for row in rows:
        words = len(row["instruction"].split())
        assert 4 <= words <= 150, (row["id"], words)
        assert not row["instruction"].lower().startswith("write a program"), row["id"]


def test_no_blacklisted_word_in_any_instruction(rows):
    for row in rows:
        text = row["instruction"].lower()
        hits = [word for word in BLACKLIST if re.search(rf"\b{re.escape(word)}\b", text)]
        assert not hits, (row["id"], hits)


def test_classification_share_is_between_10_and_20_percent(rows):
    share = sum(row["is_classification"] for row in rows) / len(rows)
    assert 0.10 <= share <= 0.20, share


def test_classification_outputs_are_labels_named_in_the_instruction(rows):
    for row in (r for r in rows if r["is_classification"]):
        for instance in row["instances"]:
            label = instance["output"]
            assert "\n" not in label and len(label.split()) <= 3, (row["id"], label)
            assert re.search(rf"(?<!\w){re.escape(label)}(?!\w)", row["instruction"]), (row["id"], label)


def test_tasks_that_refer_to_material_have_an_input(rows):
    for row in rows:
        if POINTS_AT_INPUT.search(row["instruction"]):
            assert all(instance["input"].strip() for instance in row["instances"]), row["id"]


def test_curate_import_takes_every_seed_and_convert_gives_them_back(rows, tmp_path):
    records = tmp_path / "seeds.records.jsonl"
    runner = CliRunner()
    result = runner.invoke(cli, ["import", str(SEEDS), "--out", str(records)])
    assert result.exit_code == 0, result.output
    assert "self-instruct" in result.output
    imported = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    assert len(imported) == len(_lines())
    assert len({record["id"] for record in imported}) == len(imported), "two seeds have the same content"
    assert [record["meta"]["source_id"] for record in imported] == [row["id"] for row in rows]

    back = tmp_path / "seeds.back.jsonl"
    result = runner.invoke(cli, ["convert", str(records), "--to", "self-instruct", "--out", str(back)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in back.read_text(encoding="utf-8").splitlines()] == rows


def test_seeds_from_a_folder_in_name_order_with_defaults(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "b.jsonl").write_text(json.dumps({"instruction": "Second file task", "instances": [{"input": "", "output": "o"}]}) + "\n")
    (folder / "a.jsonl").write_text(json.dumps({"id": "x1", "instruction": "First", "is_classification": True,
                                                "instances": [{"input": "i", "output": "o"}]}) + "\n")
    (folder / "notes.txt").write_text("ignored")
    seeds = load_seeds(folder)
    assert [(s.id, s.instruction, s.is_classification) for s in seeds] == [("x1", "First", True),
                                                                           ("b-1", "Second file task", False)]
    digest = seeds_hash(folder)
    (folder / "notes.txt").write_text("changed")
    assert seeds_hash(folder) == digest
    (folder / "b.jsonl").write_text(json.dumps({"instruction": "Changed", "instances": [{"input": "", "output": "o"}]}) + "\n")
    assert seeds_hash(folder) != digest


@pytest.mark.parametrize("row, field", [
    ({"instances": [{"input": "", "output": "o"}]}, "instruction"),
    ({"instruction": "x", "instances": {"input": ""}}, "instances"),
    ({"instruction": "x", "instances": [{"input": 1, "output": ""}]}, "instances[0].input"),
    ({"instruction": "x", "instances": [{"output": "o"}], "is_classification": "yes"}, "is_classification"),
    ({"instruction": "x", "instances": []}, "instances"),              # one parser: an empty list is refused
    ({"instruction": "x", "instances": [{"input": "i"}]}, "instances[0].output"),
    (["not", "an", "object"], None),
])
def test_bad_seed_rows(tmp_path, row, field):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"instruction": "ok", "instances": [{"input": "", "output": "o"}]}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(InputError) as err:
        load_seeds(path)
    assert (err.value.line, err.value.field) == (2, field)


def test_duplicate_seed_ids_across_files(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": "s", "instruction": "A", "instances": [{"input": "", "output": "o"}]}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "s", "instruction": "B", "instances": [{"input": "", "output": "o"}]}) + "\n")
    with pytest.raises(InputError, match="duplicate seed id 's'"):
        load_seeds(tmp_path)


def test_generate_uses_the_bundled_seeds_from_any_folder(scripted_server, tmp_path):
    """No --seeds, run from a folder that has no seeds/: the packaged seed tasks are used."""
    scripted_server.default_text = lambda body: (
        "No" if body["messages"][0]["content"].endswith("Is it classification?")
        else "Example 1\nNumber: 4\nOutput: 16" if body["messages"][0]["content"].startswith("Come up with examples")
        else "9. Square the given number and explain each step.")
    env = {**os.environ, "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "curate", "generate", "-n", "1", "--out", "out/generated.jsonl", "--engine", "openai",
         "--base-url", scripted_server.base_url, "--teacher", "scripted-model", "--batch-size", "1", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["seeds"]["count"] == len(_lines())
    assert Path(manifest["seeds"]["path"]).resolve() == SEEDS.parent


@pytest.mark.slow
def test_the_wheel_carries_the_seed_tasks(tmp_path):
    """Build the wheel from a copy of the sources: seeds/seed_tasks.jsonl is inside it."""
    root = SEEDS.parents[1]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    for package in ("curate", "generators", "sft", "seeds"):
        shutil.copytree(root / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("curate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"seeds/__init__.py", "seeds/seed_tasks.jsonl", "generators/prompts/self_instruct_classify.txt"} <= names
