"""The one config loader every command uses: dataclass defaults <- YAML <- flags.

A stage's config is a dataclass (fields with ``metadata={"help": ...}``). ``--config`` names a
YAML file, or a config shipped with the package (``--config quick``); its keys are checked
against the dataclass before anything runs, and flags given on the command line win over it.
Every unknown key, in a file or in ``--set``, gets the same one-line error naming where it came
from. ``write_resolved`` puts the final values beside the stage's outputs.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from curate.errors import CurateError

T = TypeVar("T")


def read_yaml(name_or_path: str | Path, shipped: Path | None = None) -> tuple[dict[str, Any], str]:
    """A YAML mapping and where it came from: a file, or ``shipped/NAME.yaml`` when no file has that name."""
    path = Path(name_or_path)
    if not path.is_file():
        candidate = shipped / f"{path.name}.yaml" if shipped is not None else None
        if candidate is not None and candidate.is_file():
            path = candidate
        else:
            choices = f" (shipped: {', '.join(shipped_names(shipped))})" if shipped is not None else ""
            raise CurateError(f"--config {name_or_path}: no such file{choices}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise CurateError(f"{path}: cannot read config ({err})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise CurateError(f"{path}: a config is a YAML mapping of field: value, got {type(data).__name__}")
    return data, str(path)


def shipped_names(folder: Path | None) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder is not None else []


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in ``over`` replaces what ``base`` had."""
    merged = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def given(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The flags the user actually gave (click passes None for the rest)."""
    return {key: value for key, value in flags.items() if value is not None}


def parse_set(assignments: Sequence[str]) -> dict[str, Any]:
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


def check_keys(values: Mapping[str, Any], known: Sequence[str] | set[str], source: str, prefix: str = "") -> None:
    """The one unknown-key error: ``SOURCE: unknown key 'PREFIX.KEY' (known: ...)``."""
    for key in values:
        if key not in known:
            raise CurateError(f"{source}: unknown key '{prefix}{key}' (known: {', '.join(sorted(known))})")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def build(cls: Callable[..., T], layers: Sequence[tuple[str, Mapping[str, Any]]],
          nested: Mapping[str, type] | None = None) -> T:
    """``cls`` from layers merged in order (later wins); each layer's keys checked against ``cls``.

    ``layers`` are ``(source, mapping)`` pairs such as ``("defaults", {...})``,
    ``("run.yaml", {...})``, ``("flags", {...})``; ``source`` is what an error names.
    ``nested`` maps a field to the dataclass its sub-mapping builds (checked the same way).
    """
    nested = dict(nested or {})
    known = field_names(cls)  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for source, layer in layers:
        check_keys(layer, known, source)
        for key, sub in nested.items():
            if isinstance(layer.get(key), Mapping):
                check_keys(layer[key], field_names(sub), source, prefix=f"{key}.")
        values = merge(values, layer)
    for key, sub in nested.items():
        if isinstance(values.get(key), Mapping):
            values[key] = sub(**values[key])
    return cls(**values)


def as_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


def write_resolved(config: Any, path: str | Path) -> None:
    """The resolved config as YAML at ``path``, written atomically (temp file + rename)."""
    import os
    import tempfile

    path = Path(path)
    text = yaml.safe_dump(as_dict(config), sort_keys=False, allow_unicode=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
