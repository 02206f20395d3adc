"""Config presets, YAML overrides, flag precedence and errors; seed loading."""

from __future__ import annotations

import json

import pytest

from curate.errors import CurateError, InputError
from generators.config import build_config
from generators.seeds import load_seeds, seeds_hash


def test_presets_have_the_published_constants():
    si = build_config()
    assert (si.num_prompt_instructions, si.num_machine_instructions, si.request_batch_size) == (8, 2, 5)
    assert (si.novelty_threshold, si.min_words, si.max_words, si.max_instances) == (0.7, 3, 150, 5)
    assert (si.instructions.temperature, si.instructions.top_p, si.instructions.presence_penalty) == (0.7, 0.5, 2.0)
    assert len(si.blacklist) == 13 and si.classify
    alpaca = build_config(preset="alpaca")
    assert (alpaca.num_prompt_instructions, alpaca.num_machine_instructions, alpaca.tasks_per_request) == (3, 0, 20)
    assert len(alpaca.blacklist) == 18 and not alpaca.classify and alpaca.max_instances == 1
    assert alpaca.instructions.max_tokens == 3072


def test_yaml_overrides_and_flags_win(tmp_path):
    path = tmp_path / "gen.yaml"
    path.write_text("preset: alpaca\nnovelty_threshold: 0.5\nseed: 1\ninstructions:\n  temperature: 0.2\n")
    config = build_config(path, seed=9)
    assert config.preset == "alpaca" and config.novelty_threshold == 0.5 and config.seed == 9
    assert config.instructions.temperature == 0.2 and config.instructions.max_tokens == 3072  # rest of the preset


def test_config_errors_name_the_field(tmp_path):
    path = tmp_path / "gen.yaml"
    path.write_text("novelty: 0.5\n")
    with pytest.raises(CurateError, match="unknown config field 'novelty'"):
        build_config(path)
    with pytest.raises(CurateError, match="--num-instructions"):
        build_config(num_instructions=0)
    with pytest.raises(CurateError, match="--preset"):
        build_config(preset="evol")
    path.write_text("instructions:\n  temprature: 1\n")
    with pytest.raises(CurateError, match="config field instructions"):
        build_config(path)


def test_seeds_from_a_folder_in_name_order_with_defaults(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "b.jsonl").write_text(json.dumps({"instruction": "Second file task", "instances": []}) + "\n")
    (folder / "a.jsonl").write_text(json.dumps({"id": "x1", "instruction": "First", "is_classification": True,
                                                "instances": [{"input": "i", "output": "o"}]}) + "\n")
    (folder / "notes.txt").write_text("ignored")
    seeds = load_seeds(folder)
    assert [(s.id, s.instruction, s.is_classification) for s in seeds] == [("x1", "First", True),
                                                                           ("b-1", "Second file task", False)]
    digest = seeds_hash(folder)
    (folder / "notes.txt").write_text("changed")
    assert seeds_hash(folder) == digest
    (folder / "b.jsonl").write_text(json.dumps({"instruction": "Changed", "instances": []}) + "\n")
    assert seeds_hash(folder) != digest


@pytest.mark.parametrize("row, field", [
    ({"instances": []}, "instruction"),
    ({"instruction": "x", "instances": {"input": ""}}, "instances"),
    ({"instruction": "x", "instances": [{"input": 1, "output": ""}]}, "instances[0].input"),
    ({"instruction": "x", "instances": [], "is_classification": "yes"}, "is_classification"),
])
def test_bad_seed_rows(tmp_path, row, field):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"instruction": "ok", "instances": []}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(InputError) as err:
        load_seeds(path)
    assert (err.value.line, err.value.field) == (2, field)


def test_duplicate_seed_ids_across_files(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": "s", "instruction": "A", "instances": []}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "s", "instruction": "B", "instances": []}) + "\n")
    with pytest.raises(InputError, match="duplicate seed id 's'"):
        load_seeds(tmp_path)
