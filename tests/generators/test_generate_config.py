"""Config presets, YAML overrides, flag precedence and errors (seed loading: test_seeds.py)."""

from __future__ import annotations

import pytest

from curate.errors import CurateError
from generators.config import build_config


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


