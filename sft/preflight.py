"""Checks run before the first training step; each failure names a count and an example record.

- every sample keeps at least one trainable token after truncation (else dropped and
  counted, or an error with ``--strict``);
- how many samples are truncated and by how much (never silent);
- the end-of-turn token is in the labels of every rendered sample (else the model never
  learns to stop), and how many lose it to truncation;
- the chat template used to render is the one saved with the run (checked again after
  saving, and by `curate chat` before it generates);
- every record's roles are in order (an optional system turn, then user and assistant turns
  alternating from a user turn, ending on an assistant turn): the others are counted and dropped,
  or an error with ``--strict``;
- an eval set too small to measure anything (under 32 records or 1,000 trainable tokens) is a
  warning that names the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from curate.errors import CurateError
from curate.lm.render import IGNORE_INDEX, Rendered, truncate


@dataclass
class PreflightReport:
    samples: int = 0
    kept: int = 0
    dropped_no_trainable: int = 0
    dropped_example: str | None = None
    truncated: int = 0
    truncated_example: str | None = None
    truncated_tokens_max: int = 0
    truncated_tokens_mean: float = 0.0
    lost_end_of_turn: int = 0
    lost_end_of_turn_example: str | None = None
    tokens: int = 0
    dropped_roles_out_of_order: int = 0
    trainable_tokens: int = 0
    lengths: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


MIN_EVAL_RECORDS = 32
MIN_EVAL_TOKENS = 1000


def roles_in_order(messages: Sequence[dict[str, Any]]) -> str | None:
    """None when the turns are in order, else what is wrong, in a few words."""
    roles = [m.get("role") for m in messages]
    if roles and roles[0] == "system":
        roles = roles[1:]
    if not roles:
        return "no user or assistant turn"
    if roles[-1] != "assistant":
        return f"ends on a {roles[-1]} turn"
    for index, role in enumerate(roles):
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            return f"turn {index + 1} is {role}, expected {expected}"
    return None


def check_roles(records: Sequence[dict[str, Any]], strict: bool, split: str = "train",
                say: Callable[[str], None] = print) -> tuple[list[dict[str, Any]], int]:
    """Records whose roles are in order, and how many were dropped (an error with ``strict``)."""
    kept, bad, example = [], 0, None
    for record in records:
        problem = roles_in_order(record.get("messages") or [])
        if problem is None:
            kept.append(record)
            continue
        bad += 1
        example = example or f"record {record.get('id', '?')}: {problem}"
    if bad:
        line = f"{split}: {bad} of {len(records)} records have their roles out of order (e.g. {example})"
        if strict:
            raise CurateError(line + "; fix them or leave out --strict to drop them")
        say(f"preflight {line}: dropped")
    return kept, bad


def small_eval_warning(records: int, trainable_tokens: int) -> str | None:
    """A warning when the eval loss would rest on too little to mean anything."""
    if records >= MIN_EVAL_RECORDS and trainable_tokens >= MIN_EVAL_TOKENS:
        return None
    return (f"warning: the eval set has {records} records and {trainable_tokens:,} trainable tokens (below "
            f"{MIN_EVAL_RECORDS} records / {MIN_EVAL_TOKENS:,} tokens): its loss is noise; give --eval-file "
            "or a larger --eval-split")


def _percentile(sorted_values: Sequence[int], q: float) -> int:
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def check_samples(
    rendered: Sequence[Rendered],
    max_length: int | None,
    eot_id: int,
    eot: str,
    strict: bool,
    split: str = "train",
    say: Callable[[str], None] = print,
    all_tokens_loss: bool = False,
) -> tuple[list[Rendered], PreflightReport]:
    """Truncate, count, drop or fail; returns the samples to train on and what happened to the rest."""
    report = PreflightReport(samples=len(rendered))
    missing_eot = [r for r in rendered if eot_id not in [label for label in r.labels if label != IGNORE_INDEX]]
    if missing_eot and not all_tokens_loss:
        no_assistant = [r for r in missing_eot if r.trainable == 0]
        if len(no_assistant) != len(missing_eot):
            bad = next(r for r in missing_eot if r.trainable)
            raise CurateError(
                f"{split}: the end-of-turn token {eot!r} is not in the labels of {len(missing_eot) - len(no_assistant)} "
                f"samples (e.g. record {bad.record_id}); the model would never learn to stop"
            )
    kept: list[Rendered] = []
    cuts: list[int] = []
    for sample in rendered:
        short, cut = truncate(sample, max_length)
        if cut:
            cuts.append(cut)
            report.truncated_example = report.truncated_example or sample.record_id
            if eot_id in sample.labels and eot_id not in short.labels:
                report.lost_end_of_turn += 1
                report.lost_end_of_turn_example = report.lost_end_of_turn_example or sample.record_id
        if short.trainable == 0:
            report.dropped_no_trainable += 1
            report.dropped_example = report.dropped_example or sample.record_id
            continue
        kept.append(short)
    report.kept = len(kept)
    report.truncated = len(cuts)
    report.truncated_tokens_max = max(cuts, default=0)
    report.truncated_tokens_mean = round(sum(cuts) / len(cuts), 1) if cuts else 0.0
    report.tokens = sum(len(s.input_ids) for s in kept)
    report.trainable_tokens = sum(s.trainable for s in kept)
    lengths = sorted(len(s.input_ids) for s in rendered)
    report.lengths = {"min": lengths[0] if lengths else 0, "p50": _percentile(lengths, 0.5),
                      "p95": _percentile(lengths, 0.95), "max": lengths[-1] if lengths else 0}

    if report.truncated:
        say(f"preflight {split}: {report.truncated} of {report.samples} samples longer than max_length={max_length}, "
            f"cut by {report.truncated_tokens_mean} tokens on average (max {report.truncated_tokens_max}; "
            f"e.g. record {report.truncated_example})")
    if report.lost_end_of_turn:
        say(f"preflight {split}: {report.lost_end_of_turn} truncated samples lose their end-of-turn token "
            f"(e.g. record {report.lost_end_of_turn_example}): they teach the model not to stop; "
            "raise sft.max_length to keep them whole")
    if report.dropped_no_trainable:
        line = (f"{split}: {report.dropped_no_trainable} samples have no trainable (assistant) token left after "
                f"truncation at max_length={max_length} (e.g. record {report.dropped_example})")
        if strict:
            raise CurateError(line + "; raise sft.max_length or leave out --strict to drop them")
        say(f"preflight {line}: dropped")
    if not kept:
        raise CurateError(f"{split}: no sample left to train on ({report.samples} read)")
    return kept, report


def check_template_saved(run_dir: Any, expected_hash: str) -> None:
    """The tokenizer saved with the run renders with the same chat template training used."""
    from transformers import AutoTokenizer

    from curate.lm.render import template_hash

    saved = AutoTokenizer.from_pretrained(run_dir)
    if template_hash(saved) != expected_hash:
        raise CurateError(f"{run_dir}: the saved chat template differs from the one used in training")
