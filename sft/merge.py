"""`curate train --merge`: the adapter merged into a bf16 copy of the base model.

The merge always loads the base unquantized in bf16: merging LoRA deltas into 4-bit
weights would re-quantize them and lose most of what was learned.

    curate train curated.jsonl --out runs/NAME --merge      # writes runs/NAME/merged/
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml

from curate.errors import CurateError


def run_base(run_dir: Path) -> str:
    config_path = run_dir / "config.yaml"
    if not config_path.exists():
        raise CurateError(f"{run_dir}: not a curate run (no config.yaml)")
    config = yaml.safe_load(config_path.read_text())
    base = (config.get("run") or {}).get("base_model")
    if not base:
        raise CurateError(f"{config_path}: run.base_model is missing")
    if not Path(base).exists() and config.get("model") == "bundled":
        from sft.modeling import bundled_hf_dir

        base = str(bundled_hf_dir())  # the cache was cleared: convert again
    return base


def merge_run(run_dir: str | Path) -> Path:
    """Write ``run_dir/merged`` (bf16 safetensors + tokenizer) and return its path."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = Path(run_dir)
    if not (run_dir / "adapter_config.json").exists():
        raise CurateError(f"{run_dir}: no adapter to merge (adapter_config.json missing)")
    base = AutoModelForCausalLM.from_pretrained(run_base(run_dir), dtype=torch.bfloat16)
    merged = PeftModel.from_pretrained(base, str(run_dir)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    target = run_dir / "merged"
    staging = Path(tempfile.mkdtemp(prefix=".merged.", dir=run_dir))
    try:
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
