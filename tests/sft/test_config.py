"""Recipes: every shipped YAML parses and validates; misspelt fields fail naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from curate.errors import CurateError
from sft import config as cfg
from sft.modeling import quantization_config

SFT_DIR = Path(cfg.__file__).parent
SHIPPED = sorted(SFT_DIR.rglob("*.yaml"))


def test_there_are_shipped_yamls():
    names = {p.relative_to(SFT_DIR).as_posix() for p in SHIPPED}
    assert {"recipes/default.yaml", "recipes/lora16.yaml", "recipes/tutorial.yaml", "recipes/quick.yaml",
            "recipes/demo.yaml",
            "accelerate/ddp.yaml", "accelerate/fsdp2.yaml", "accelerate/zero3.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(SFT_DIR).as_posix())
def test_every_shipped_yaml_parses(path):
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data
    if path.parent.name == "recipes":
        cfg.validate(data, str(path))
        resolved = cfg.build_config(str(path))
        from trl import SFTConfig

        sft = dict(resolved["sft"])
        sft.update({"use_cpu": True, "bf16": False, "fp16": False, "activation_checkpointing": False})
        for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if sft.get(key) == "auto":  # sized to the machine by sft.sizing before SFTConfig is built
                sft[key] = 1
        if sft.get("learning_rate") == "auto":  # resolved per method by sft.train.resolve
            sft["learning_rate"] = 2e-4
        SFTConfig(output_dir="unused", **sft)  # TRL itself accepts every field and value
    else:
        assert data["distributed_type"] in {"MULTI_GPU", "FSDP", "DEEPSPEED"}


def test_defaults_are_the_documented_recipe():
    config = cfg.build_config()
    assert config["method"] == "lora" and config["quantization"] == "auto"
    assert config["batch_size"] == 8 and config["sft"]["per_device_train_batch_size"] == "auto"
    assert config["lora"] == {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear",
                              "bias": "none", "task_type": "CAUSAL_LM"}
    sft = config["sft"]
    assert (sft["learning_rate"], sft["lr_scheduler_type"], sft["warmup_steps"]) == ("auto", "cosine", 0.03)
    assert config["hft"] == {"round_steps": 50, "seed": 42}
    assert config["eval_split"] == 0.05
    # the fields whose TRL defaults moved between releases are all explicit
    for key in ("max_length", "packing", "padding_free", "completion_only_loss", "assistant_only_loss",
                "eos_token", "loss_type", "truncation_mode"):
        assert key in sft


def test_recipe_then_flags_override_in_order(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("quantization: none\nsft:\n  learning_rate: 1.0e-4\n  max_length: 256\nlora:\n  r: 8\n")
    config = cfg.build_config(str(recipe), cfg.parse_set(["sft.max_length=64", "lora.lora_alpha=16"]))
    assert config["quantization"] == "none"
    assert config["sft"]["learning_rate"] == 1e-4
    assert config["sft"]["max_length"] == 64
    assert config["lora"]["r"] == 8 and config["lora"]["lora_alpha"] == 16
    assert config["sft"]["lr_scheduler_type"] == "cosine"  # untouched defaults survive


def test_shipped_recipe_by_name():
    assert cfg.build_config("quick")["sft"]["max_steps"] == 60


@pytest.mark.parametrize("text, message", [
    ("sft:\n  lerning_rate: 1.0\n", "sft.lerning_rate is not a field of trl.SFTConfig"),
    ("lora:\n  rank: 8\n", "unknown key 'lora.rank'"),
    ("epochs: 3\n", "unknown key 'epochs'"),
    ("quantization: int8\n", "quantization must be one of"),
    ("method: dora\n", "method must be one of"),
    ("hft:\n  rounds: 3\n", "unknown key 'hft.rounds'"),
    ("sft:\n  output_dir: x\n", "sft.output_dir is set by `curate train` itself"),
    ("eval_split: 1.5\n", "eval_split must be a number in"),
])
def test_bad_recipe_names_file_and_key(tmp_path, text, message):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(CurateError, match="bad.yaml") as err:
        cfg.build_config(str(recipe))
    assert message in str(err.value)


def test_set_parses_yaml_scalars_and_rejects_garbage():
    assert cfg.parse_set(["sft.packing=false", "sft.max_length=512", "model=x/y"]) == {
        "sft": {"packing": False, "max_length": 512}, "model": "x/y"}
    with pytest.raises(CurateError, match="KEY=VALUE"):
        cfg.parse_set(["sft.packing"])


def test_resolve_auto_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr(cfg, "cpu_has_bf16", lambda: False)
    resolved = cfg.resolve_auto(cfg.build_config(), on_cuda=False, flash_available=False)
    assert resolved["compute_dtype"] == "float32"
    assert resolved["quantization"] == "none"  # 16-bit LoRA on CPU
    assert resolved["attn_implementation"] == "sdpa"
    assert resolved["sft"]["bf16"] is False


def test_resolve_auto_picks_flash_attention_on_cuda(monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: calls.append(k) or True)
    resolved = cfg.resolve_auto(cfg.build_config(), on_cuda=True, flash_available=True)
    assert resolved["attn_implementation"] == "flash_attention_2"
    assert resolved["compute_dtype"] == "bfloat16" and resolved["sft"]["bf16"] is True
    assert calls == [{"including_emulation": False}]  # emulated bf16 (V100, T4) is slow: float16 there
    assert resolved["quantization"] == "nf4"  # QLoRA where it pays


@pytest.mark.parametrize("method, quantization, expected", [
    ("qlora", "auto", "nf4"), ("lora", "none", "none"), ("full", "auto", "none"), ("hft", "auto", "none")])
def test_method_decides_quantization(method, quantization, expected):
    assert cfg.resolve_quantization({"method": method, "quantization": quantization}, on_cuda=False)[0] == expected


def test_full_fine_tuning_of_a_4bit_base_is_an_error():
    with pytest.raises(CurateError, match="4-bit base cannot be trained"):
        cfg.resolve_quantization({"method": "full", "quantization": "nf4"}, on_cuda=True)


def test_qlora_storage_dtype_is_set_when_sharded(monkeypatch):
    import torch

    plain = quantization_config("bfloat16", sharded=False)
    assert plain.bnb_4bit_quant_type == "nf4" and plain.bnb_4bit_use_double_quant
    assert plain.bnb_4bit_compute_dtype == torch.bfloat16
    assert plain.bnb_4bit_quant_storage == torch.uint8
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` with fsdp2.yaml exports
    assert quantization_config("bfloat16").bnb_4bit_quant_storage == torch.bfloat16


def test_shipped_recipe_name_wins_over_a_folder_of_the_same_name(tmp_path, monkeypatch):
    from sft.config import load_yaml

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # e.g. the demo's output folder
    assert load_yaml("demo")["batch_size"] == 1
