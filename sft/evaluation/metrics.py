"""Per-example metrics of `curate eval` that need no model: the frozen eval set, answer checks, health.

* The eval set is a curate records file; each record's last assistant turn is the reference,
  everything before it is the prompt. Its hash (of the records as read) is recorded with
  every result, so two results are comparable only when the hashes match.
* GSM8K-style answers: a reference is checkable when it ends with ``#### N``. ``strict``
  takes the prediction's own ``#### N``; ``flexible`` falls back to the last number in the
  prediction. The two are reported separately (strict is what the format asked for).
* Generation health: did the answer end by itself (end-of-turn token before the cap), its
  length in tokens, and its repeated 4-gram rate (share of word 4-grams that repeat an
  earlier 4-gram of the same answer: loops and degenerate repetition).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import InputError

_NUMBER = r"-?[\d,]*\.?\d+"
_STRICT = re.compile(r"####\s*\$?\s*(" + _NUMBER + ")")
_ANY_NUMBER = re.compile(_NUMBER)


@dataclass
class EvalExample:
    id: str
    prompt: list[dict[str, str]]  # the conversation up to the reference answer
    reference: str
    messages: list[dict[str, str]]  # prompt + reference: what the NLL is computed on


@dataclass
class EvalSet:
    path: str
    sha256: str
    examples: list[EvalExample]

    def describe(self) -> dict[str, Any]:
        checkable = sum(1 for e in self.examples if gsm8k_answer(e.reference) is not None)
        return {"path": self.path, "sha256": self.sha256, "examples": len(self.examples), "checkable": checkable}


def records_hash(records: Sequence[dict[str, Any]]) -> str:
    """Content hash of records (ids and messages, in order): the eval set's identity."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps([record.get("id"), record["messages"]], ensure_ascii=False,
                                 sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def eval_examples(records: Sequence[dict[str, Any]], source: str) -> list[EvalExample]:
    examples = []
    for line_no, record in enumerate(records, start=1):
        messages = record["messages"]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is None or not any(m["role"] == "user" for m in messages[:last]):
            raise InputError(source, line_no, "messages", "an eval record needs a user turn and a reference answer")
        examples.append(EvalExample(record["id"], messages[:last], messages[last]["content"], messages[: last + 1]))
    return examples


def load_eval_set(path: str | Path) -> EvalSet:
    from curate.records.jsonl import read_records

    records = list(read_records(path, check_id=False))
    if not records:
        raise InputError(str(path), None, None, "holds no record")
    return EvalSet(str(path), records_hash(records), eval_examples(records, str(path)))


def _number(text: str) -> str | None:
    cleaned = text.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return str(int(value)) if value == int(value) else repr(value)


def gsm8k_answer(text: str) -> str | None:
    """The ``#### N`` answer of a reference or prediction, normalized; None when absent."""
    found = _STRICT.findall(text)
    return _number(found[-1]) if found else None


def last_number(text: str) -> str | None:
    found = _ANY_NUMBER.findall(text)
    return _number(found[-1]) if found else None


def exact_match(prediction: str, reference: str) -> tuple[float, float] | None:
    """(strict, flexible) exact match against a checkable reference; None when it is not checkable."""
    gold = gsm8k_answer(reference)
    if gold is None:
        return None
    strict = gsm8k_answer(prediction)
    flexible = strict if strict is not None else last_number(prediction)
    return float(strict == gold), float(flexible == gold)


def repeated_ngram_rate(text: str, n: int = 4) -> float:
    """Share of word n-grams that already occurred earlier in the same text (0 for short texts)."""
    words = text.lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1 - len(set(grams)) / len(grams)
