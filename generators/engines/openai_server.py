"""Engine for any OpenAI-compatible server: ``vllm serve``, llama.cpp's server, hosted APIs.

Requests of a batch run concurrently on an ``AsyncOpenAI`` client, at most ``concurrency``
at a time, optionally paced to ``requests_per_minute``. Rate limits (429), server errors
(5xx), timeouts and dropped connections are retried with exponential backoff and full
jitter (tenacity's ``wait_random_exponential``), honouring ``Retry-After``; the client's
own retries are off so there is one policy. A "maximum context length" error is answered
by shrinking ``max_tokens`` to what fits (parsed from the message, else halved) and trying
again. A request that still fails comes back as a ``Result`` with ``error`` set.

The key comes from ``OPENAI_API_KEY`` (a placeholder is sent when unset: local servers
ignore it). ``--base-url`` defaults to ``OPENAI_BASE_URL``, else the OpenAI API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from typing import Any

from curate.errors import CurateError
from generators.engines.base import Completion, Request, Result

_RETRY_STATUS = {408, 409, 429}


def shrink_max_tokens(message: str, max_tokens: int) -> int | None:
    """The max_tokens that fits, from a context-length error message; None when nothing can fit."""
    text = message.replace(",", "")
    window = re.search(r"(?:maximum context length is|context window of|context length of)\s*(\d+)", text)
    prompt = re.search(r"(\d+) in (?:the messages|your prompt)|request has (\d+) input tokens|resulted in (\d+) tokens", text)
    if window and prompt:
        prompt_tokens = int(next(g for g in prompt.groups() if g))
        fits = int(window.group(1)) - prompt_tokens - 1
        return fits if 0 < fits < max_tokens else None
    requested = re.search(r"requested (\d+) tokens", text)
    if window and requested:
        fits = max_tokens - (int(requested.group(1)) - int(window.group(1))) - 1
        return fits if 0 < fits < max_tokens else None
    return max_tokens // 2 if max_tokens > 1 else None


def is_context_length_error(err: Exception) -> bool:
    text = str(err).lower()
    return "context length" in text or "context window" in text or "context_length_exceeded" in text or (
        "max_tokens" in text and "too large" in text)


class _Pacer:
    """Spaces request starts ``60 / rpm`` seconds apart (shared by all concurrent tasks)."""

    def __init__(self, requests_per_minute: float | None):
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next = 0.0

    async def wait(self, lock: asyncio.Lock) -> None:
        if not self.interval:
            return
        async with lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class OpenAIEngine:
    name = "openai"

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, max_retries: int = 6, timeout: float = 600.0,
                 requests_per_minute: float | None = None, retry_initial_wait: float = 1.0,
                 retry_max_wait: float = 60.0, **_: Any):
        try:
            import openai  # noqa: F401
        except ImportError:
            raise CurateError("the openai package is not installed: `pip install openai`") from None
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.retry_initial_wait = retry_initial_wait
        self.retry_max_wait = retry_max_wait
        self.requests_per_minute = requests_per_minute
        self._pacer = _Pacer(requests_per_minute)
        self.retries = 0  # attempts beyond the first, over the engine's life
        self.model = model or self._only_served_model()

    def _client(self):
        from openai import AsyncOpenAI

        # one policy for retries: ours (the client's own would multiply the attempts)
        return AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, timeout=self.timeout, max_retries=0)

    def _only_served_model(self) -> str:
        """With no --teacher, use the server's model when it serves exactly one."""
        from openai import OpenAI, OpenAIError

        try:
            models = [m.id for m in OpenAI(api_key=self.api_key, base_url=self.base_url, timeout=30, max_retries=2).models.list()]
        except OpenAIError as err:
            raise CurateError(f"--base-url {self.base_url}: cannot list the served models ({err}); give --teacher") from None
        if len(models) != 1:
            raise CurateError(f"--teacher: the server at {self.base_url} serves {len(models)} models; name one "
                              f"({', '.join(models[:5])})")
        return models[0]

    def generate(self, requests: list[Request]) -> list[Result]:
        return asyncio.run(self._generate(requests))

    async def _generate(self, requests: list[Request]) -> list[Result]:
        semaphore = asyncio.Semaphore(self.concurrency)
        lock = asyncio.Lock()
        async with self._client() as client:
            return list(await asyncio.gather(*(self._one(client, r, semaphore, lock) for r in requests)))

    async def _one(self, client, request: Request, semaphore: asyncio.Semaphore, lock: asyncio.Lock) -> Result:
        import openai
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        max_tokens = request.max_tokens
        attempts = 0
        async with semaphore:
            while True:
                try:
                    async for attempt in AsyncRetrying(retry=retry_if_exception(_retryable), wait=self._wait,
                                                       stop=stop_after_attempt(self.max_retries + 1), reraise=True):
                        with attempt:
                            attempts += 1
                            self.retries += attempts > 1
                            await self._pacer.wait(lock)
                            response = await self._call(client, request, max_tokens)
                    return self._result(request, response, attempts)
                except openai.BadRequestError as err:
                    if not is_context_length_error(err):
                        return Result(request, error=_describe(err), attempts=attempts)
                    smaller = shrink_max_tokens(str(err), max_tokens)
                    if smaller is None:
                        return Result(request, error=f"prompt too long for the context window: {_describe(err)}",
                                      attempts=attempts)
                    max_tokens = smaller
                except openai.OpenAIError as err:
                    return Result(request, error=_describe(err), attempts=attempts)

    async def _call(self, client, request: Request, max_tokens: int):
        params: dict[str, Any] = {
            "model": self.model, "max_tokens": max_tokens, "temperature": request.temperature, "top_p": request.top_p,
            "presence_penalty": request.presence_penalty, "frequency_penalty": request.frequency_penalty, "n": request.n,
        }
        if request.stop:
            params["stop"] = request.stop[:4]  # the OpenAI API accepts at most four
        if request.seed is not None:
            params["seed"] = request.seed
        if request.chat:
            return await client.chat.completions.create(messages=[{"role": "user", "content": request.prompt}], **params)
        return await client.completions.create(prompt=request.prompt, **params)

    def _result(self, request: Request, response, attempts: int) -> Result:
        usage = response.usage
        tokens_out_total = usage.completion_tokens if usage else 0
        completions = []
        for choice in response.choices:
            text = choice.message.content if request.chat else choice.text
            completions.append(Completion(text or "", choice.finish_reason or "stop",
                                          tokens_out_total // max(len(response.choices), 1)))
        return Result(request, completions, tokens_in=usage.prompt_tokens if usage else 0, attempts=attempts)

    def _wait(self, retry_state) -> float:
        from tenacity import wait_random_exponential

        delay = wait_random_exponential(multiplier=self.retry_initial_wait, max=self.retry_max_wait)(retry_state)
        err = retry_state.outcome.exception() if retry_state.outcome else None
        response = getattr(err, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), self.retry_max_wait))
        return delay

    def describe(self) -> dict[str, Any]:
        import openai

        return {"name": self.name, "model": self.model, "base_url": self.base_url or "https://api.openai.com/v1",
                "concurrency": self.concurrency, "max_retries": self.max_retries, "timeout_s": self.timeout,
                "requests_per_minute": self.requests_per_minute, "openai": openai.__version__}

    def close(self) -> None:
        pass


def _retryable(err: BaseException) -> bool:
    import openai

    if isinstance(err, (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                        openai.InternalServerError)):
        return True
    return isinstance(err, openai.APIStatusError) and (err.status_code in _RETRY_STATUS or err.status_code >= 500)


def _describe(err: Exception) -> str:
    status = getattr(err, "status_code", None)
    return f"{type(err).__name__}{f' (HTTP {status})' if status else ''}: {err}"
