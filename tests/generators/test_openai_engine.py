"""The openai engine against a scripted OpenAI-compatible HTTP server on 127.0.0.1:
retries with backoff on 429/5xx/timeouts, Retry-After, context-length shrinking,
concurrency limit, requests-per-minute pacing, permanent failures as error results."""

from __future__ import annotations

import time

import pytest

from generators.engines.base import Request
from generators.engines.openai_server import OpenAIEngine, shrink_max_tokens


def engine_for(server, **options) -> OpenAIEngine:
    defaults = {"retry_initial_wait": 0.01, "retry_max_wait": 0.05, "max_retries": 4, "timeout": 5.0}
    return OpenAIEngine(model="scripted-model", base_url=server.base_url, api_key="test", **{**defaults, **options})


def request(**kw) -> Request:
    return Request(**{"prompt": "Say hi", "max_tokens": 50, "id": "r", **kw})


def test_chat_and_completion_requests_carry_the_sampling_params(scripted_server):
    scripted_server.default_text = "hello"
    engine = engine_for(scripted_server)
    chat, completion = engine.generate([
        request(temperature=0.7, top_p=0.5, presence_penalty=2.0, stop=["\n16", "16."], seed=7),
        request(chat=False, stop=["a", "b", "c", "d", "e"]),
    ])
    assert chat.ok and chat.completions[0].text == "hello" and chat.tokens_in == 11 and chat.tokens_out == 7
    assert completion.ok and completion.completions[0].finish_reason == "stop"
    # the two requests run concurrently and arrive in either order: tell them apart by content
    first = next(b for b in scripted_server.bodies if "messages" in b)
    second = next(b for b in scripted_server.bodies if "prompt" in b)
    assert len(scripted_server.bodies) == 2
    assert first["messages"] == [{"role": "user", "content": "Say hi"}]
    assert (first["temperature"], first["top_p"], first["presence_penalty"], first["seed"]) == (0.7, 0.5, 2.0, 7)
    assert first["stop"] == ["\n16", "16."] and first["model"] == "scripted-model"
    assert second["prompt"] == "Say hi" and second["stop"] == ["a", "b", "c", "d"]  # the API takes four at most


def test_429_and_5xx_are_retried_then_succeed(scripted_server):
    scripted_server.actions.extend([{"status": 429, "error": "slow down"}, {"status": 503}, {"status": 500}])
    result = engine_for(scripted_server).generate([request()])[0]
    assert result.ok and result.attempts == 4 and len(scripted_server.bodies) == 4


def test_retry_after_header_is_honoured(scripted_server):
    scripted_server.actions.append({"status": 429, "headers": {"Retry-After": "0.4"}})
    start = time.monotonic()
    result = engine_for(scripted_server, retry_max_wait=1.0).generate([request()])[0]
    assert result.ok and time.monotonic() - start >= 0.4


def test_timeouts_are_retried(scripted_server):
    scripted_server.actions.append({"delay": 1.5})
    result = engine_for(scripted_server, timeout=0.5).generate([request()])[0]
    assert result.ok and result.attempts == 2


def test_retries_exhausted_becomes_an_error_result(scripted_server):
    scripted_server.actions.extend([{"status": 502}] * 3)
    result = engine_for(scripted_server, max_retries=2).generate([request(id="b0-x")])[0]
    assert not result.ok and "502" in result.error and result.attempts == 3


def test_bad_request_is_not_retried(scripted_server):
    scripted_server.actions.append({"status": 400, "error": "unknown parameter foo"})
    result = engine_for(scripted_server).generate([request()])[0]
    assert not result.ok and "unknown parameter foo" in result.error and len(scripted_server.bodies) == 1


def test_context_length_error_shrinks_max_tokens(scripted_server):
    scripted_server.actions.append({"status": 400, "error": (
        "This model's maximum context length is 2048 tokens. However, you requested 3000 tokens "
        "(1000 in the messages, 2000 in the completion). Please reduce the length of the messages or completion.")})
    result = engine_for(scripted_server).generate([request(max_tokens=2000)])[0]
    assert result.ok
    assert [b["max_tokens"] for b in scripted_server.bodies] == [2000, 1047]


def test_prompt_alone_too_long_is_an_error_result(scripted_server):
    scripted_server.actions.append({"status": 400, "error": (
        "This model's maximum context length is 2048 tokens. However, you requested 5000 tokens "
        "(4990 in the messages, 10 in the completion).")})
    result = engine_for(scripted_server).generate([request(max_tokens=10)])[0]
    assert not result.ok and "prompt too long" in result.error


@pytest.mark.parametrize("message, max_tokens, expected", [
    ("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
     "(1000 in the messages, 4000 in the completion).", 4000, 3095),
    ("This model's maximum context length is 4096 tokens, however you requested 5000 tokens "
     "(1000 in your prompt; 4000 for the completion).", 4000, 3095),
    ("'max_tokens' or 'max_completion_tokens' is too large: 4000. This model's maximum context length is 2048 "
     "tokens and your request has 100 input tokens (4000 > 2048 - 100).", 4000, 1947),
    ("This model's maximum context length is 2,048 tokens. However, you requested 2,500 tokens.", 1000, 547),
    ("context too long, shorten it", 1000, 500),
    ("This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", 100, None),
])
def test_shrink_max_tokens_messages(message, max_tokens, expected):
    assert shrink_max_tokens(message, max_tokens) == expected


def test_concurrency_limit(scripted_server):
    scripted_server.actions.extend([{"delay": 0.3}] * 6)
    results = engine_for(scripted_server, concurrency=2).generate([request(id=str(i)) for i in range(6)])
    assert all(r.ok for r in results) and [r.request.id for r in results] == [str(i) for i in range(6)]
    assert scripted_server.max_in_flight == 2


def test_requests_per_minute_pacing(scripted_server):
    engine = engine_for(scripted_server, requests_per_minute=300)  # one start every 0.2 s
    engine.generate([request(id=str(i)) for i in range(4)])
    gaps = [b - a for a, b in zip(scripted_server.times, scripted_server.times[1:], strict=False)]
    assert all(gap >= 0.15 for gap in gaps), gaps


def test_model_defaults_to_the_only_served_one(scripted_server):
    engine = OpenAIEngine(base_url=scripted_server.base_url, api_key="test")
    assert engine.model == "scripted-model"
    assert engine.describe()["base_url"] == scripted_server.base_url


def test_unreachable_server_without_model_is_a_clear_error():
    from curate.errors import CurateError

    start = time.monotonic()
    with pytest.raises(CurateError, match=r"^--base-url http://127.0.0.1:9/v1: cannot connect \(.*refused"):
        OpenAIEngine(base_url="http://127.0.0.1:9/v1", api_key="test")
    assert time.monotonic() - start < 10


def test_refused_key_stops_the_engine_after_the_requests_in_flight(scripted_server):
    from generators.engines.base import TeacherUnavailable

    scripted_server.actions.extend([{"status": 401, "error": "Incorrect API key provided: sk-test-abcdefghijkl"}] * 20)
    engine = OpenAIEngine(model="scripted-model", base_url=scripted_server.base_url, api_key="sk-test-abcdefghijkl",
                          concurrency=2, max_retries=4, retry_initial_wait=0.01)
    with pytest.raises(TeacherUnavailable, match="refused the API key") as err:
        engine.generate([request(id=str(i)) for i in range(10)])
    assert err.value.kind == "auth" and "sk-test-abcdefghijkl" not in str(err.value)
    assert len(scripted_server.bodies) <= 2  # the two in flight; the other eight were never sent, none retried
    with pytest.raises(TeacherUnavailable):
        engine.generate([request()])
    assert len(scripted_server.bodies) <= 2


def test_a_server_that_goes_away_after_answering_is_retried_then_given_up(scripted_server):
    from generators.engines.base import TeacherUnavailable

    engine = engine_for(scripted_server, max_retries=1, fail_after=2)
    assert engine.generate([request()])[0].ok
    scripted_server.close()
    lost = engine.generate([request()])[0]  # seen alive before: a transient failure, not a stop
    assert not lost.ok and lost.error_kind == "connection" and lost.attempts == 2
    with pytest.raises(TeacherUnavailable, match="cannot connect"):
        engine.generate([request(id=str(i)) for i in range(3)])


def test_error_kinds_name_the_cause(scripted_server):
    scripted_server.actions.extend([{"status": 429}, {"status": 503}, {"status": 400, "error": "bad"}])
    engine = engine_for(scripted_server, max_retries=0, concurrency=1)
    kinds = [r.error_kind for r in engine.generate([request(id=str(i)) for i in range(3)])]
    assert kinds == ["rate_limit", "server", "bad_request"]
