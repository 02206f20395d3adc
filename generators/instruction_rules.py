"""Self-Instruct's instruction filters and instance validity rules.

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


@lru_cache(maxsize=64)
def _blacklist_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", flags=re.IGNORECASE)


def instruction_reject_reason(
    instruction: str, min_words: int = 3, max_words: int = 150, blacklist: Sequence[str] = SELF_INSTRUCT_BLACKLIST
) -> str | None:
    """Why the published rules drop ``instruction``, or None to keep it."""
    if not instruction:
        return "empty"
    words = len(instruction.split())
    if words <= min_words:
        return "too_short"
    if words > max_words:
        return "too_long"
    if blacklist and _blacklist_pattern(tuple(blacklist)).search(instruction):
        return "blacklisted_keyword"
    # the teacher tends to turn tasks into "Write a program ..." ones, which are ambiguous
    if instruction.startswith("Write a program"):
        return "write_a_program"
    if instruction[0] in string.punctuation:
        return "starts_with_punctuation"
    if not instruction[0].isascii():
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
