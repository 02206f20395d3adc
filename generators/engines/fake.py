"""A fake engine with queued replies, for unit tests (like simonw/llm's ``MockModel.enqueue``).

    engine = FakeEngine()
    engine.enqueue("1. Write a haiku about rain.", finish_reason="stop")
    engine.enqueue_error("HTTP 503")          # the next request fails for good
    engine.enqueue(lambda request: "Yes")     # a reply computed from the request

Each request takes the next reply in order; ``engine.requests`` records what was sent.
When the queue runs dry, ``default`` answers (a string or a callable), or it raises.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from generators.engines.base import Completion, Request, Result

Reply = str | Callable[[Request], str]


class FakeEngine:
    name = "fake"
    supports_completions = True

    def __init__(self, model: str = "fake-teacher", default: Reply | None = None):
        self.model = model
        self.default = default
        self.requests: list[Request] = []
        self._queue: deque[tuple[Reply | None, str, str | None]] = deque()
        self.interrupt_after: int | None = None  # raise KeyboardInterrupt after this many requests

    def enqueue(self, reply: Reply, finish_reason: str = "stop") -> FakeEngine:
        self._queue.append((reply, finish_reason, None))
        return self

    def enqueue_error(self, message: str) -> FakeEngine:
        self._queue.append((None, "error", message))
        return self

    def _answer(self, request: Request) -> Result:
        if self._queue:
            reply, finish_reason, error = self._queue.popleft()
        elif self.default is not None:
            reply, finish_reason, error = self.default, "stop", None
        else:
            raise AssertionError(f"FakeEngine: no reply queued for request {request.id!r}:\n{request.prompt[-300:]}")
        if error is not None:
            return Result(request, error=error, error_kind="engine")
        text = reply(request) if callable(reply) else reply
        completion = Completion(text, finish_reason, len(text.split()))
        return Result(request, [completion] * request.n, tokens_in=len(request.prompt.split()))

    def generate(self, requests: list[Request]) -> list[Result]:
        results = []
        for request in requests:
            if self.interrupt_after is not None and len(self.requests) >= self.interrupt_after:
                raise KeyboardInterrupt
            self.requests.append(request)
            results.append(self._answer(request))
        return results

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model}

    def close(self) -> None:
        pass
