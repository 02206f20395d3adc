"""Engine for any OpenAI-compatible server: ``vllm serve``, llama.cpp's server, hosted APIs.

Requests of a batch run concurrently on an ``AsyncOpenAI`` client, at most ``concurrency``
at a time, optionally paced to ``requests_per_minute``. Rate limits (429), server errors
(5xx), timeouts and dropped connections are retried with exponential backoff and full
jitter (tenacity's ``wait_random_exponential``), honouring ``Retry-After``; the client's
own retries are off so there is one policy. A "maximum context length" error is answered
by shrinking ``max_tokens`` to what fits (parsed from the message, else halved) and trying
again. A request that still fails comes back as a ``Result`` with ``error`` set.

Failures no retry can fix stop the engine with ``TeacherUnavailable`` (a one-line error):
the server refuses the key (HTTP 401/403), the connection is refused before any request
ever succeeded (a wrong ``--base-url``), or ``fail_after`` requests in a row could not
connect after their retries (the server went away). Requests not yet sent are then not
sent. The API key is replaced by ``***`` in every error message before it leaves here.

The key comes from ``api_key``, else ``OPENAI_API_KEY`` (a placeholder is sent when unset:
local servers ignore it). ``base_url`` defaults to ``OPENAI_BASE_URL``, else the OpenAI API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from curate.errors import CurateError
from generators.engines.base import Completion, Request, Result, TeacherUnavailable, engine_options

_RETRY_STATUS = {408, 409, 429}


@dataclass
class OpenAIOptions:
    """Options of ``--engine openai``; ``flag`` metadata names the command-line flag where it differs."""

    base_url: str | None = field(default=None, metadata={"help": "endpoint, e.g. http://127.0.0.1:8000/v1"})
    api_key: str | None = field(default=None, metadata={"help": "API key [env OPENAI_API_KEY]"})
    concurrency: int = field(default=8, metadata={"help": "requests in flight"})
    requests_per_minute: float | None = field(default=None, metadata={"flag": "--rpm", "help": "pacing limit"})
    timeout: float = field(default=600.0, metadata={"help": "seconds per request"})
    max_retries: int = field(default=6, metadata={"help": "retries on 429/5xx/timeouts"})
    retry_initial_wait: float = 1.0
    retry_max_wait: float = 60.0
    fail_after: int = field(default=3, metadata={"help": "stop once this many requests in a row cannot connect"})

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise CurateError("--concurrency: must be at least 1")
        if self.max_retries < 0:
            raise CurateError("--max-retries: must be 0 or more")
        if self.fail_after < 1:
            raise CurateError("fail_after: must be at least 1")


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
    supports_completions = False  # hosted chat models have no raw completion endpoint; ask for it explicitly
    Options = OpenAIOptions

    def __init__(self, model: str | None = None, options: OpenAIOptions | None = None, **values: Any):
        try:
            import openai  # noqa: F401
        except ImportError:
            raise CurateError("the openai package is not installed: `pip install openai`") from None
        self.options = options or engine_options(OpenAIOptions, self.name, values)
        self.base_url = self.options.base_url or os.environ.get("OPENAI_BASE_URL")
        self.api_key = self.options.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self.concurrency = self.options.concurrency
        self._pacer = _Pacer(self.options.requests_per_minute)
        self.retries = 0  # attempts beyond the first, over the engine's life
        self.in_flight = 0  # HTTP requests sent and not yet answered, for the progress bar
        self._succeeded = False  # some request got an answer: connection errors are then transient
        self._cannot_connect = 0  # requests in a row that failed to connect after their retries
        self._stop: TeacherUnavailable | None = None
        self.model = model or self._only_served_model()

    @property
    def where(self) -> str:
        return self.base_url or "https://api.openai.com/v1"

    def _client(self):
        from openai import AsyncOpenAI

        # one policy for retries: ours (the client's own would multiply the attempts)
        return AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, timeout=self.options.timeout, max_retries=0)

    def _only_served_model(self) -> str:
        """With no --teacher, use the server's model when it serves exactly one."""
        from openai import OpenAI, OpenAIError

        try:
            client = OpenAI(api_key=self.api_key, base_url=self.base_url, timeout=30, max_retries=1)
            models = [m.id for m in client.models.list()]
        except OpenAIError as err:
            stop = self._fatal(err)
            if stop is not None:
                raise stop from None
            raise CurateError(f"--base-url {self.where}: cannot list the served models ({self.redact(_describe(err))}); "
                              "give --teacher") from None
        if len(models) != 1:
            raise CurateError(f"--teacher: the server at {self.where} serves {len(models)} models; name one "
                              f"({', '.join(models[:5])})")
        return models[0]

    def redact(self, text: str) -> str:
        """``text`` with this engine's key replaced (some proxies echo the Authorization header)."""
        return text.replace(self.api_key, "***") if len(self.api_key) >= 8 else text

    def _fatal(self, err: Exception) -> TeacherUnavailable | None:
        """The stop error for a failure no retry can fix, else None."""
        import openai

        if isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return TeacherUnavailable(
                f"--base-url {self.where}: the server refused the API key ({self.redact(_describe(err))}); "
                "set OPENAI_API_KEY or --api-key", "auth")
        connect = isinstance(err, openai.APIConnectionError) and not isinstance(err, openai.APITimeoutError)
        if connect and (not self._succeeded or self._cannot_connect >= self.options.fail_after):
            return TeacherUnavailable(f"--base-url {self.where}: cannot connect ({_cause(err)}); "
                                      "is the server running and the URL right?", "connection")
        return None

    def generate(self, requests: list[Request]) -> list[Result]:
        if self._stop is not None:
            raise self._stop
        results = asyncio.run(self._generate(requests))
        if self._stop is not None:
            raise self._stop
        return results

    async def _generate(self, requests: list[Request]) -> list[Result]:
        semaphore = asyncio.Semaphore(self.concurrency)
        lock = asyncio.Lock()
        async with self._client() as client:
            return list(await asyncio.gather(*(self._one(client, r, semaphore, lock) for r in requests)))

    async def _one(self, client, request: Request, semaphore: asyncio.Semaphore, lock: asyncio.Lock) -> Result:
        import openai

        max_tokens = request.max_tokens
        attempts = [0]
        async with semaphore:
            while True:
                try:
                    response = await self._attempts(client, request, max_tokens, lock, attempts)
                    self._succeeded, self._cannot_connect = True, 0
                    return self._result(request, response, attempts[0])
                except _Stopped:
                    return Result(request, error="not sent: the teacher is unavailable", attempts=attempts[0],
                                  error_kind=self._stop.kind if self._stop else "engine")
                except openai.BadRequestError as err:
                    if not is_context_length_error(err):
                        return self._failed(request, err, attempts[0])
                    smaller = shrink_max_tokens(str(err), max_tokens)
                    if smaller is None:
                        return Result(request, error=f"prompt too long for the context window: "
                                      f"{self.redact(_describe(err))}", attempts=attempts[0], error_kind="context_length")
                    max_tokens = smaller
                except openai.OpenAIError as err:
                    return self._failed(request, err, attempts[0])

    async def _attempts(self, client, request: Request, max_tokens: int, lock: asyncio.Lock, attempts: list[int]):
        """One request with the retry policy; raises ``_Stopped`` instead of sending once the engine stopped."""
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        async for attempt in AsyncRetrying(retry=retry_if_exception(self._retryable), wait=self._wait,
                                           stop=stop_after_attempt(self.options.max_retries + 1), reraise=True):
            with attempt:
                if self._stop is not None:
                    raise _Stopped
                attempts[0] += 1
                self.retries += attempts[0] > 1
                await self._pacer.wait(lock)
                if self._stop is not None:
                    raise _Stopped
                self.in_flight += 1
                try:
                    return await self._call(client, request, max_tokens)
                finally:
                    self.in_flight -= 1
        raise AssertionError("unreachable: tenacity reraises")

    def _retryable(self, err: BaseException) -> bool:
        if isinstance(err, Exception) and self._stop is None:
            self._stop = self._fatal(err)
        return self._stop is None and _retryable(err)

    def _failed(self, request: Request, err: Exception, attempts: int) -> Result:
        import openai

        connect = isinstance(err, openai.APIConnectionError) and not isinstance(err, openai.APITimeoutError)
        self._cannot_connect = self._cannot_connect + 1 if connect else 0
        if self._stop is None and connect:
            self._stop = self._fatal(err)
        return Result(request, error=self.redact(_describe(err)), attempts=attempts, error_kind=_kind(err))

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

        wait_max = self.options.retry_max_wait
        delay = wait_random_exponential(multiplier=self.options.retry_initial_wait, max=wait_max)(retry_state)
        err = retry_state.outcome.exception() if retry_state.outcome else None
        response = getattr(err, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), wait_max))
        return delay

    def describe(self) -> dict[str, Any]:
        import openai

        o = self.options
        return {"name": self.name, "model": self.model, "base_url": self.where, "concurrency": o.concurrency,
                "max_retries": o.max_retries, "timeout_s": o.timeout, "requests_per_minute": o.requests_per_minute,
                "openai": openai.__version__}

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


def _kind(err: Exception) -> str:
    """The failure kind of an OpenAI client error (see ``base.ERROR_KINDS``)."""
    import openai

    if isinstance(err, openai.APITimeoutError):
        return "timeout"
    if isinstance(err, openai.APIConnectionError):
        return "connection"
    if isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return "auth"
    if isinstance(err, openai.RateLimitError):
        return "rate_limit"
    if isinstance(err, openai.BadRequestError):
        return "bad_request"
    status = getattr(err, "status_code", None)
    return "server" if status is not None and status >= 500 else "engine"


def _cause(err: Exception) -> str:
    """The innermost cause of a connection error ("[Errno 111] Connection refused"), else the error."""
    inner: BaseException | None = err
    while inner is not None and inner.__cause__ is not None:
        inner = inner.__cause__
    return str(inner or err).strip() or type(err).__name__


class _Stopped(Exception):
    """Raised instead of sending a request once the engine has stopped."""
