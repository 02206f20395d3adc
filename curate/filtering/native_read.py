"""The native read path: clean JSONL chunks of curate records parsed and checked by Polars, not Python.

Each block of ``chunk_rows`` lines is parsed by ``pl.read_ndjson`` with the record schema;
the checks run vectorized: the id is a non-empty string and equals the record's content
hash (SHA-256 over roles and NFC/whitespace-normalized contents, computed in bulk with
polars-hash), every role is known, every content is a string, there is a user and an
assistant turn, ``meta`` is an object. The per-row columns the stages read are then
Polars expressions over the parsed frame.

A block that fails anything (a parse error, a non-UTF-8 byte, a value Polars would coerce,
an id that does not match, ...) is not judged here: the read falls back to the Python path
(:func:`curate.filtering.extract.chunks`) from that block on, which names file, line and
field or quarantines the row exactly as before. So the native path only ever accepts what
the Python path accepts. It is used with ``--native-read`` for JSONL input when the run needs
neither scores (``keep=best-score``) nor first-exchange dedup texts (``multi_turn=first-user``).
Not the default: on the loaded 2-core benchmark machine it read T0 in 9.6-11.2 s against the
Python path's 5.4-5.9 s (bench/results/filter.md).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator

import polars as pl

from curate.filtering import hazards
from curate.filtering.extract import SCHEMA, Columns, chunks
from curate.filtering.settings import FilterConfig
from curate.records import ROLES
from curate.records.jsonl import Quarantine, is_json_array, open_binary

_MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})
_RECORD = {"id": pl.String, "messages": pl.List(_MESSAGE),
           "meta": pl.Struct({"instruction": pl.String, "input": pl.String, "finish_reason": pl.String,
                              "tokens_out": pl.Int64, "language": pl.String})}
# values Polars would silently turn into strings (a number as content, role or id): the Python path decides those
_COERCED = re.compile(rb'"(?:content|role|id|instruction|input|finish_reason|language)"\s*:\s*[^"\s]')


def usable(cfg: FilterConfig, path: str | os.PathLike[str]) -> bool:
    if not cfg.native_read:
        return False
    dedup = cfg.dedup
    if dedup is not None and (dedup.keep == "best-score" or dedup.multi_turn == "first-user"):
        return False
    return not is_json_array(path)


def _blocks(path: str | os.PathLike[str], size: int) -> Iterator[tuple[list[int], list[bytes]]]:
    """(line numbers, raw lines) of ``size`` non-blank lines at a time."""
    numbers: list[int] = []
    lines: list[bytes] = []
    with open_binary(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            if raw.strip():
                numbers.append(line_no)
                lines.append(raw)
                if len(lines) >= size:
                    yield numbers, lines
                    numbers, lines = [], []
    if lines:
        yield numbers, lines


def _texts(role: str) -> pl.Expr:
    return pl.col("messages").list.eval(
        pl.element().filter(pl.element().struct.field("role") == role).struct.field("content")).list.join("\n\n")


def _content_hash() -> pl.Expr:
    """The record id, natively: sha256 over role \\x1f normalized-content \\x1e per message, 32 hex chars."""
    import polars_hash as plh

    content = pl.element().struct.field("content")
    ascii_only = content.str.contains(r"^[\x00-\x7F]*$")
    # NFC is costly and a no-op on ASCII: normalize the other contents only
    content = pl.when(ascii_only).then(content).otherwise(content.str.normalize("NFC"))
    content = content.str.replace_all(r"\s+", " ").str.strip_chars()
    parts = pl.col("messages").list.eval(pl.concat_str(pl.element().struct.field("role"), pl.lit("\x1f"), content,
                                                       pl.lit("\x1e")))
    return plh.col("_joined").chash.sha2_256().str.slice(0, 32).alias("_hash"), parts.list.join("").alias("_joined")


def _clean(frame: pl.DataFrame, raw: list[bytes], check_ids: bool) -> bool:
    """Whether every row passes the checks the Python validator would make (see the module docstring)."""
    if any(_COERCED.search(line) or b'"scores":{' in line.replace(b" ", b"") for line in raw):
        return False  # scores are checked (finite numbers) by the Python path
    if not all(b'"meta"' in line for line in raw):
        return False
    roles = pl.col("messages").list.eval(pl.element().struct.field("role"))
    ok = (
        pl.col("id").is_not_null() & (pl.col("id").str.len_bytes() > 0) & pl.col("meta").is_not_null()
        & (pl.col("messages").list.len() > 0)
        & roles.list.eval(pl.element().is_in(list(ROLES))).list.all()
        & pl.col("messages").list.eval(pl.element().struct.field("content").is_not_null()).list.all()
        & roles.list.contains("user") & roles.list.contains("assistant")
    )
    if not frame.select(ok.fill_null(False).all()).item():
        return False
    if check_ids:
        hash_expr, joined = _content_hash()
        same = frame.select(joined).select(hash_expr)["_hash"] == frame["id"]
        return bool(same.fill_null(False).all())
    return True


def _strip(cfg: FilterConfig) -> tuple[pl.Expr, pl.Expr]:
    """Messages with one trailing special token removed from assistant turns, and whether any was."""
    if not cfg.strip_special_tokens:
        return pl.col("messages"), pl.lit(False)
    tokens = (*hazards.SPECIAL_TOKENS, *cfg.thresholds["extra_special_tokens"])
    tail = "(?:" + "|".join(re.escape(t) for t in tokens) + r")$"
    content = pl.element().struct.field("content")
    body = content.str.strip_chars_end()
    new = pl.when((pl.element().struct.field("role") == "assistant") & body.str.contains(tail)).then(
        body.str.replace(tail, "").str.strip_chars_end()).otherwise(content)
    messages = pl.col("messages").list.eval(pl.struct(pl.element().struct.field("role"), new.alias("content")))
    changed = pl.col("messages").list.eval(content) != messages.list.eval(pl.element().struct.field("content"))
    return messages, changed


def _columns(frame: pl.DataFrame, lines: list[int], first_row: int, cfg: FilterConfig) -> pl.DataFrame:
    messages, stripped = _strip(cfg)
    frame = frame.with_columns(stripped.alias("stripped"), messages.alias("messages"))
    contents = pl.col("messages").list.eval(pl.element().struct.field("content"))
    first_user = pl.col("messages").list.eval(
        pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")).list.first()
    meta = pl.col("meta").struct
    out = frame.select(
        pl.Series("line", lines, pl.Int64), "id", _texts("user").alias("prompt"), _texts("assistant").alias("response"),
        pl.coalesce(meta.field("instruction"), first_user).alias("instruction"),
        meta.field("input").fill_null("").alias("input"),
        contents.list.eval(pl.element().str.strip_chars() == "").list.any().alias("empty_turn"),
        pl.col("messages").list.eval(pl.element().struct.field("role").str.slice(0, 1)).list.join("").alias("roles"),
        meta.field("finish_reason").alias("finish_reason"), meta.field("tokens_out").alias("tokens_out"),
        meta.field("language").alias("language"), pl.lit(None, pl.Float64).alias("score"),
        contents.list.eval(pl.element().str.len_chars()).list.sum().cast(pl.Int64).alias("length"), "stripped",
    )
    return out.cast(SCHEMA).with_columns(  # type: ignore[arg-type]
        pl.int_range(first_row, first_row + out.height, dtype=pl.Int64).alias("row"))


def read_chunks(path: str | os.PathLike[str], cfg: FilterConfig, columns: Columns,
                quarantine: Quarantine | None) -> Iterator[pl.DataFrame]:
    """Chunks like :func:`curate.filtering.extract.chunks`, natively while the blocks are clean."""
    consumed = first_row = 0
    if usable(cfg, path):
        for numbers, raw in _blocks(path, cfg.chunk_rows):
            try:
                frame = pl.read_ndjson(io.BytesIO(b"".join(raw)), schema=_RECORD)
            except (pl.exceptions.PolarsError, UnicodeDecodeError):
                break
            if frame.height != len(raw) or not _clean(frame, raw, cfg.check_ids):
                break
            yield _columns(frame, numbers, first_row, cfg)
            consumed, first_row = numbers[-1], first_row + frame.height
        else:
            return
    yield from chunks(path, cfg, columns, quarantine, after_line=consumed, first_row=first_row)
