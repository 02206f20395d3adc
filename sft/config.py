"""The resolved configuration of one `curate train` run, loaded with the one config loader (curate.config).

Three layers, later ones win: ``sft/recipes/default.yaml`` (our defaults), a ``--config``
recipe, then flags (``--set sft.learning_rate=1e-4`` reaches any field). ``sft:`` holds
TRL's own ``SFTConfig`` fields and ``lora:`` peft's ``LoraConfig`` fields, passed through
unchanged: a misspelt key is an error naming the file and the key, not a silently ignored
setting. ``resolve_auto`` turns every ``auto``/``null`` that depends on the machine into a
concrete value (the micro-batch is sized later, by ``sft.sizing``), and the result is written
to ``runs/NAME/config.yaml``.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from curate.config import check_keys, merge, parse_set, read_yaml, shipped_names
from curate.errors import CurateError

__all__ = ["build_config", "load_yaml", "parse_set", "resolve_auto", "validate", "shipped_recipes"]

RECIPES = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = RECIPES / "default.yaml"
TOP_LEVEL = {
    "model", "method", "quantization", "compute_dtype", "attn_implementation", "eval_split", "eval_file",
    "strict", "lora", "sft", "baseline", "batch_size", "memory_budget_gb", "hft",
}
METHODS = ("lora", "qlora", "full", "hft")
QUANTIZATIONS = ("auto", "nf4", "none")
DTYPES = ("auto", "bfloat16", "float32", "float16")
HFT_FIELDS = ("round_steps", "seed")
# Set by `curate train` itself; a recipe that sets them would be overwritten, so say so instead.
OWNED_SFT_FIELDS = {"output_dir", "dataset_text_field", "dataset_kwargs", "remove_unused_columns"}


def is_adapter(method: str) -> bool:
    """lora and qlora train adapters; full and hft train the model's own weights."""
    return method in ("lora", "qlora")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A recipe file, or a shipped recipe by name (``--config quick``)."""
    return read_yaml(path, RECIPES)[0]


def shipped_recipes() -> list[str]:
    return shipped_names(RECIPES)


def sft_field_names() -> set[str]:
    from trl import SFTConfig

    return {f.name for f in dataclasses.fields(SFTConfig) if f.init}


def lora_field_names() -> set[str]:
    from peft import LoraConfig

    return {f.name for f in dataclasses.fields(LoraConfig) if f.init}


def _check_choice(config: dict[str, Any], key: str, choices: tuple, source: str) -> None:
    if key in config and config[key] not in choices:
        raise CurateError(f"{source}: {key} must be one of {', '.join(map(str, choices))}, got {config[key]!r}")


def validate(config: dict[str, Any], source: str) -> None:
    """Raise CurateError naming ``source`` and the first key or value that is not allowed."""
    check_keys(config, TOP_LEVEL, source)
    _check_choice(config, "method", METHODS, source)
    _check_choice(config, "quantization", QUANTIZATIONS, source)
    _check_choice(config, "compute_dtype", DTYPES, source)
    _check_choice(config, "baseline", (None, "tutorial"), source)
    split = config.get("eval_split", 0.0)
    if not isinstance(split, (int, float)) or not 0 <= split < 1:
        raise CurateError(f"{source}: eval_split must be a number in [0, 1), got {split!r}")
    batch = config.get("batch_size", 1)
    if not isinstance(batch, int) or batch < 1:
        raise CurateError(f"{source}: batch_size must be a positive integer, got {batch!r}")
    sft, lora, hft = config.get("sft") or {}, config.get("lora") or {}, config.get("hft") or {}
    if not all(isinstance(part, dict) for part in (sft, lora, hft)):
        raise CurateError(f"{source}: 'sft', 'lora' and 'hft' are mappings of field: value")
    known = sft_field_names()
    for key in sft:  # SFTConfig has ~200 fields: name the class instead of listing them all
        if key not in known:
            raise CurateError(f"{source}: sft.{key} is not a field of trl.SFTConfig (see `python -m trl sft --help`)")
        if key in OWNED_SFT_FIELDS:
            raise CurateError(f"{source}: sft.{key} is set by `curate train` itself; remove it from the recipe")
    check_keys(lora, lora_field_names(), source, prefix="lora.")
    check_keys(hft, HFT_FIELDS, source, prefix="hft.")


def build_config(recipe: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the recipe, then flag overrides; each layer validated where it came from."""
    config, source = read_yaml(DEFAULT_RECIPE)
    validate(config, source)
    if recipe:
        layer, source = read_yaml(recipe, RECIPES)
        validate(layer, source)
        config = merge(config, layer)
    if overrides:
        validate(overrides, "flags")
        config = merge(config, overrides)
    return config


def cpu_has_bf16() -> bool:
    """Native bf16 matmul on this CPU (AMX or AVX512-BF16); elsewhere bf16 is emulated and ~3x slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_has_bf16() -> bool:
    """Native bf16 on this GPU (Ampere or newer); V100/T4 only emulate it, slowly."""
    import torch

    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch without the argument
        return torch.cuda.get_device_capability()[0] >= 8


def resolve_quantization(config: dict[str, Any], on_cuda: bool) -> tuple[str, str | None]:
    """nf4 or none for this method and machine, and the one-line reason when chosen automatically."""
    method, quantization = config.get("method", "lora"), config.get("quantization", "auto")
    if method == "qlora":
        if quantization == "none":
            raise CurateError("method qlora quantizes the base to nf4; quantization=none contradicts it")
        return "nf4", None
    if method in ("full", "hft"):
        if quantization == "nf4":
            raise CurateError(f"method {method} trains every weight; a 4-bit base cannot be trained (drop quantization)")
        return "none", None
    if quantization != "auto":
        return quantization, None
    if on_cuda:
        return "nf4", "quantization: nf4 (QLoRA) on GPU: 4-bit base weights leave the memory to activations"
    return "none", ("quantization: none (16-bit LoRA) on CPU: 4-bit weights are de-quantized at every matmul "
                    "there (about 3x slower per step) and a CPU has the memory a small model needs")


def resolve_auto(config: dict[str, Any], on_cuda: bool, flash_available: bool) -> dict[str, Any]:
    """Replace every machine-dependent ``auto``/``null`` with the value this run will use."""
    config = copy.deepcopy(config)
    sft = config["sft"]
    config.setdefault("method", "lora")
    config["quantization"] = resolve_quantization(config, on_cuda)[0]
    if config["compute_dtype"] == "auto":
        if on_cuda:
            config["compute_dtype"] = "bfloat16" if cuda_has_bf16() else "float16"
        else:
            config["compute_dtype"] = "bfloat16" if cpu_has_bf16() else "float32"
    if config["attn_implementation"] == "auto":
        config["attn_implementation"] = "flash_attention_2" if on_cuda and flash_available else "sdpa"
    dtype = config["compute_dtype"]
    if sft.get("bf16") is None:
        sft["bf16"] = dtype == "bfloat16"
    if sft.get("fp16") is None:
        sft["fp16"] = dtype == "float16"
    if sft.get("gradient_checkpointing") is not None and sft.get("activation_checkpointing") is None:
        sft["activation_checkpointing"] = sft.pop("gradient_checkpointing")
    if not on_cuda:
        sft["use_cpu"] = True
    return config
