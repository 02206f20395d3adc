"""The scorer protocol: a callable class mapping a batch of records to one result per record.

    scorer = build_scorer("lm", config)      # loads the model once
    results = scorer(records)                # [{"scores": {...}, "meta": {...}} | {"error": "..."}, ...]

A result holds ``scores`` (name -> finite float) and ``meta`` (provenance for
``meta.scoring.<name>``), or ``error`` (a one-line reason: the row goes to the errors file).
A scorer never raises for one bad row; an exception means every row would fail (no model,
bad configuration). ``key()`` fingerprints everything that changes the numbers, so cached
results are reused only for the same scorer configuration.

Several score names can come from one scorer: ``ifd``, ``ifd_ppl`` and ``perplexity`` share one
pass of the LM (:mod:`curate.scoring.ifd`). :data:`SCORE_NAMES` maps each name a user may
ask for to the scorer group that computes it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from curate.errors import CurateError

SCORER_VERSION = "1"  # bump when a scorer's numbers change for the same configuration

# what the user names -> (scorer group, score keys written for that name)
SCORE_NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ifd": ("lm", ("ifd", "ifd_ppl")),
    "perplexity": ("lm", ("perplexity",)),
    "length": ("length", ("length",)),
    "judge": ("judge", ("judge",)),
}

Result = dict[str, Any]


class Scorer(Protocol):
    """What :mod:`curate.scoring.run` and a Ray ``map_batches`` need from a scorer."""

    group: str

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> list[Result]: ...

    def describe(self) -> dict[str, Any]:
        """Provenance written to ``meta.scoring`` and the resolved config (model, template, version...)."""
        ...


def config_key(group: str, settings: Mapping[str, Any]) -> str:
    """16 hex chars fingerprinting a scorer group's settings and the scorer version (the cache key)."""
    text = json.dumps({"group": group, "version": SCORER_VERSION, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_scorer_names(text: str | Sequence[str]) -> list[str]:
    """``"ifd,length"`` -> ``["ifd", "length"]``; unknown names are an error listing the known ones."""
    items = text.split(",") if isinstance(text, str) else [part for item in text for part in item.split(",")]
    names = []
    for name in (item.strip() for item in items):
        if not name:
            continue
        if name not in SCORE_NAMES:
            raise CurateError(f"--scorer {name}: unknown scorer (known: {', '.join(SCORE_NAMES)})")
        if name not in names:
            names.append(name)
    if not names:
        raise CurateError(f"--scorer: name at least one scorer ({', '.join(SCORE_NAMES)})")
    return names


def groups_for(names: Sequence[str]) -> dict[str, list[str]]:
    """Scorer groups needed for ``names``, each with the score keys to write, in first-named order."""
    groups: dict[str, list[str]] = {}
    for name in names:
        group, keys = SCORE_NAMES[name]
        groups.setdefault(group, []).extend(k for k in keys if k not in groups.get(group, []))
    return groups


def ok(scores: Mapping[str, float], meta: Mapping[str, Any] | None = None) -> Result:
    """A successful result; a non-finite score turns it into an error (records hold finite numbers only)."""
    for name, value in scores.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return failed(f"{name} is not a finite number ({value!r})")
    return {"scores": dict(scores), "meta": dict(meta or {})}


def failed(reason: str) -> Result:
    return {"error": " ".join(str(reason).split())}


def response_turns(record: Mapping[str, Any]) -> list[int]:
    """Indexes of the assistant messages of a record."""
    return [i for i, m in enumerate(record["messages"]) if m["role"] == "assistant"]
