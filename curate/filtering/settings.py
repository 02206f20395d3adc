"""The resolved settings of one `curate filter` run, loaded through the one config loader.

Defaults (the dataclasses) <- ``--config`` YAML <- flags, via :func:`curate.config.build`.
Dedup settings nest under ``dedup:`` in YAML (``dedup: null`` turns near dedup off, like
``--no-dedup``); on the command line they are plain flags. A ``--threshold`` flag re-derives
bands/rows even when the YAML fixed them (a resolved config from an earlier run does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from curate import config as loader
from curate.errors import CurateError
from curate.filtering import rules
from curate.filtering.dedup.config import DedupConfig


@dataclass
class FilterConfig:
    """Everything one `curate filter` run needs; ``--config`` YAML has the same keys."""

    preset: str = rules.DEFAULT_PRESET
    filters: list[str] | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    dedup: DedupConfig | None = field(default_factory=DedupConfig)
    exact_dedup: bool = True
    decontaminate: list[str] = field(default_factory=list)
    decontam_ngram: int = 13
    against: list[str] = field(default_factory=list)
    chunk_rows: int = 50_000
    check_ids: bool = True
    """Re-hash every record's messages to check its id (``--trust-ids`` skips it; the schema is still checked)."""
    strip_special_tokens: bool = False
    """Remove one trailing chat-template special token from each assistant turn instead of rejecting the row."""
    native_read: bool = False
    """Parse and check clean JSONL blocks with Polars (curate.filtering.native_read) instead of Python; off by
    default: slower than the Python path on the loaded 2-core benchmark machine (bench/results/filter.md)."""
    pii: str | None = None
    """PII rule set: null (off) | reject (drop rows with PII) | mask (replace it, keep the row)."""

    def __post_init__(self) -> None:
        self.filters = rules.resolve_filters(self.preset, self.filters)
        self.thresholds = rules.resolve_thresholds(self.thresholds)
        if self.decontam_ngram < 1:
            raise CurateError(f"--decontam-ngram must be at least 1, got {self.decontam_ngram}")
        if self.chunk_rows < 1:
            raise CurateError(f"chunk_rows must be at least 1, got {self.chunk_rows}")
        if self.pii not in (None, "reject", "mask"):
            raise CurateError(f"--pii must be reject or mask, got {self.pii!r}")
        if self.pii == "reject" and "pii" not in self.filters:
            self.filters.append("pii")

    def as_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "filters": list(self.filters or []),
            "thresholds": dict(self.thresholds),
            "exact_dedup": self.exact_dedup,
            "dedup": self.dedup.as_dict() if self.dedup else None,
            "decontaminate": list(self.decontaminate),
            "decontam_ngram": self.decontam_ngram,
            "against": list(self.against),
            "chunk_rows": self.chunk_rows,
            "check_ids": self.check_ids,
            "strip_special_tokens": self.strip_special_tokens,
            "pii": self.pii,
            "native_read": self.native_read,
        }


_TOP = set(loader.field_names(FilterConfig))
_DEDUP = set(loader.field_names(DedupConfig))


def load_config(path: str | os.PathLike[str] | None, flags: dict[str, Any]) -> FilterConfig:
    """YAML file (optional) then command-line ``flags`` (None = not given); dedup flags go under ``dedup``."""
    yaml_layer: dict[str, Any] = {}
    source = "--config"
    if path is not None:
        yaml_layer, source = loader.read_yaml(path)
    loader.check_keys(yaml_layer, _TOP, source)
    no_dedup = bool(flags.pop("no_dedup", False)) or ("dedup" in yaml_layer and yaml_layer["dedup"] is None)
    dedup_yaml = dict(yaml_layer.pop("dedup", None) or {})
    loader.check_keys(dedup_yaml, _DEDUP, source, prefix="dedup.")
    given = loader.given(flags)
    if given.get("threshold") is not None:
        dedup_yaml.pop("bands", None)  # a new threshold on the command line re-derives bands/rows
        dedup_yaml.pop("rows", None)
    dedup_flags = {k: v for k, v in given.items() if k in _DEDUP}
    top_flags = {k: v for k, v in given.items() if k not in _DEDUP}
    for listy in ("decontaminate", "against"):
        if isinstance(yaml_layer.get(listy), str):
            yaml_layer[listy] = [yaml_layer[listy]]
    dedup = None if no_dedup else DedupConfig(**loader.merge(dedup_yaml, dedup_flags))
    built = loader.build(FilterConfig, [(source, yaml_layer), ("flags", top_flags)])
    built.dedup = dedup
    return built
