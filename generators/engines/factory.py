"""Choosing and building an engine: ``auto``/``cpu`` resolved to a concrete engine, then built with its options."""

from __future__ import annotations

import importlib.util
from typing import Any

from curate.errors import CurateError
from generators.engines.base import CPU_DEFAULT, ENGINES, Engine, has_cuda


def resolve_engine_name(name: str) -> str:
    """Turn ``auto``/``cpu`` into a concrete engine name."""
    if name == "auto":
        return "vllm" if importlib.util.find_spec("vllm") is not None and has_cuda() else CPU_DEFAULT
    if name == "cpu":
        return CPU_DEFAULT
    if name not in ENGINES:
        raise CurateError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    return name


def make_engine(name: str, model: str | None = None, **options: Any) -> Engine:
    """Build the engine ``name`` for ``model`` (None: the bundled SmolLM2 for local engines)."""
    name = resolve_engine_name(name)
    if name == "openai":
        from generators.engines.openai_server import OpenAIEngine

        return OpenAIEngine(model=model, **options)
    if name == "vllm":
        from generators.engines.vllm_local import VLLMEngine

        return VLLMEngine(model=model, **options)
    if name == "llamacpp":
        from generators.engines.llamacpp import LlamaCppEngine

        return LlamaCppEngine(model=model, **options)
    from generators.engines.transformers_local import TransformersEngine

    return TransformersEngine(model=model, **options)

