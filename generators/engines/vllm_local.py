"""GPU engine: the in-process ``vllm.LLM``, batched, with prefix caching, ``n`` samples and per-request seeds.

The few-shot prefixes of Self-Instruct prompts are long and shared across requests, so
automatic prefix caching is on. Each request carries its own ``SamplingParams`` (seed
included), so a batch is reproducible request by request. Install with
``pip install 'curate[vllm]'``; it needs a CUDA GPU. Not exercised on the CPU-only CI.
"""

from __future__ import annotations

from typing import Any

from curate.errors import CurateError
from generators.engines.base import Completion, Request, Result


class VLLMEngine:
    name = "vllm"

    def __init__(self, model: str | None = None, gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 tensor_parallel_size: int = 1, seed: int = 0, **_: Any):
        try:
            import vllm
        except ImportError:
            raise CurateError("vLLM is not installed: install `curate[vllm]` to use --engine vllm "
                              "(it needs a CUDA GPU; use --engine cpu or --engine openai otherwise)") from None
        from generators.engines.base import has_cuda

        if not has_cuda():
            raise CurateError("--engine vllm needs a CUDA GPU and none is visible; use --engine cpu or --engine openai")
        if not model:
            raise CurateError("--engine vllm needs --teacher (a Hugging Face model id or a local folder)")
        self.model = model
        self._vllm_version = vllm.__version__
        options: dict[str, Any] = {"model": model, "enable_prefix_caching": True, "seed": seed,
                                   "gpu_memory_utilization": gpu_memory_utilization,
                                   "tensor_parallel_size": tensor_parallel_size}
        if max_model_len:
            options["max_model_len"] = max_model_len
        self._options = options
        self._llm = vllm.LLM(**options)

    def _params(self, request: Request):
        from vllm import SamplingParams

        return SamplingParams(n=request.n, max_tokens=request.max_tokens, temperature=request.temperature,
                              top_p=request.top_p if request.top_p > 0 else 1.0,
                              presence_penalty=request.presence_penalty, frequency_penalty=request.frequency_penalty,
                              stop=request.stop or None, seed=request.seed)

    def generate(self, requests: list[Request]) -> list[Result]:
        results: list[Result | None] = [None] * len(requests)
        for chat in (False, True):
            indices = [i for i, r in enumerate(requests) if r.chat == chat]
            if not indices:
                continue
            params = [self._params(requests[i]) for i in indices]
            try:
                if chat:
                    conversations = [[{"role": "user", "content": requests[i].prompt}] for i in indices]
                    outputs = self._llm.chat(conversations, params, use_tqdm=False)
                else:
                    outputs = self._llm.generate([requests[i].prompt for i in indices], params, use_tqdm=False)
            except (ValueError, RuntimeError) as err:  # e.g. a prompt longer than max_model_len
                for i in indices:
                    results[i] = Result(requests[i], error=f"vllm: {err}")
                continue
            for i, output in zip(indices, outputs, strict=True):
                completions = [Completion(o.text, o.finish_reason or "stop", len(o.token_ids)) for o in output.outputs]
                results[i] = Result(requests[i], completions, tokens_in=len(output.prompt_token_ids or []))
        return results  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "vllm": self._vllm_version,
                **{k: v for k, v in self._options.items() if k != "model"}}

    def close(self) -> None:
        pass
