"""The teacher interface: a batch of requests in, completions with text, finish_reason and tokens out.

Every engine implements ``generate(requests) -> results`` (same order). A request that
fails after the engine's own retries comes back as a ``Result`` with ``error`` set (and
``error_kind`` saying what kind of failure), never as an exception, so the caller can log
it to ``errors.jsonl`` and go on. Exceptions are for problems that make every request fail:
bad configuration, a missing package, a server that refuses the key or the connection
(``TeacherUnavailable``).

Each engine has its own options dataclass (``OpenAIOptions``, ``VLLMOptions``, ...), built by
``engine_options``; an option another engine takes is an error naming both ("--concurrency
applies to --engine openai"). Capabilities are class attributes: ``supports_completions``
says whether the engine can run raw text completions (not just chat).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from curate.errors import CurateError

ENGINES = ("auto", "cpu", "llamacpp", "transformers", "openai", "vllm")
CPU_DEFAULT = "llamacpp"  # measured: see bench/results/generate.md

# Failure kinds a Result can carry; the run's advice is chosen from them.
ERROR_KINDS = ("auth", "connection", "timeout", "rate_limit", "server", "bad_request", "context_length",
               "incomplete", "engine")

OptionsT = TypeVar("OptionsT")


class TeacherUnavailable(CurateError):
    """Every further request would fail the same way (refused key, refused connection): stop the run."""

    def __init__(self, message: str, kind: str):
        self.kind = kind
        super().__init__(message)


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
    error_kind: str | None = None  # one of ERROR_KINDS when error is set

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tokens_out(self) -> int:
        return sum(c.tokens_out for c in self.completions)


class Engine(Protocol):
    name: str
    model: str
    supports_completions: ClassVar[bool]  # can run raw text completions, not only chat

    def generate(self, requests: list[Request]) -> list[Result]: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def flag(name: str) -> str:
    """The command-line flag of an option field: its ``flag`` metadata, else ``--field-name``."""
    return "--" + name.replace("_", "-")


def option_flag(cls: type, name: str) -> str:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("flag", flag(name))
    return flag(name)


def engine_options(cls: type[OptionsT], engine: str, values: Mapping[str, Any] | None = None) -> OptionsT:
    """``cls`` from ``values`` (None values dropped); an unknown option is a one-line error naming it."""
    values = {k: v for k, v in (values or {}).items() if v is not None}
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in values:
        if key not in known:
            raise CurateError(f"{flag(key)} is not an option of --engine {engine} "
                              f"(its options: {', '.join(option_flag(cls, k) for k in sorted(known))})")
    try:
        return cls(**values)
    except TypeError as err:
        raise CurateError(f"--engine {engine}: {err}") from None


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop sequence; True when one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()
