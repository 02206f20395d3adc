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
    with pytest.raises(CurateError, match=r"gen.yaml: unknown key 'novelty' \(known: .*novelty_threshold"):
        build_config(path)
    with pytest.raises(CurateError, match="--num-instructions"):
        build_config(num_instructions=0)
    with pytest.raises(CurateError, match="--preset"):
        build_config(preset="evol")
    path.write_text("instructions:\n  temprature: 1\n")
    with pytest.raises(CurateError, match="gen.yaml: unknown key 'instructions.temprature'"):
        build_config(path)


def test_engine_and_its_options_from_yaml_and_flags(tmp_path):
    path = tmp_path / "gen.yaml"
    path.write_text("engine: vllm\nteacher: org/model\nengine_options:\n  gpu_memory_utilization: 0.5\n"
                    "  max_model_len: 4096\n")
    config = build_config(path, engine_options={"max_model_len": 8192, "tensor_parallel_size": 2})
    assert (config.engine, config.teacher) == ("vllm", "org/model")
    assert config.engine_options == {"gpu_memory_utilization": 0.5, "max_model_len": 8192, "tensor_parallel_size": 2}
    from generators.engines.base import engine_options
    from generators.engines.factory import check_engine, options_class

    assert check_engine(config.engine, config.engine_options) == "vllm"
    options = engine_options(options_class("vllm"), "vllm", config.engine_options)
    args = options.llm_args("org/model")
    assert (args["gpu_memory_utilization"], args["max_model_len"], args["tensor_parallel_size"]) == (0.5, 8192, 2)
    assert args["enable_prefix_caching"] is True


def test_api_key_is_masked_in_the_recorded_config():
    config = build_config(engine_options={"api_key": "sk-live-abcdefghijklmnop", "base_url": "http://x/v1"})
    assert config.to_dict()["engine_options"] == {"api_key": "***", "base_url": "http://x/v1"}
    assert config.engine_options["api_key"] == "sk-live-abcdefghijklmnop"  # the engine still gets it




def test_dry_run_projection_follows_the_documented_formula():
    from generators.estimate import projected_requests

    # self-instruct asks for items 9..15 (7 new) per request; alpaca for 20 - 3 = 17; half accepted
    assert projected_requests(build_config(num_instructions=100)) == {
        "instructions": 29, "classification": 100, "instances": 100}
    assert projected_requests(build_config(preset="alpaca", num_instructions=100)) == {"instructions": 12}
