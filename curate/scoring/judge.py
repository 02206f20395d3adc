"""``judge``: an LLM rates each example from 0 to 5 on our rubric, through any engine of `curate generate`.

The rubric (``prompts/judge_rubric.txt``, our own words in the spirit of AlpaGasus) asks for
accuracy, helpfulness and instruction following on a 0-5 scale with half points, and for a
JSON answer ``{"score": N, "reason": "..."}``. Requests go at temperature 0 with a fixed seed.
Engines that take a JSON schema get one (when the engine's ``Request`` has a ``json_schema``
field); every answer, structured or not, then goes through :func:`parse_judgement`:

1. a JSON object with a numeric ``score`` (anywhere in the text, code fences allowed);
2. ``score: 4``, ``rating = 4.5``, ``4/5``, ``4 out of 5``;
3. exactly one number in the whole text, between 0 and 5 ("I would give it a 4.").

An answer that none of these read (garbage, a refusal to rate, a number outside 0-5) is
retried once with a reminder of the format; if that fails too, the row goes to the errors
file with the reason and the raw text. The raw judge text of every scored row is kept in
``meta.scoring.judge.raw``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from curate.scoring.base import SCORER_VERSION, Result, config_key, failed, ok

SCALE = (0.0, 5.0)
JSON_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "number", "minimum": SCALE[0], "maximum": SCALE[1]},
                   "reason": {"type": "string"}},
    "required": ["score", "reason"],
}
# No concrete number in the reminder: a weak judge that echoes it must not be read as a score.
REMINDER = ("\n\nYour previous answer could not be read. Answer with only the JSON object, in this form: "
            '{"score": <a number from 0 to 5>, "reason": "<one short sentence>"}')
_NUMBER = r"(\d+(?:\.\d+)?)"
_PATTERNS = (
    re.compile(r"\b(?:score|rating|rated|grade)\b\W{0,3}(?:is|of|:|=)?\s*\**" + _NUMBER, re.IGNORECASE),
    re.compile(_NUMBER + r"\s*(?:/|out of)\s*5\b", re.IGNORECASE),
)
_REFUSAL = re.compile(r"\b(?:I\s+(?:can(?:no|')t|won't|will not|am (?:not able|unable) to|must decline)"
                      r"|I'm (?:sorry|unable|not able)|as an AI)\b", re.IGNORECASE)


@dataclass
class JudgeConfig:
    """The judge: an engine of `curate generate` and our rubric."""

    engine: str = field(default="cpu", metadata={"help": "cpu | llamacpp | transformers | openai | vllm | auto"})
    model: str | None = field(default=None, metadata={"help": "judge model; default: the bundled model for local engines"})
    options: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "engine options passed to make_engine (base_url, concurrency, timeout...)"})
    rubric: str | None = field(default=None, metadata={"help": "a prompt file with {conversation}; default: ours"})
    max_tokens: int = field(default=128, metadata={"help": "tokens per judge answer"})
    seed: int = field(default=0, metadata={"help": "request seed (temperature is always 0)"})
    batch_size: int = field(default=8, metadata={"help": "requests handed to the engine at once"})

    def settings(self, rubric_text: str) -> dict[str, Any]:
        return {"engine": self.engine, "model": self.model, "options": {k: v for k, v in self.options.items()
                                                                        if k not in ("api_key",)},
                "rubric": hashlib.sha256(rubric_text.encode()).hexdigest()[:16], "max_tokens": self.max_tokens,
                "seed": self.seed}


def default_rubric() -> str:
    return resources.files("curate.scoring").joinpath("prompts/judge_rubric.txt").read_text(encoding="utf-8")


def render_conversation(messages: Sequence[Mapping[str, str]]) -> str:
    names = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
    return "\n\n".join(f"{names.get(m['role'], m['role'])}: {m['content']}" for m in messages)


def judge_prompt(rubric: str, record: Mapping[str, Any]) -> str:
    # str.replace, not str.format: the rubric holds literal JSON braces
    return rubric.replace("{conversation}", render_conversation(record["messages"]))


def _in_scale(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if SCALE[0] <= number <= SCALE[1] else None


def _json_score(text: str) -> float | None:
    candidates = [text.strip()] + re.findall(r"\{[^{}]*\}", text)
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and "score" in value and not isinstance(value["score"], bool):
            return _in_scale(value["score"])
    return None


def parse_judgement(text: str) -> tuple[float, str] | None:
    """``(score, how)`` read from a judge's answer, ``how`` in json | pattern | number; None when unreadable."""
    score = _json_score(text)
    if score is not None:
        return score, "json"
    for pattern in _PATTERNS:
        found = {_in_scale(m) for m in pattern.findall(text)}
        if len(found) == 1 and None not in found:
            return found.pop(), "pattern"  # type: ignore[return-value]
    numbers = re.findall(r"(?<![\w.])" + _NUMBER + r"(?!\w)", text)
    if len(numbers) == 1:  # exactly one number in the whole answer ("1. 1. 1. 1." is not a rating)
        value = _in_scale(numbers[0])
        if value is not None:
            return value, "number"
    return None


def why_unreadable(text: str) -> str:
    if not text.strip():
        return "judge answer is empty"
    if _REFUSAL.search(text):
        return "judge refused to rate"
    return "judge answer has no score from 0 to 5"


class JudgeScorer:
    """Rates records with an LLM; ``engine`` may be given (tests pass a FakeEngine)."""

    group = "judge"

    def __init__(self, config: JudgeConfig | None = None, engine: Any = None):
        from curate.errors import CurateError

        self.config = config or JudgeConfig()
        if self.config.rubric:
            try:
                self.rubric = Path(self.config.rubric).read_text(encoding="utf-8")
            except OSError as err:
                raise CurateError(f"judge rubric {self.config.rubric}: cannot read ({err.strerror})") from None
            if "{conversation}" not in self.rubric:
                raise CurateError(f"judge rubric {self.config.rubric}: has no {{conversation}} placeholder")
        else:
            self.rubric = default_rubric()
        if engine is None:
            from generators.engines.factory import make_engine

            engine = make_engine(self.config.engine, self.config.model, **self.config.options)
        self.engine = engine

    def key(self) -> str:
        return config_key(self.group, self.config.settings(self.rubric))

    def describe(self) -> dict[str, Any]:
        return {"scorer": "judge", "engine": getattr(self.engine, "name", self.config.engine),
                "model": getattr(self.engine, "model", self.config.model), "scale": list(SCALE),
                "rubric": self.config.settings(self.rubric)["rubric"], "temperature": 0.0, "seed": self.config.seed,
                "version": SCORER_VERSION}

    def _requests(self, prompts: Sequence[str], ids: Sequence[str]) -> list[Any]:
        from generators.engines.base import Request

        extra = {"json_schema": JSON_SCHEMA} if "json_schema" in {f.name for f in fields(Request)} else {}
        return [Request(prompt=p, max_tokens=self.config.max_tokens, temperature=0.0, seed=self.config.seed,
                        id=i, **extra) for p, i in zip(prompts, ids, strict=True)]

    def _ask(self, prompts: Sequence[str], ids: Sequence[str]) -> list[tuple[str | None, str | None]]:
        """``(text, engine_error)`` per prompt, in batches of ``batch_size``."""
        answers: list[tuple[str | None, str | None]] = []
        size = max(1, self.config.batch_size)
        for start in range(0, len(prompts), size):
            results = self.engine.generate(self._requests(prompts[start:start + size], ids[start:start + size]))
            for result in results:
                if result.error is not None or not result.completions:
                    answers.append((None, result.error or "engine returned no completion"))
                else:
                    answers.append((result.completions[0].text, None))
        return answers

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> list[Result]:
        prompts = [judge_prompt(self.rubric, record) for record in batch]
        ids = [str(record.get("id", i)) for i, record in enumerate(batch)]
        answers = self._ask(prompts, ids)
        results: list[Result | None] = [None] * len(batch)
        retry: list[int] = []
        for i, (text, error) in enumerate(answers):
            if error is not None:
                results[i] = failed(f"judge engine error: {error}")
            elif (parsed := parse_judgement(text or "")) is not None:
                results[i] = ok({"judge": parsed[0]}, {"raw": text, "parsed_from": parsed[1], "attempts": 1})
            else:
                retry.append(i)
        if retry:
            second = self._ask([prompts[i] + REMINDER for i in retry], [ids[i] for i in retry])
            for i, (text, error) in zip(retry, second, strict=True):
                parsed = parse_judgement(text or "") if error is None else None
                if parsed is not None:
                    results[i] = ok({"judge": parsed[0]}, {"raw": text, "parsed_from": parsed[1], "attempts": 2})
                else:
                    first = answers[i][0] or ""
                    reason = f"judge engine error: {error}" if error else why_unreadable(text or "")
                    results[i] = failed(f"{reason} (after one retry); raw: {first[:200]!r} / {(text or '')[:200]!r}")
        return [r for r in results if r is not None]
