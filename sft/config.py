"""The resolved configuration of one `curate train` run.

Three layers, later ones win: ``sft/recipes/default.yaml`` (our defaults), a ``--config``
recipe, then flags (``--set sft.learning_rate=1e-4`` reaches any field). ``sft:`` holds
TRL's own ``SFTConfig`` fields and ``lora:`` peft's ``LoraConfig`` fields, passed through
unchanged: a misspelt key is an error naming the file and the key, not a silently ignored
setting. ``resolve_auto`` turns every ``auto``/``null`` that depends on the machine into a
concrete value, and the result is written to ``runs/NAME/config.yaml``.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import yaml

from curate.errors import CurateError

RECIPES = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = RECIPES / "default.yaml"
TOP_LEVEL = {
    "model", "quantization", "compute_dtype", "attn_implementation", "eval_split", "eval_file",
    "strict", "lora", "sft", "baseline",
}
QUANTIZATIONS = ("nf4", "none")
DTYPES = ("auto", "bfloat16", "float32", "float16")
# Set by `curate train` itself; a recipe that sets them would be overwritten, so say so instead.
OWNED_SFT_FIELDS = {"output_dir", "dataset_text_field", "dataset_kwargs", "remove_unused_columns"}


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        candidate = RECIPES / f"{path.name}.yaml"
        if candidate.exists():  # `--config quick` names a shipped recipe
            path = candidate
        else:
            raise CurateError(f"{path}: no such recipe (shipped: {', '.join(shipped_recipes())})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise CurateError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise CurateError(f"{path}: a recipe is a YAML mapping, got {type(data).__name__}")
    return data


def shipped_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_set(assignments: list[str]) -> dict[str, Any]:
    """``["sft.learning_rate=1e-4", "lora.r=8"]`` -> nested dict; values parsed as YAML scalars."""
    result: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CurateError(f"--set {item!r}: expected KEY=VALUE, e.g. sft.learning_rate=1e-4")
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw else None
    return result


def sft_field_names() -> set[str]:
    from trl import SFTConfig

    return {f.name for f in dataclasses.fields(SFTConfig) if f.init}


def lora_field_names() -> set[str]:
    from peft import LoraConfig

    return {f.name for f in dataclasses.fields(LoraConfig) if f.init}


def validate(config: dict[str, Any], source: str) -> None:
    """Raise CurateError naming ``source`` and the first key that is not a known field."""
    for key in config:
        if key not in TOP_LEVEL:
            raise CurateError(f"{source}: unknown key '{key}' (allowed: {', '.join(sorted(TOP_LEVEL))})")
    if config.get("quantization", "nf4") not in QUANTIZATIONS:
        raise CurateError(f"{source}: quantization must be one of {QUANTIZATIONS}, got {config['quantization']!r}")
    if config.get("compute_dtype", "auto") not in DTYPES:
        raise CurateError(f"{source}: compute_dtype must be one of {DTYPES}, got {config['compute_dtype']!r}")
    if config.get("baseline") not in (None, "tutorial"):
        raise CurateError(f"{source}: baseline can only be 'tutorial', got {config['baseline']!r}")
    split = config.get("eval_split", 0.0)
    if not isinstance(split, (int, float)) or not 0 <= split < 1:
        raise CurateError(f"{source}: eval_split must be a number in [0, 1), got {split!r}")
    sft = config.get("sft") or {}
    lora = config.get("lora") or {}
    if not isinstance(sft, dict) or not isinstance(lora, dict):
        raise CurateError(f"{source}: 'sft' and 'lora' are mappings of field: value")
    known = sft_field_names()
    for key in sft:
        if key not in known:
            raise CurateError(f"{source}: sft.{key} is not a field of trl.SFTConfig (see `python -m trl sft --help`)")
        if key in OWNED_SFT_FIELDS:
            raise CurateError(f"{source}: sft.{key} is set by `curate train` itself; remove it from the recipe")
    known = lora_field_names()
    for key in lora:
        if key not in known:
            raise CurateError(f"{source}: lora.{key} is not a field of peft.LoraConfig")


def build_config(recipe: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the recipe, then flag overrides; each layer validated where it came from."""
    config = load_yaml(DEFAULT_RECIPE)
    validate(config, str(DEFAULT_RECIPE))
    if recipe:
        layer = load_yaml(recipe)
        validate(layer, str(recipe))
        config = _merge(config, layer)
    if overrides:
        validate(overrides, "flags")
        config = _merge(config, overrides)
    return config


def cpu_has_bf16() -> bool:
    """Native bf16 matmul on this CPU (AMX or AVX512-BF16); elsewhere bf16 is emulated and ~3x slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_auto(config: dict[str, Any], on_cuda: bool, flash_available: bool) -> dict[str, Any]:
    """Replace every machine-dependent ``auto``/``null`` with the value this run will use."""
    import torch

    config = copy.deepcopy(config)
    sft = config["sft"]
    if config["compute_dtype"] == "auto":
        if on_cuda:
            config["compute_dtype"] = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            config["compute_dtype"] = "bfloat16" if cpu_has_bf16() else "float32"
    if config["attn_implementation"] == "auto":
        config["attn_implementation"] = "flash_attention_2" if on_cuda and flash_available else "sdpa"
    dtype = config["compute_dtype"]
    if sft.get("bf16") is None:
        sft["bf16"] = dtype == "bfloat16"
    if sft.get("fp16") is None:
        sft["fp16"] = dtype == "float16"
    if sft.get("activation_checkpointing") is None and sft.get("gradient_checkpointing") is None:
        sft["activation_checkpointing"] = on_cuda
    if not on_cuda:
        sft["use_cpu"] = True
    return config
