"""The engine factory: options checked per engine before anything loads, --base-url implies openai,
capabilities on the engine class; and the vLLM engine's pure parts (finish reasons, vllm.LLM arguments),
which run without a GPU."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from curate.errors import CurateError
from generators.engines.base import Request, engine_options
from generators.engines.factory import check_engine, engine_class, make_engine, resolve_engine_name
from generators.engines.vllm_local import VLLMOptions, to_result


def test_base_url_implies_openai_only_under_auto():
    assert resolve_engine_name("auto", {"base_url": "http://127.0.0.1:8000/v1"}) == "openai"
    assert resolve_engine_name("cpu", {}) == "llamacpp"
    with pytest.raises(CurateError, match=r"^--base-url applies to --engine openai, not --engine cpu \(llamacpp\)$"):
        check_engine("cpu", {"base_url": "http://127.0.0.1:8000/v1"})


@pytest.mark.parametrize("engine, option, value, message", [
    ("cpu", "concurrency", 4, "--concurrency applies to --engine openai, not --engine cpu (llamacpp)"),
    ("openai", "gpu_memory_utilization", 0.5, "--gpu-memory-utilization applies to --engine vllm, not --engine openai"),
    ("llamacpp", "requests_per_minute", 10, "--rpm applies to --engine openai, not --engine llamacpp"),
    ("transformers", "max_model_len", 10, "--max-model-len applies to --engine vllm, not --engine transformers"),
    ("vllm", "n_ctx", 10, "--n-ctx applies to --engine llamacpp, not --engine vllm"),
])
def test_an_option_of_another_engine_names_the_flag_and_both_engines(engine, option, value, message):
    with pytest.raises(CurateError) as err:
        make_engine(engine, None, **{option: value})
    assert str(err.value) == message


def test_options_of_no_engine_and_none_values():
    with pytest.raises(CurateError, match=r"^--frobnicate is not an option of --engine openai \(its options: "):
        make_engine("openai", "m", frobnicate=1)
    assert check_engine("cpu", {"concurrency": None}) == "llamacpp"  # flags not given are None


def test_completion_capability_is_a_class_attribute():
    assert engine_class("openai").supports_completions is False
    assert all(engine_class(name).supports_completions for name in ("llamacpp", "transformers", "vllm"))


def test_vllm_options_reach_the_llm_arguments():
    options = engine_options(VLLMOptions, "vllm", {"max_model_len": 2048, "enforce_eager": True,
                                                   "llm_kwargs": {"kv_cache_dtype": "fp8"}})
    args = options.llm_args("org/model")
    assert args["max_model_len"] == 2048 and args["enforce_eager"] and args["kv_cache_dtype"] == "fp8"
    assert "max_num_seqs" not in args  # not given: vLLM's own default


def output(*samples, prompt_tokens=5):
    return SimpleNamespace(prompt_token_ids=list(range(prompt_tokens)), outputs=[
        SimpleNamespace(text=text, finish_reason=reason, token_ids=[1] * len(text.split())) for text, reason in samples])


def test_vllm_finish_reasons_other_than_stop_and_length_are_failures():
    request = Request(prompt="p", max_tokens=8, n=2)
    ok = to_result(request, output(("a b", "stop"), ("c", "length")))
    assert ok.ok and [c.finish_reason for c in ok.completions] == ["stop", "length"] and ok.tokens_in == 5
    partial = to_result(request, output(("a b", "stop"), ("half", "abort")))
    assert partial.ok and [c.text for c in partial.completions] == ["a b"]
    for reason in ("abort", "error", "repetition"):
        failed = to_result(request, output(("partial text", reason), ("more", reason)))
        assert not failed.ok and reason in failed.error and failed.error_kind == "incomplete"
