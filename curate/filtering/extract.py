"""Row extraction: validated records -> the per-row columns the filter stages read, chunk by chunk.

Each chunk is a Polars frame with one row per record: ``line`` (input line), ``id``,
``prompt`` (user turns), ``response`` (assistant turns), ``instruction``/``input``
(Alpaca-style meta, else the first user turn and ""), ``empty_turn``, ``roles`` (one letter
per message: s/u/a/t), ``finish_reason``, ``tokens_out``, ``language`` (meta), ``score``
(``scores[score_key]``), ``length`` (characters), ``stripped`` (a trailing special token was
removed) and ``row`` (global row number). With ``multi_turn=first-user`` the dedup texts
``dedup_prompt``/``dedup_response`` (first exchange only) come too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from curate.filtering import hazards
from curate.filtering.settings import FilterConfig
from curate.records.jsonl import Quarantine

SCHEMA = {"line": pl.Int64, "id": pl.String, "prompt": pl.String, "response": pl.String, "instruction": pl.String,
          "input": pl.String, "empty_turn": pl.Boolean, "roles": pl.String, "finish_reason": pl.String,
          "tokens_out": pl.Int64, "language": pl.String, "score": pl.Float64, "length": pl.Int64,
          "stripped": pl.Boolean}
FIRST_USER = {"dedup_prompt": pl.String, "dedup_response": pl.String}


def _str_or(value: Any, default: Any) -> Any:
    return value if isinstance(value, str) else default


@dataclass
class Columns:
    """The per-row values the stages need, gathered while reading (texts are dropped after each chunk)."""

    cfg: FilterConfig
    score_key: str | None = None
    data: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.score_key is None and self.cfg.dedup is not None:
            self.score_key = self.cfg.dedup.score_key
        self.first_user = self.cfg.dedup is not None and self.cfg.dedup.multi_turn == "first-user"
        self.clear()

    def clear(self) -> None:
        names = list(SCHEMA) + (list(FIRST_USER) if self.first_user else [])
        self.data = {name: [] for name in names}

    def __len__(self) -> int:
        return len(self.data["id"])

    def add(self, line_no: int, record: dict[str, Any]) -> None:
        messages = record["messages"]
        stripped = False
        if self.cfg.strip_special_tokens:
            messages, stripped = hazards.strip_trailing_special(messages, tuple(self.cfg.thresholds["extra_special_tokens"]))
        meta = record["meta"]
        users = [m["content"] for m in messages if m["role"] == "user"]
        assistants = [m["content"] for m in messages if m["role"] == "assistant"]
        d = self.data
        d["line"].append(line_no)
        d["id"].append(record["id"])
        d["prompt"].append("\n\n".join(users))
        d["response"].append("\n\n".join(assistants))
        d["instruction"].append(_str_or(meta.get("instruction"), users[0]))
        d["input"].append(_str_or(meta.get("input"), ""))
        d["empty_turn"].append(any(not m["content"].strip() for m in messages))
        d["roles"].append("".join(m["role"][0] for m in messages))
        d["finish_reason"].append(_str_or(meta.get("finish_reason"), None))
        tokens = meta.get("tokens_out")
        d["tokens_out"].append(tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None)
        d["language"].append(_str_or(meta.get("language"), None))
        scores = record.get("scores") or {}
        if self.score_key is None and scores:
            self.score_key = sorted(scores)[0]
        d["score"].append(float(scores[self.score_key]) if self.score_key in scores else None)
        d["length"].append(sum(len(m["content"]) for m in messages))
        d["stripped"].append(stripped)
        if self.first_user:
            first = next(i for i, m in enumerate(messages) if m["role"] == "user")
            d["dedup_prompt"].append(users[0])
            d["dedup_response"].append(next((m["content"] for m in messages[first:] if m["role"] == "assistant"), ""))

    def frame(self, first_row: int) -> pl.DataFrame:
        schema = {**SCHEMA, **(FIRST_USER if self.first_user else {})}
        frame = pl.DataFrame(self.data, schema=schema)
        return frame.with_columns(pl.int_range(first_row, first_row + frame.height, dtype=pl.Int64).alias("row"))


def chunks(path: str | os.PathLike[str], cfg: FilterConfig, columns: Columns, quarantine: Quarantine | None,
           after_line: int = 0, first_row: int = 0) -> Iterator[pl.DataFrame]:
    """Validated rows of ``path`` as frames of ``cfg.chunk_rows`` rows (bad rows raise, or go to ``quarantine``).

    Rows up to line ``after_line`` were read already (by the native path): skipped, rows numbered on from
    ``first_row``.
    """
    from curate.errors import RecordError
    from curate.records import record_id, validate_record
    from curate.records.jsonl import iter_valid

    def validate(value: Any) -> dict[str, Any]:
        record = validate_record(value, check_id=False)
        if cfg.check_ids and record["id"] != record_id(record["messages"]):
            raise RecordError("id", "does not match the hash of the messages (edited by hand? run `curate import`)")
        return record

    rows = ((line_no, record) for line_no, record in iter_valid(path, validate, quarantine) if line_no > after_line)
    yield from _framed(rows, cfg, columns, first_row)


def records_chunks(path: str | os.PathLike[str], cfg: FilterConfig, first_row: int) -> Iterator[pl.DataFrame]:
    """Rows of an earlier dataset (``--against``), chunked and numbered from ``first_row``."""
    from curate.records.jsonl import read_records

    yield from _framed(((0, record) for record in read_records(path)), cfg, Columns(cfg), first_row)


def _framed(rows: Iterable[tuple[int, dict[str, Any]]], cfg: FilterConfig, columns: Columns,
            first_row: int) -> Iterator[pl.DataFrame]:
    """``(line, record)`` pairs gathered into frames of ``cfg.chunk_rows`` rows, numbered on from ``first_row``."""
    for line_no, record in rows:
        columns.add(line_no, record)
        if len(columns) >= cfg.chunk_rows:
            yield columns.frame(first_row)
            first_row += len(columns)
            columns.clear()
    if len(columns):
        yield columns.frame(first_row)
        columns.clear()
