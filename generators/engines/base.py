"""The teacher interface: a batch of requests in, completions with text, finish_reason and tokens out.

Every engine implements ``generate(requests) -> results`` (same order). A request that
fails after the engine's own retries comes back as a ``Result`` with ``error`` set, never
as an exception, so the caller can log it to ``errors.jsonl`` and go on. Exceptions are
for problems that make every request fail (bad configuration, missing package).

``make_engine`` builds an engine by name; ``auto`` picks vLLM when a CUDA GPU and the
``vllm`` package are both present, else the CPU default (the engine the CPU benchmark in
``bench/results/generate.md`` measured fastest on the bundled SmolLM2-135M-Instruct).
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

ENGINES = ("auto", "cpu", "llamacpp", "transformers", "openai", "vllm")
CPU_DEFAULT = "llamacpp"  # measured: see bench/results/generate.md


@dataclass
class Request:
    """One generation request. ``chat`` sends ``prompt`` as a user message; otherwise raw text completion."""

    prompt: str
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    n: int = 1
    chat: bool = True
    id: str = ""  # the caller's name for the request, echoed in errors

    def sampling(self) -> dict[str, Any]:
        """The sampling parameters, for provenance in ``meta``."""
        params = asdict(self)
        for key in ("prompt", "id", "chat"):
            params.pop(key)
        return params


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" (natural end or stop sequence) or "length"
    tokens_out: int


@dataclass
class Result:
    request: Request
    completions: list[Completion] = field(default_factory=list)
    tokens_in: int = 0
    error: str | None = None  # set when the request failed for good
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tokens_out(self) -> int:
        return sum(c.tokens_out for c in self.completions)


class Engine(Protocol):
    name: str
    model: str

    def generate(self, requests: list[Request]) -> list[Result]: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop sequence; True when one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()

