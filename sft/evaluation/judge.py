"""Pairwise judging of two models' answers, in both orders, with a length-controlled win rate.

Every (prompt, answer X, answer Y) is judged twice: X shown as "A" then as "B". From X's
side each order is a win, a loss or a tie (an unreadable verdict counts as a tie and is
counted). The pair's outcome: X wins when it wins both orders or wins one and ties the
other; Y wins likewise; anything else is a tie. Ties count half. The order-inconsistency
rate is the share of pairs whose two verdicts (from X's side) differ: a judge that prefers
whatever comes first scores high here.

Judges prefer longer answers, so besides the raw win rate we report the length-controlled
one (:func:`sft.stats.lc_win_rate`) and both sides' mean lengths.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from generators.engines.base import Request
from sft.stats import bootstrap_mean, lc_win_rate

JUDGE_PROMPT = """You are comparing two answers to the same question. Pick the answer that is more helpful, \
correct and clear. Length alone is not a reason to prefer an answer.

[Question]
{question}

[Answer A]
{a}

[Answer B]
{b}

Which answer is better? Reply with exactly one of: A, B, tie."""

_VERDICT = re.compile(r"\b((?i:tie)|A|B)\b")


@dataclass
class Side:
    """One model's answers to the eval prompts, aligned with the examples."""

    name: str
    answers: Sequence[str]
    lengths: Sequence[int]


def parse_verdict(text: str) -> str:
    """'A', 'B', 'tie' or 'invalid' from a judge reply; the first verdict word wins."""
    stripped = text.strip().strip("[]*.:\"' ")
    if stripped.lower() in ("a", "b", "tie"):
        return stripped.upper() if len(stripped) == 1 else "tie"
    # the verdict letter is matched case-sensitively: "the answer is a good one" is no verdict
    for pattern in (r"\[\[(A|B|(?i:tie))\]\]", r"(?i:answer|response)\s+(?i:is\s+)?(A|B)\b",
                    r"\b(?i:is|choose|pick|prefer)\s+(A|B)\b", r"(?i:\b(?:it'?s|is)\s+a\s+(tie)\b)"):
        found = re.search(pattern, text)
        if found:
            word = found.group(1)
            return "tie" if word.lower() == "tie" else word.upper()
    found = _VERDICT.match(stripped)
    if found:
        word = found.group(1)
        return "tie" if word.lower() == "tie" else word.upper()
    return "invalid"


def side_view(verdict: str, x_is_a: bool) -> str:
    """A verdict seen from X's side: win, loss or tie (invalid -> tie)."""
    if verdict not in ("A", "B"):
        return "tie"
    return "win" if (verdict == "A") == x_is_a else "loss"


def combine(first: str, second: str) -> float:
    """Outcome for X from its two order views: 1 win, 0 loss, 0.5 tie (the rule in the module docstring)."""
    views = {first, second}
    if views <= {"win", "tie"} and "win" in views:
        return 1.0
    if views <= {"loss", "tie"} and "loss" in views:
        return 0.0
    return 0.5


def judge_requests(questions: Sequence[str], x: Side, y: Side, max_tokens: int = 8) -> list[Request]:
    requests = []
    for i, question in enumerate(questions):
        for x_is_a in (True, False):
            a, b = (x.answers[i], y.answers[i]) if x_is_a else (y.answers[i], x.answers[i])
            requests.append(Request(prompt=JUDGE_PROMPT.format(question=question, a=a, b=b), max_tokens=max_tokens,
                                    temperature=0.0, seed=0, id=f"{i}:{'xy' if x_is_a else 'yx'}"))
    return requests


def judge_pair(engine: Any, ids: Sequence[str], questions: Sequence[str], x: Side, y: Side,
               seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Judge X against Y on every question in both orders: (judgment rows, summary with CIs)."""
    results = engine.generate(judge_requests(questions, x, y))
    rows, outcomes, inconsistent, invalid, errors = [], [], [], 0, 0
    for i, example_id in enumerate(ids):
        views, raw = [], []
        for result, x_is_a in ((results[2 * i], True), (results[2 * i + 1], False)):
            text = result.completions[0].text if result.ok and result.completions else ""
            verdict = parse_verdict(text) if result.ok else "invalid"
            errors += not result.ok
            invalid += verdict == "invalid"
            views.append(side_view(verdict, x_is_a))
            raw.append({"order": "x_first" if x_is_a else "y_first", "verdict": verdict, "reply": text,
                        "error": result.error})
        outcome = combine(*views)
        outcomes.append(outcome)
        inconsistent.append(float(views[0] != views[1]))
        rows.append({"id": example_id, "x": x.name, "y": y.name, "outcome_x": outcome, "views_x": views,
                     "x_tokens": x.lengths[i], "y_tokens": y.lengths[i], "judgments": raw})
    length_diff = [a - b for a, b in zip(x.lengths, y.lengths, strict=True)]
    summary = {
        "x": x.name, "y": y.name, "pairs": len(ids),
        "win_rate": bootstrap_mean(outcomes, seed=seed).as_dict(),
        "lc_win_rate": lc_win_rate(outcomes, length_diff, seed=seed).as_dict(),
        "x_mean_tokens": sum(x.lengths) / max(len(ids), 1),
        "y_mean_tokens": sum(y.lengths) / max(len(ids), 1),
        "order_inconsistency": bootstrap_mean(inconsistent, seed=seed).as_dict(),
        "invalid_verdicts": invalid, "failed_requests": errors,
        "judge": engine.describe(),
    }
    return rows, summary
