"""Choosing and building an engine: ``auto``/``cpu`` resolved to a concrete engine, its options checked, then built.

Library code (judges, evals) calls ``make_engine("openai", "gpt-4o-mini", base_url=..., concurrency=4)``;
the CLI passes its flags the same way (None values count as not given). Rules:

- ``auto`` with a ``base_url`` is ``openai``; else vLLM when a CUDA GPU and the package are
  present, else the CPU default. ``cpu`` is the CPU default (llama.cpp).
- an option of another engine is a one-line error naming the flag and the engine it applies
  to ("--concurrency applies to --engine openai, not --engine cpu"); an option of no engine
  names the chosen engine's options.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from typing import Any

from curate.errors import CurateError
from generators.engines.base import CPU_DEFAULT, ENGINES, Engine, engine_options, has_cuda, option_flag

_CLASSES = {
    "openai": ("generators.engines.openai_server", "OpenAIEngine"),
    "vllm": ("generators.engines.vllm_local", "VLLMEngine"),
    "llamacpp": ("generators.engines.llamacpp", "LlamaCppEngine"),
    "transformers": ("generators.engines.transformers_local", "TransformersEngine"),
}


def engine_class(name: str) -> Any:
    """The class of a concrete engine; importing it is cheap (heavy packages load in ``__init__``)."""
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(module), cls)


def options_class(name: str) -> type:
    return engine_class(name).Options


def resolve_engine_name(name: str = "auto", options: Mapping[str, Any] | None = None) -> str:
    """Turn ``auto``/``cpu`` into a concrete engine name (``auto`` + a base URL is ``openai``)."""
    if name == "auto":
        if options and options.get("base_url"):
            return "openai"
        return "vllm" if importlib.util.find_spec("vllm") is not None and has_cuda() else CPU_DEFAULT
    if name == "cpu":
        return CPU_DEFAULT
    if name not in ENGINES:
        raise CurateError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    return name


def check_options(name: str, options: Mapping[str, Any], asked: str | None = None) -> None:
    """Every given option belongs to engine ``name``; else one line naming the flag and its engine."""
    known = {f.name for f in dataclasses.fields(options_class(name))}
    for key, value in options.items():
        if value is None or key in known:
            continue
        owners = [other for other in _CLASSES if key in {f.name for f in dataclasses.fields(options_class(other))}]
        if owners:
            shown = name if asked in (None, name) else f"{asked} ({name})"
            raise CurateError(f"{option_flag(options_class(owners[0]), key)} applies to "
                              f"{' or '.join(f'--engine {o}' for o in owners)}, not --engine {shown}")


def make_engine(name: str = "auto", model: str | None = None, **options: Any) -> Engine:
    """Build the engine ``name`` for ``model`` (None: the bundled SmolLM2 for local engines, the served one for openai)."""
    concrete = check_engine(name, options)
    cls = engine_class(concrete)
    return cls(model=model, options=engine_options(cls.Options, concrete, options))


def check_engine(name: str = "auto", options: Mapping[str, Any] | None = None) -> str:
    """The concrete engine ``name`` resolves to, after checking that every option applies to it (cheap)."""
    options = options or {}
    concrete = resolve_engine_name(name, options)
    check_options(concrete, options, asked=name)
    return concrete
