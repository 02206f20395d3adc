"""Self-Instruct's instruction filters and instance validity rules: the one definition.

The constants and patterns here are the published ones (yizhongw/self-instruct
``bootstrap_instructions.py`` and ``generate_instances.py``). Two consumers read them:
:func:`instruction_reject_reason` below (generation, one string at a time) and the
``self-instruct`` preset of :mod:`curate.filtering.rules` (Polars expressions over a frame).
The patterns are written in the syntax that Python's ``re`` and Polars' Rust regex both
accept, so the two give the same decisions.

A filter returns None to keep, or the reject reason (a short name that the manifest
counts). Constants come from the preset config; the defaults are the published ones.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from functools import lru_cache

SELF_INSTRUCT_BLACKLIST = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
    "map", "maps", "draw", "plot", "go to",
)  # fmt: skip
ALPACA_BLACKLIST = (*SELF_INSTRUCT_BLACKLIST, "video", "audio", "music", "flowchart", "diagram")

# an instruction of MIN_WORDS words or fewer, or of more than MAX_WORDS, is dropped
MIN_WORDS = 3
MAX_WORDS = 150
# The published rule is ``inst.capitalize().startswith("Write a program")``: capitalize()
# lower-cases everything after the first letter, so the test is case-insensitive.
WRITE_A_PROGRAM = "write a program"
# string.punctuation (ASCII only, as published) as a character class; the same in re and Rust regex
_PUNCT_CLASS = "[" + "".join("\\" + c if c in "\\]^-[" else c for c in string.punctuation) + "]"
PUNCTUATION_START = "^" + _PUNCT_CLASS
NON_ASCII_START = r"^[^\x00-\x7F]"


def blacklist_pattern(words: Sequence[str]) -> str:
    """Whole words (or phrases, any whitespace between their words), any case: the published
    ``find_word_in_string``. Valid in Python ``re`` and in Polars."""
    alternatives = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words)
    return r"(?i)\b(" + alternatives + r")\b"


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def starts_with_write_a_program(instruction: str) -> bool:
    return instruction.lower().startswith(WRITE_A_PROGRAM)


def instruction_reject_reason(
    instruction: str,
    min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
    blacklist: Sequence[str] = SELF_INSTRUCT_BLACKLIST,
) -> str | None:
    """Why the published rules drop ``instruction``, or None to keep it."""
    if not instruction:
        return "empty"
    words = len(instruction.split())
    if words <= min_words:
        return "too_short"
    if words > max_words:
        return "too_long"
    if blacklist and _compiled(blacklist_pattern(tuple(blacklist))).search(instruction):
        return "blacklisted_keyword"
    # the teacher tends to turn tasks into "Write a program ..." ones, which are ambiguous
    if starts_with_write_a_program(instruction):
        return "write_a_program"
    if _compiled(PUNCTUATION_START).match(instruction):
        return "starts_with_punctuation"
    if _compiled(NON_ASCII_START).match(instruction):
        return "starts_with_non_ascii"
    return None


def instance_reject_reason(inst_input: str, inst_output: str) -> str | None:
    """The published instance validity rules."""
    if inst_input == inst_output:
        return "input_equals_output"
    if inst_output == "":
        return "empty_output"
    if inst_input.strip().endswith(":") or inst_output.strip().endswith(":"):
        return "ends_with_colon"
    return None


def conflicting_instances(instances: Sequence[tuple[str, str]]) -> bool:
    """True when two instances share a non-empty input but disagree on the output."""
    seen: dict[str, str] = {}
    for inst_input, inst_output in instances:
        if inst_input == "":
            continue
        if seen.setdefault(inst_input, inst_output) != inst_output:
            return True
    return False


def dedupe_instances(instances: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop repeated (input, output) pairs, keeping first occurrences in order."""
    return list(dict.fromkeys(instances))
