"""Data preparation for `curate train`: records -> eval split -> rendered samples -> preflight.

All of it runs before the model is loaded, so a mistake in the data fails in seconds. Rendering
uses the model's own chat template (``curate.lm.render``: loss on assistant turns and their
end-of-turn token only); the tutorial baseline puts the loss on every token instead.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from curate.errors import CurateError
from curate.lm.render import Rendered, chat_template_of, end_of_turn_token, render_records
from curate.records.sources import open_records
from sft.preflight import PreflightReport, check_roles, check_samples, small_eval_warning


@dataclass
class Prepared:
    train: list[Rendered]
    eval: list[Rendered]
    train_report: PreflightReport
    eval_report: PreflightReport | None
    eot: str
    notices: list[str] = field(default_factory=list)


def split_eval(records: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list, list]:
    """A deterministic held-out split (same seed, same records -> same split)."""
    if fraction <= 0 or len(records) < 2:
        return records, []
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    count = min(len(records) - 1, max(1, math.ceil(len(records) * fraction)))
    held = set(order[:count])
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


def read_split(data: str, config: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train and eval records: ``eval_file`` when given, else a seeded ``eval_split`` of ``data``."""
    records = list(open_records(data))  # any container or format curate import reads
    if config.get("eval_file"):
        return records, list(open_records(config["eval_file"]))
    return split_eval(records, float(config["eval_split"]), int(config["sft"]["seed"]))


def label_everything(samples: list[Rendered]) -> list[Rendered]:
    """The tutorial baseline: loss on every token, prompt included."""
    return [Rendered(s.record_id, s.input_ids, list(s.input_ids)) for s in samples]


def _render_split(tokenizer: Any, records: list[dict[str, Any]], config: dict[str, Any], eot: str, split: str,
                  say: Callable[[str], None]) -> tuple[list[Rendered], PreflightReport]:
    strict, baseline = bool(config.get("strict")), config.get("baseline") == "tutorial"
    records, out_of_order = check_roles(records, strict, split, say)
    rendered = render_records(tokenizer, records, eot)
    if baseline:
        rendered = label_everything(rendered)
    eot_id = tokenizer.convert_tokens_to_ids(eot)
    samples, report = check_samples(rendered, config["sft"].get("max_length"), eot_id, eot, strict, split, say,
                                    all_tokens_loss=baseline)
    report.dropped_roles_out_of_order = out_of_order
    return samples, report


def prepare(tokenizer: Any, train_records: list[dict[str, Any]], eval_records: list[dict[str, Any]],
            config: dict[str, Any], say: Callable[[str], None] = print) -> Prepared:
    """Render and preflight both splits; sets ``config['sft']['eos_token']`` to the end-of-turn token."""
    chat_template_of(tokenizer)
    eot = config["sft"].get("eos_token") or end_of_turn_token(tokenizer)
    if eot not in tokenizer.get_vocab():
        raise CurateError(f"eos_token {eot!r} is not in the tokenizer's vocabulary")
    config["sft"]["eos_token"] = eot
    train, train_report = _render_split(tokenizer, train_records, config, eot, "train", say)
    evals, eval_report = ([], None)
    if eval_records:
        evals, eval_report = _render_split(tokenizer, eval_records, config, eot, "eval", say)
    notices = []
    if evals and eval_report is not None:
        warning = small_eval_warning(len(evals), eval_report.trainable_tokens)
        if warning:
            notices.append(warning)
    return Prepared(train, evals, train_report, eval_report, eot, notices)


def dataset(samples: list[Rendered]):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [s.input_ids for s in samples], "labels": [s.labels for s in samples]})
