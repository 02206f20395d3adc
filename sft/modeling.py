"""Base model, quantization and LoRA settings for `curate train`, `curate chat` and `--merge`.

The bundled SmolLM2-135M-Instruct ships as a Q4_1 GGUF file. transformers de-quantizes it
(``gguf_file=``) into a normal model; we save that once as a plain safetensors folder in
the cache (``$CURATE_CACHE``, default ``~/.cache/curate``) so that QLoRA can re-quantize it
to nf4 with bitsandbytes on load, ``--merge`` can load it in bf16, and the adapter config
points at a real folder. Any local folder or hub id works the same way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from curate.errors import CurateError

BUNDLED = "bundled"


def quiet_library_warnings() -> None:
    """Silence library warnings about their own internals, not about our settings."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # On CPUs with AVX512-BF16, importing bitsandbytes tries to fetch a 4-bit kernel from the hub through the
    # optional `kernels` package and warns when it is absent: we never download at run time, and 4-bit on CPU
    # is not what the defaults choose, so the warning only confuses.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def cache_dir() -> Path:
    return Path(os.environ.get("CURATE_CACHE") or Path.home() / ".cache" / "curate")


def bundled_hf_dir() -> Path:
    """The bundled GGUF as a plain transformers folder, converted on first use (about a minute on CPU)."""
    from curate.records.model import bundled_gguf, load_bundled_hf

    gguf = bundled_gguf()
    target = cache_dir() / "models" / f"{gguf.stem}-{gguf.stat().st_size}"
    if (target / "config.json").exists():
        return target
    model, tokenizer = load_bundled_hf("float32")
    # The weights are plain float32 now; the GGUF marker would make transformers refuse to save them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            os.rename(staging, target)
        except OSError:  # another process finished the same conversion first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def resolve_base(model: str) -> str:
    """A folder or hub id transformers can load; ``bundled`` becomes the converted cache folder."""
    if model == BUNDLED:
        return str(bundled_hf_dir())
    if Path(model).exists():
        if not (Path(model) / "config.json").exists():
            raise CurateError(f"{model}: not a transformers model folder (no config.json)")
        return str(Path(model).resolve())
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise CurateError(f"{model}: no such model folder")
    return model  # a hub id; from_pretrained reports a missing one


def torch_dtype(name: str):
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def _env_true(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def using_sharding() -> bool:
    """`accelerate launch` with the FSDP or DeepSpeed profile exports these; QLoRA then needs bnb_4bit_quant_storage."""
    return _env_true("ACCELERATE_USE_FSDP") or _env_true("ACCELERATE_USE_DEEPSPEED")


def quantization_config(compute_dtype: str, sharded: bool | None = None):
    """nf4 + double quantization (QLoRA). Under FSDP/ZeRO-3 the packed 4-bit weights must be stored in
    the same dtype as the other parameters, or they cannot be flattened into one sharded buffer."""
    from transformers import BitsAndBytesConfig

    dtype = torch_dtype(compute_dtype)
    kwargs: dict[str, Any] = {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": dtype,
    }
    if using_sharding() if sharded is None else sharded:
        kwargs["bnb_4bit_quant_storage"] = dtype
    return BitsAndBytesConfig(**kwargs)


def device_map(on_cuda: bool) -> Any:
    if not on_cuda:
        return "cpu"
    if using_sharding():
        return None  # FSDP / DeepSpeed place the shards themselves
    from accelerate import PartialState

    return {"": PartialState().local_process_index}


def load_tokenizer(base: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(base)
    except OSError as err:  # a hub id offline or misspelt, a folder without tokenizer files
        raise CurateError(f"cannot load the tokenizer of {base}: {str(err).splitlines()[0]}") from None


def load_model(base: str, quantization: str, compute_dtype: str, attn_implementation: str, on_cuda: bool):
    """The base model as training and `curate chat` use it: nf4-quantized or in the compute dtype."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": torch_dtype(compute_dtype),
        "attn_implementation": attn_implementation,
        "device_map": device_map(on_cuda),
    }
    if quantization == "nf4":
        kwargs["quantization_config"] = quantization_config(compute_dtype)
    if attn_implementation == "curate_documents":
        from sft.packing import register_document_attention

        register_document_attention()
    try:
        return AutoModelForCausalLM.from_pretrained(base, **kwargs)
    except ImportError as err:
        if "flash" in attn_implementation:
            raise CurateError(f"{attn_implementation} is not installed: `pip install flash-attn` or use sdpa") from None
        raise CurateError(str(err)) from None
    except OSError as err:
        raise CurateError(f"cannot load the model {base}: {str(err).splitlines()[0]}") from None


def lora_config(fields: dict[str, Any]):
    from sft.methods import lora_config as build

    return build(fields)


def flash_attention_available() -> tuple[bool, str | None]:
    """FlashAttention 2 usable here: transformers' own check (a working, matching build) and an Ampere+ GPU.

    Returns ``(available, why_not)``; ``why_not`` is a one-line notice when CUDA is there but FlashAttention is not.
    """
    import torch
    from transformers.utils import is_flash_attn_2_available

    if not torch.cuda.is_available():
        return False, None
    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return False, (f"attention: sdpa, not FlashAttention 2: this GPU has compute capability {major}.{minor} "
                       "and FlashAttention 2 needs 8.0 (Ampere) or newer")
    if not is_flash_attn_2_available():
        return False, ("attention: sdpa, not FlashAttention 2: flash-attn is not installed, or its build does not "
                       "match this torch/CUDA (`pip install flash-attn --no-build-isolation`)")
    return True, None
