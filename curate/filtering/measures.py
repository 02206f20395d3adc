"""Per-row measures that need a model: the detected language and token counts from a named tokenizer.

* Language: py3langid (langid.py's model, shipped inside the wheel, 97 languages). Chosen
  over lingua on a labelled sample (bench/bench_langid.py: 99.9% vs 99.8% accuracy, about
  50x faster); the identifier runs only on rows whose language is checked.
* Tokens: a batched fast tokenizer (``AutoTokenizer``, a hub name or a local folder; the
  bundled model's folder works offline), only when the ``tokenizer`` threshold names one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import polars as pl

from curate.errors import CurateError

_MAX_CHARS = 2000  # the opening of a response is enough to tell its language, and keeps long ones cheap


def detect_languages(texts: list[str]) -> list[str]:
    """ISO 639-1 code of each text's most likely language."""
    import py3langid

    return [py3langid.classify(t[:_MAX_CHARS])[0] for t in texts]


def detected_language(frame: pl.DataFrame, wanted: pl.Expr) -> pl.DataFrame:
    """(row, detected_language) for the rows where ``wanted`` holds."""
    subset = frame.filter(wanted).select("row", "response")
    codes = detect_languages(subset["response"].to_list()) if subset.height else []
    return subset.select("row", pl.Series("detected_language", codes, pl.String))


@lru_cache(maxsize=2)
def _tokenizer(name: str) -> Any:
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name, use_fast=True)
    except (OSError, ValueError) as err:
        raise CurateError(f"thresholds.tokenizer {name!r}: cannot load the tokenizer ({err})".split("\n")[0]) from None


def token_counts(name: str, texts: list[str], batch: int = 1024) -> list[int]:
    """Tokens per text under tokenizer ``name`` (no special tokens added), in batches."""
    tok = _tokenizer(name)
    counts: list[int] = []
    for start in range(0, len(texts), batch):
        ids = tok(texts[start : start + batch], add_special_tokens=False)["input_ids"]
        counts.extend(len(i) for i in ids)
    return counts
