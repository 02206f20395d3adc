"""Decontamination: drop training rows that share a long word n-gram with an evaluation set.

``curate filter IN.jsonl --out curated.jsonl --decontaminate EVAL.jsonl`` loads every prompt
and reference answer of the evaluation set (any format ``curate import`` reads: records,
Alpaca, Self-Instruct with ``instances``, prompt/completion, ...), hashes its lower-cased
``\\w+`` word n-grams (default 13, the GPT-3 paper's choice) and drops a training row whose
prompt or response contains one of them, reason ``contamination`` with the eval row's id.

The explicit rule for short evaluation texts: a prompt or answer with fewer than ``n``
words has no n-gram, so it matches a training prompt or response that equals it after
normalization (case, whitespace, punctuation) instead. Everything is one explode and one
join in Polars.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curate.filtering.dedup.config import DedupConfig
from curate.filtering.dedup.shingles import normalized_words, word_ngram_hashes, words
from curate.records import assistant_text, user_text

_SEED = 13
_WORDS = DedupConfig(seed=_SEED)


@dataclass
class EvalSet:
    """Hashed n-grams of an evaluation set: (h, eval_id) for long texts, (key, eval_id) for short ones."""

    path: str
    ngram: int
    rows: int
    ngrams: pl.DataFrame
    short: pl.DataFrame


def _eval_id(record: dict[str, Any], line_no: int) -> str:
    meta = record.get("meta", {})
    return str(meta.get("source_id", record.get("id", f"line {line_no}")))


def load_eval_set(path: str | os.PathLike[str], ngram: int = 13) -> EvalSet:
    """Read an evaluation file in any importable format and hash its n-grams."""
    from curate.records.formats import detect_format
    from curate.records.jsonl import iter_json_rows, iter_valid

    first = next(iter_json_rows(path))[1]
    fmt = detect_format(first)
    ids: list[str] = []
    texts: list[str] = []
    rows = 0
    for line_no, record in iter_valid(path, fmt.to_record):
        rows += 1
        eval_id = _eval_id(record, line_no)
        for text in (user_text(record), assistant_text(record)):
            ids.append(eval_id)
            texts.append(text)
    frame = pl.DataFrame({"eval_id": ids, "text": texts}).with_row_index("row").with_columns(
        pl.col("row").cast(pl.Int64), normalized_words(pl.col("text")).alias("w"))
    hashed = _ngram_frame(frame.select("row", "text"), ngram)
    ngrams = (
        hashed.join(frame.select("row", "eval_id"), on="row")
        .select("eval_id", "h")
        .unique("h", keep="first", maintain_order=True)
    )
    short = (
        frame.filter((pl.col("w").list.len() < ngram) & (pl.col("w").list.len() > 0))
        .select("eval_id", pl.col("w").list.join(" ").hash(seed=_SEED).alias("key"))
        .unique("key", keep="first", maintain_order=True)
    )
    return EvalSet(str(path), ngram, rows, ngrams, short)


def _ngram_frame(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    """(row, text) -> (row, h): hashes of every run of ``n`` consecutive words (rows with fewer: none)."""
    word_frame = words(_WORDS, frame)
    h, row = word_ngram_hashes(word_frame["h"].to_numpy(), word_frame["row"].to_numpy().astype(np.int64), n)
    return pl.DataFrame({"row": row, "h": h})


def find_contamination(frame: pl.DataFrame, eval_set: EvalSet) -> pl.DataFrame:
    """``frame`` (row, prompt, response) -> (row, eval_id, detail) for each contaminated row."""
    sides = pl.concat([
        frame.select("row", pl.col("prompt").alias("text"), pl.lit("prompt").alias("side")),
        frame.select("row", pl.col("response").alias("text"), pl.lit("response").alias("side")),
    ]).with_row_index("side_row").with_columns(pl.col("side_row").cast(pl.Int64))
    hashed = _ngram_frame(sides.select(pl.col("side_row").alias("row"), "text"), eval_set.ngram)
    long_hits = (
        hashed.join(eval_set.ngrams, on="h")
        .join(sides.select(pl.col("side_row").alias("row"), pl.col("row").alias("record"), "side"), on="row")
        .group_by("record", maintain_order=True)
        .agg(pl.col("eval_id").first(), pl.col("side").first(), pl.len().alias("shared"))
        .rename({"record": "row"})
        .with_columns(pl.format("{} shares {} {}-gram(s) with eval row {}", "side", "shared",
                                pl.lit(eval_set.ngram), "eval_id").alias("detail"))
    )
    sides = sides.with_columns(normalized_words(pl.col("text")).alias("w"))
    short_hits = (
        sides.filter(pl.col("w").list.len() > 0)
        .select("row", "side", pl.col("w").list.join(" ").hash(seed=_SEED).alias("key"))
        .join(eval_set.short, on="key")
        .group_by("row", maintain_order=True)
        .agg(pl.col("eval_id").first(), pl.col("side").first())
        .with_columns(pl.format("{} equals eval row {} (shorter than {} words)", "side", "eval_id",
                                pl.lit(eval_set.ngram)).alias("detail"))
    )
    hits = pl.concat([long_hits.select("row", "eval_id", "detail"), short_hits.select("row", "eval_id", "detail")])
    return hits.unique("row", keep="first", maintain_order=True).sort("row")
