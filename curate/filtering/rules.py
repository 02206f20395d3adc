"""Quality filters: named Polars expressions over a frame of records; the name is the reject reason.

A filter is ``Filter(name, doc, reject, detail)``: ``reject(t)`` is a boolean expression (true
= drop the row) and ``detail(t)`` a string expression saying why, both built from the
threshold table ``t``. Presets are ordered lists of filter names; the first filter that
fires names the reason. Every threshold has a name, a default and a line of documentation
(:data:`THRESHOLDS`), and a YAML config can override any of them::

    preset: sft
    filters: [empty_turn, refusal]     # optional: replaces the preset's list
    thresholds: {max_response_words: 2000, language: en}

The frame the expressions run on has one row per record (built by
:mod:`curate.filtering.pipeline`): ``prompt`` (user turns), ``response`` (assistant turns),
``instruction`` and ``input`` (``meta.instruction``/``meta.input`` when the record came
from Alpaca-style data, else the first user turn and ""), ``empty_turn``, ``finish_reason``,
``tokens_out``, ``language`` (``meta.language``), plus the repetition features that
:func:`add_features` computes.

Run them with ``curate filter IN.jsonl --out curated.jsonl --preset sft``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from curate.errors import CurateError
from curate.filtering import hazards
from generators import instruction_rules as si  # the one definition of Self-Instruct's rules

# name: (default, documentation). Written, resolved, into filter_config.yaml.
THRESHOLDS: dict[str, tuple[Any, str]] = {
    "min_prompt_words": (1, "prompt (user turns) with fewer words is `prompt_too_short`"),
    "max_prompt_words": (4000, "prompt with more words is `prompt_too_long`"),
    "min_response_words": (1, "response (assistant turns) with fewer words is `response_too_short`"),
    "max_response_words": (2000, "response with more words is `response_too_long`"),
    "max_response_tokens": (4096, "response tokens (meta.tokens_out, else characters / chars_per_token) "
                                  "above this is `response_too_long_tokens`"),
    "max_total_tokens": (8192, "prompt + response tokens (estimated) above this is `too_many_tokens`"),
    "chars_per_token": (4.0, "characters per token when a record carries no token count"),
    "repetition_min_words": (50, "repetition filters look only at responses with at least this many words "
                                 "(Gopher applies its rules to documents of 50+ words)"),
    "max_dup_line_fraction": (0.3, "Gopher: share of non-empty response lines that repeat an earlier line"),
    "repetition_min_lines": (3, "dup-line filter needs at least this many non-empty lines"),
    "max_top_2gram_fraction": (0.20, "Gopher: characters in the most frequent word 2-gram / all word characters"),
    "max_top_3gram_fraction": (0.18, "Gopher: same for 3-grams"),
    "max_top_4gram_fraction": (0.16, "Gopher: same for 4-grams"),
    "max_non_text_fraction": (0.3, "share of response characters that are not letters, digits, "
                                   "punctuation or whitespace (symbols, control, private use)"),
    "non_text_min_chars": (20, "non-text filter needs at least this many response characters"),
    "language": (None, "ISO 639-1 code the responses must be in (detected by py3langid, 97 languages); "
                       "a record's meta.language overrides it; null: no language check"),
    "language_min_words": (10, "language check needs at least this many response words"),
    "tokenizer": (None, "tokenizer (hub name or local folder) that counts tokens for the token thresholds, "
                        "batched; null: meta.tokens_out, else characters / chars_per_token"),
    "instruction_min_words": (si.MIN_WORDS + 1, f"Self-Instruct: instructions need more than {si.MIN_WORDS} words"),
    "instruction_max_words": (si.MAX_WORDS, f"Self-Instruct: and at most {si.MAX_WORDS}"),
    "extra_special_tokens": ([], "more special-token strings for `special_token_text` (e.g. the training "
                                 "tokenizer's own specials)"),
    "blacklist": (list(si.SELF_INSTRUCT_BLACKLIST),
                  "Self-Instruct: an instruction containing one of these (whole word, any case) is dropped"),
}

REFUSAL_PREFIXES = ("i cannot", "i can't", "i can not", "i'm sorry, but", "i am sorry, but", "i apologize, but",
                    "i'm unable to", "i am unable to", "i won't be able", "i'm not able to", "i am not able to",
                    "sorry, but i")
BOILERPLATE = ("as an ai language model", "as a large language model", "as an ai assistant", "as an ai model",
               "i am an ai language model", "i'm an ai language model", "as a language model",
               "my knowledge cutoff", "i do not have personal opinions", "i don't have personal opinions")

Thresholds = dict[str, Any]


@dataclass(frozen=True)
class Filter:
    name: str
    doc: str
    reject: Callable[[Thresholds], pl.Expr]
    detail: Callable[[Thresholds], pl.Expr]


def _escape(text: str) -> str:
    return re.escape(text)


def _fmt(template: str, *values: pl.Expr) -> pl.Expr:
    return pl.format(template, *values)


def _words(col: str) -> pl.Expr:
    return pl.col(f"{col}_words")  # counted once per chunk by add_features


def _est_tokens(col: str, t: Thresholds) -> pl.Expr:
    if t["tokenizer"]:
        return pl.col(f"{col}_tokens")  # counted by the named tokenizer in add_features
    return (pl.col(col).str.len_chars() / t["chars_per_token"]).ceil().cast(pl.Int64)


def _response_tokens(t: Thresholds) -> pl.Expr:
    if t["tokenizer"]:
        return _est_tokens("response", t)  # the training tokenizer's count beats the generator's
    return pl.coalesce(pl.col("tokens_out"), _est_tokens("response", t))


def _norm(col: str) -> pl.Expr:
    return pl.col(col).str.to_lowercase().str.replace_all(r"[\W_]+", " ").str.strip_chars()


def _any_phrase(expr: pl.Expr, phrases: tuple[str, ...] | list[str]) -> pl.Expr:
    return expr.str.contains_any(list(phrases), ascii_case_insensitive=True)


def _first_phrase(expr: pl.Expr, phrases: tuple[str, ...] | list[str]) -> pl.Expr:
    return expr.str.to_lowercase().str.extract(f"({'|'.join(_escape(p) for p in phrases)})", 1)


def _blacklist_regex(t: Thresholds) -> str:
    return si.blacklist_pattern(t["blacklist"])


def _asked_language(t: Thresholds) -> pl.Expr:
    return pl.coalesce(pl.col("language"), pl.lit(t["language"], pl.String)).str.to_lowercase()


def _wrong_language(t: Thresholds) -> pl.Expr:
    return _asked_language(t).is_not_null() & (_words("response") >= t["language_min_words"]) & (
        pl.col("detected_language") != _asked_language(t))


FILTERS: dict[str, Filter] = {}


def _register(name: str, doc: str, reject: Callable[[Thresholds], pl.Expr],
              detail: Callable[[Thresholds], pl.Expr]) -> None:
    FILTERS[name] = Filter(name, doc, reject, detail)


_register("empty_turn", "a message whose content is empty or only whitespace",
          lambda t: pl.col("empty_turn"), lambda t: pl.lit("a turn is empty or whitespace"))
_register("truncated", "the response was cut off (meta.finish_reason == 'length')",
          lambda t: pl.col("finish_reason").fill_null("") == "length", lambda t: pl.lit("finish_reason=length"))
_register("response_equals_prompt", "the response repeats the prompt (case, spacing, punctuation ignored)",
          lambda t: pl.col("same_as_prompt"),
          lambda t: pl.lit("response equals prompt"))
_register("boilerplate", "AI boilerplate anywhere in the response ('As an AI language model', ...)",
          lambda t: _any_phrase(pl.col("response"), BOILERPLATE),
          lambda t: _fmt("contains '{}'", _first_phrase(pl.col("response"), BOILERPLATE)))
_REFUSAL = (r"(?i)^\W*(?:(?:unfortunately|sorry|apologies|well|no)\W+)?("
            + "|".join(_escape(p).replace("'", "['\u2019]") for p in REFUSAL_PREFIXES) + ")")
_register("refusal", "the response opens with a refusal ('I cannot', \"I'm sorry, but\", ...)",
          lambda t: pl.col("response").str.contains(_REFUSAL),
          lambda t: _fmt("starts with '{}'", pl.col("response").str.extract(_REFUSAL, 1)))
_register("prompt_too_short", "fewer than min_prompt_words words in the user turns",
          lambda t: _words("prompt") < t["min_prompt_words"],
          lambda t: _fmt("{} prompt words < {}", _words("prompt"), pl.lit(t["min_prompt_words"])))
_register("prompt_too_long", "more than max_prompt_words words in the user turns",
          lambda t: _words("prompt") > t["max_prompt_words"],
          lambda t: _fmt("{} prompt words > {}", _words("prompt"), pl.lit(t["max_prompt_words"])))
_register("response_too_short", "fewer than min_response_words words in the assistant turns",
          lambda t: _words("response") < t["min_response_words"],
          lambda t: _fmt("{} response words < {}", _words("response"), pl.lit(t["min_response_words"])))
_register("response_too_long", "more than max_response_words words in the assistant turns",
          lambda t: _words("response") > t["max_response_words"],
          lambda t: _fmt("{} response words > {}", _words("response"), pl.lit(t["max_response_words"])))
_register("response_too_long_tokens", "more than max_response_tokens response tokens",
          lambda t: _response_tokens(t) > t["max_response_tokens"],
          lambda t: _fmt("{} response tokens > {}", _response_tokens(t), pl.lit(t["max_response_tokens"])))
_register("too_many_tokens", "prompt + response tokens above max_total_tokens",
          lambda t: (_est_tokens("prompt", t) + _response_tokens(t)) > t["max_total_tokens"],
          lambda t: _fmt("{} tokens > {}", _est_tokens("prompt", t) + _response_tokens(t),
                         pl.lit(t["max_total_tokens"])))
_register("duplicate_lines", "Gopher: too many repeated lines in the response",
          lambda t: (pl.col("lines") >= t["repetition_min_lines"]) & (_words("response") >= t["repetition_min_words"])
          & (pl.col("dup_line_fraction") > t["max_dup_line_fraction"]),
          lambda t: _fmt("duplicate line fraction {} > {}", pl.col("dup_line_fraction").round(3),
                         pl.lit(t["max_dup_line_fraction"])))
for _n in (2, 3, 4):
    _register(f"repeated_{_n}gram", f"Gopher: the most frequent word {_n}-gram covers too much of the response",
              lambda t, n=_n: (_words("response") >= t["repetition_min_words"])
              & (pl.col(f"top_{n}gram_fraction") > t[f"max_top_{n}gram_fraction"]),
              lambda t, n=_n: _fmt(f"top {n}-gram covers {{}} of characters > {{}}",
                                   pl.col(f"top_{n}gram_fraction").round(3), pl.lit(t[f"max_top_{n}gram_fraction"])))
_register("non_text", "too many characters that are not text (symbols, control, private use)",
          lambda t: (pl.col("response").str.len_chars() >= t["non_text_min_chars"])
          & (pl.col("non_text_fraction") > t["max_non_text_fraction"]),
          lambda t: _fmt("non-text fraction {} > {}", pl.col("non_text_fraction").round(3),
                         pl.lit(t["max_non_text_fraction"])))
_register("wrong_language", "the response is not in the language asked for (thresholds.language or meta.language)",
          _wrong_language,
          lambda t: _fmt("detected {}, not {}", pl.col("detected_language"), _asked_language(t)))

# Self-Instruct (yizhongw/self-instruct) instruction and instance rules
_register("instruction_too_short", "Self-Instruct: instruction of 3 words or fewer",
          lambda t: _words("instruction") < t["instruction_min_words"],
          lambda t: _fmt("{} instruction words < {}", _words("instruction"), pl.lit(t["instruction_min_words"])))
_register("instruction_too_long", "Self-Instruct: instruction longer than 150 words",
          lambda t: _words("instruction") > t["instruction_max_words"],
          lambda t: _fmt("{} instruction words > {}", _words("instruction"), pl.lit(t["instruction_max_words"])))
_register("blacklisted_keyword", "Self-Instruct: instruction mentions something a text model cannot do",
          lambda t: pl.col("instruction").str.contains(_blacklist_regex(t)),
          lambda t: _fmt("mentions '{}'", pl.col("instruction").str.extract(_blacklist_regex(t), 1).str.to_lowercase()))
_register("write_a_program", "Self-Instruct: instruction starts with 'Write a program'",
          lambda t: pl.col("instruction").str.strip_chars_start().str.to_lowercase().str.starts_with(si.WRITE_A_PROGRAM),
          lambda t: pl.lit("starts with 'Write a program'"))
_register("starts_with_punctuation", "Self-Instruct: instruction starts with punctuation",
          lambda t: pl.col("instruction").str.strip_chars_start().str.contains(si.PUNCTUATION_START),
          lambda t: _fmt("starts with '{}'", pl.col("instruction").str.strip_chars_start().str.slice(0, 1)))
_register("starts_with_non_ascii", "Self-Instruct: instruction starts with a non-ASCII character",
          lambda t: pl.col("instruction").str.strip_chars_start().str.contains(si.NON_ASCII_START),
          lambda t: _fmt("starts with '{}'", pl.col("instruction").str.strip_chars_start().str.slice(0, 1)))
_register("empty_output", "Self-Instruct: the output is empty",
          lambda t: pl.col("response").str.strip_chars() == "", lambda t: pl.lit("output is empty"))
_register("input_equals_output", "Self-Instruct: the instance output equals its input",
          lambda t: (pl.col("input").str.strip_chars() != "")
          & (pl.col("input").str.strip_chars() == pl.col("response").str.strip_chars()),
          lambda t: pl.lit("output equals input"))
_register("ends_with_colon", "Self-Instruct: the instance input or output ends with ':'",
          lambda t: pl.col("input").str.strip_chars_end().str.ends_with(":")
          | pl.col("response").str.strip_chars_end().str.ends_with(":"),
          lambda t: pl.lit("input or output ends with ':'"))

_register("special_token_text", "a chat-template special token written as text ('<|endoftext|>', '<|im_end|>', "
          "'</s>', '[INST]', ...) in a prompt or response; --strip-special-tokens removes a trailing one first",
          lambda t: pl.concat_str("prompt", "response", separator="\n").str.contains(
              hazards.special_token_regex(t["extra_special_tokens"])),
          lambda t: _fmt("contains '{}'", pl.concat_str("prompt", "response", separator="\n").str.extract(
              hazards.special_token_regex(t["extra_special_tokens"]), 1)))
_register("role_order", "roles out of order: not (system?) then user/assistant exchanges ending on an assistant turn "
          "(assistant first, two user turns in a row, ending on a user turn, ...)",
          lambda t: pl.col("roles").str.contains(hazards.ROLE_ORDER).not_(),
          lambda t: _fmt("role sequence {} (s=system u=user a=assistant t=tool)", pl.col("roles")))
_register("pii", "personal data in a prompt or response: e-mail, phone, IP address, credit-card-like number, "
          "API-key-like string (optional: --pii reject | mask)",
          lambda t: pl.col("pii").is_not_null(), lambda t: _fmt("contains {}", pl.col("pii")))

# which word counts each filter reads (add_features counts only those)
_SOURCES: dict[str, str] = {
    "prompt_too_short": '_words("prompt")', "prompt_too_long": '_words("prompt")',
    "instruction_too_short": '_words("instruction")', "instruction_too_long": '_words("instruction")',
}

PRESETS: dict[str, list[str]] = {
    "sft": ["empty_turn", "role_order", "special_token_text", "truncated", "response_equals_prompt", "boilerplate", "refusal", "prompt_too_short",
            "prompt_too_long", "response_too_short", "response_too_long", "response_too_long_tokens",
            "too_many_tokens", "duplicate_lines", "repeated_2gram", "repeated_3gram", "repeated_4gram", "non_text",
            "wrong_language"],
    "self-instruct": ["empty_turn", "instruction_too_short", "instruction_too_long", "blacklisted_keyword",
                      "write_a_program", "starts_with_punctuation", "starts_with_non_ascii", "empty_output",
                      "input_equals_output", "ends_with_colon"],
    "none": [],
}
DEFAULT_PRESET = "sft"
FEATURE_FILTERS = {"duplicate_lines", "repeated_2gram", "repeated_3gram", "repeated_4gram", "non_text"}


def resolve_thresholds(overrides: dict[str, Any] | None = None) -> Thresholds:
    """Defaults updated by ``overrides``; an unknown name is an error naming it."""
    values = {name: default for name, (default, _) in THRESHOLDS.items()}
    for name, value in (overrides or {}).items():
        if name not in values:
            raise CurateError(f"unknown threshold '{name}' in config (known: {', '.join(sorted(values))})")
        values[name] = value
    return values


def resolve_filters(preset: str, names: list[str] | None = None) -> list[str]:
    """The preset's filter list, or ``names`` when the config gives one."""
    if preset not in PRESETS:
        raise CurateError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    chosen = list(PRESETS[preset] if names is None else names)
    unknown = [n for n in chosen if n not in FILTERS]
    if unknown:
        raise CurateError(f"unknown filter '{unknown[0]}' in config (known: {', '.join(sorted(FILTERS))})")
    return chosen


def add_features(frame: pl.DataFrame, t: Thresholds, names: list[str]) -> pl.DataFrame:
    """Add the columns the filters read, each computed once per chunk and only when a filter needs it."""
    wanted = {c for c in ("prompt", "response", "instruction") if any(
        f"_words(\"{c}\")" in _SOURCES.get(n, "") for n in names)} | {"response"}
    columns = [pl.col(c).str.count_matches(r"\S+").alias(f"{c}_words") for c in sorted(wanted)]
    if FEATURE_FILTERS.intersection(names):
        lines = pl.col("response").str.split("\n").list.eval(
            pl.element().str.strip_chars().filter(pl.element() != ""))
        columns += [
            lines.list.len().alias("lines"),
            (1.0 - lines.list.n_unique() / lines.list.len()).fill_nan(0.0).fill_null(0.0).alias("dup_line_fraction"),
            (pl.col("response").str.count_matches(r"[^\p{L}\p{N}\p{P}\s]") / pl.col("response").str.len_chars())
            .fill_nan(0.0).fill_null(0.0).alias("non_text_fraction"),
        ]
    if "pii" in names and "pii" not in frame.columns:
        columns.append(hazards.pii_expr().alias("pii"))
    frame = frame.with_columns(columns)
    frame = _model_measures(frame, t, names)
    if "response_equals_prompt" in names:
        # normalizing every long prompt is costly: compare only rows whose lengths are close
        p_len = pl.col("prompt").str.len_bytes().cast(pl.Int64)
        r_len = pl.col("response").str.len_bytes().cast(pl.Int64)
        close = frame.filter((p_len - r_len).abs() <= p_len // 5 + 16).select(
            "row", ((_norm("response") == _norm("prompt")) & (_norm("response") != "")).alias("same_as_prompt"))
        frame = frame.join(close, on="row", how="left").with_columns(pl.col("same_as_prompt").fill_null(False))
    if not FEATURE_FILTERS.intersection(names):
        return frame
    return frame.join(top_ngram_fractions(frame, t["repetition_min_words"]), on="row", how="left").with_columns(
        pl.col(f"top_{n}gram_fraction").fill_null(0.0) for n in (2, 3, 4))


def _model_measures(frame: pl.DataFrame, t: Thresholds, names: list[str]) -> pl.DataFrame:
    """Detected language and tokenizer counts, only for the filters (and rows) that read them."""
    from curate.filtering import measures

    if "wrong_language" in names:
        wanted = _asked_language(t).is_not_null() & (_words("response") >= t["language_min_words"])
        frame = frame.join(measures.detected_language(frame, wanted), on="row", how="left")
    if t["tokenizer"] and {"response_too_long_tokens", "too_many_tokens"}.intersection(names):
        frame = frame.with_columns(
            pl.Series(f"{c}_tokens", measures.token_counts(t["tokenizer"], frame[c].to_list()), pl.Int64)
            for c in ("prompt", "response"))
    return frame


def top_ngram_fractions(frame: pl.DataFrame, min_words: int) -> pl.DataFrame:
    """Gopher's top n-gram character fraction (n = 2, 3, 4) of each response with >= min_words words.

    One explode + group-by over all words of the chunk, not a loop per row.
    """
    words = (
        frame.lazy()
        .filter(pl.col("response").str.count_matches(r"\S+") >= min_words)
        .select("row", pl.col("response").str.to_lowercase().str.extract_all(r"\w+").alias("w"))
        .explode("w")
        .drop_nulls("w")
        .with_columns(pl.col("w").str.len_chars().alias("len"))
    )
    total = words.group_by("row").agg(pl.col("len").sum().alias("chars"))
    out = total
    for n in (2, 3, 4):
        # plain shifts over the flat word column; a window that crosses into the next row is dropped
        grams = words.with_columns(
            pl.concat_str([pl.col("w").shift(-k) for k in range(n)], separator=" ").alias("g"),
            pl.sum_horizontal([pl.col("len").shift(-k) for k in range(n)]).alias("glen"),
            (pl.col("row").shift(-(n - 1)) == pl.col("row")).alias("inside"),
        ).filter(pl.col("inside"))
        top = (
            grams.group_by("row", "g").agg(pl.len().alias("count"), pl.col("glen").first())
            .filter(pl.col("count") > 1)
            .group_by("row")
            .agg((pl.col("count") * pl.col("glen")).max().alias(f"top{n}"))
        )
        out = out.join(top, on="row", how="left")
    return out.select(
        "row", *[(pl.col(f"top{n}").fill_null(0) / pl.col("chars")).alias(f"top_{n}gram_fraction") for n in (2, 3, 4)]
    ).collect()


def apply_filters(frame: pl.DataFrame, names: list[str], t: Thresholds) -> pl.DataFrame:
    """Add ``reason`` (first filter that fires, else null) and ``detail`` to ``frame``.

    Details are computed for the rejected rows only, and the language filter is skipped when
    neither the thresholds nor any record asks for a language.
    """
    if not names:
        return frame.with_columns(pl.lit(None, pl.String).alias("reason"), pl.lit(None, pl.String).alias("detail"))
    if "wrong_language" in names and t["language"] is None and frame["language"].null_count() == frame.height:
        names = [n for n in names if n != "wrong_language"]
    frame = add_features(frame, t, names)
    reason: Any = pl
    for name in names:
        reason = reason.when(FILTERS[name].reject(t).fill_null(False)).then(pl.lit(name))
    frame = frame.lazy().with_columns(reason.otherwise(None).alias("reason")).collect()
    rejected = frame.filter(pl.col("reason").is_not_null())
    if rejected.height == 0:
        return frame.with_columns(pl.lit(None, pl.String).alias("detail"))
    detail: Any = pl
    for name in names:
        detail = detail.when(pl.col("reason") == name).then(FILTERS[name].detail(t).cast(pl.String))
    details = rejected.lazy().select("row", detail.otherwise(None).alias("detail")).collect()
    return frame.join(details, on="row", how="left")


def describe() -> dict[str, Any]:
    """Every filter and threshold with its documentation (for --list-filters and the resolved config)."""
    return {
        "presets": PRESETS,
        "filters": {name: f.doc for name, f in FILTERS.items()},
        "thresholds": {name: {"default": d, "doc": doc} for name, (d, doc) in THRESHOLDS.items()},
    }
