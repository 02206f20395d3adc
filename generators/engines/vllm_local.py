"""GPU engine: the in-process ``vllm.LLM``, batched, with prefix caching, ``n`` samples and per-request seeds.

The few-shot prefixes of Self-Instruct prompts are long and shared across requests, so
automatic prefix caching is on. Each request carries its own ``SamplingParams`` (seed
included). Install with ``pip install 'curate[vllm]'``; it needs a CUDA GPU. Written against
the vLLM documentation and not exercised on the CPU-only CI.

What it guarantees (and what it does not):

- Reproducibility: a per-request seed fixes the sampling, but vLLM's kernels give results
  that depend on which other requests share the batch, so a rerun with other batching can
  differ. ``batch_invariant=True`` sets ``VLLM_BATCH_INVARIANT=1`` before vLLM loads (vLLM's
  batch-invariance mode: beta, NVIDIA compute capability 8.0+ per its docs, slower), which
  makes a request's output independent of its batch. Off by default; the manifest records it.
- Finish reasons: only ``stop`` and ``length`` are completions. ``abort``, ``error``,
  ``repetition`` or anything else is a failed sample; a request with no good sample fails.
- Over-long prompts: vLLM rejects a whole ``generate`` call when one prompt does not fit
  ``max_model_len``, so each prompt is measured with the model's tokenizer first; a prompt
  that does not fit fails alone, and ``max_tokens`` is shrunk to what fits the window.
- ``close()`` shuts the engine down and frees the GPU (vLLM's ``cleanup_dist_env_and_memory``),
  so a second engine in the same process finds the memory free.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from curate.errors import CurateError
from generators.engines.base import Completion, Request, Result, engine_options

GOOD_FINISH = ("stop", "length")


@dataclass
class VLLMOptions:
    """Options of ``--engine vllm``: the ``vllm.LLM`` settings; ``llm_kwargs`` passes any other one (YAML)."""

    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "share of GPU memory vLLM may take"})
    max_model_len: int | None = field(default=None, metadata={"help": "context window [default: the model's]"})
    tensor_parallel_size: int = field(default=1, metadata={"help": "GPUs to shard the model over"})
    dtype: str = field(default="auto", metadata={"help": "weights dtype"})
    max_num_seqs: int | None = field(default=None, metadata={"help": "sequences in one vLLM batch"})
    enforce_eager: bool = field(default=False, metadata={"help": "no CUDA graphs (less memory, slower)"})
    quantization: str | None = None
    seed: int = 0
    batch_invariant: bool = field(default=False, metadata={"help": "VLLM_BATCH_INVARIANT=1: outputs independent "
                                                                  "of batching (beta, slower)"})
    llm_kwargs: dict[str, Any] = field(default_factory=dict)

    def llm_args(self, model: str) -> dict[str, Any]:
        args: dict[str, Any] = {"model": model, "enable_prefix_caching": True, "seed": self.seed, "dtype": self.dtype,
                                "gpu_memory_utilization": self.gpu_memory_utilization,
                                "tensor_parallel_size": self.tensor_parallel_size, "enforce_eager": self.enforce_eager}
        for key in ("max_model_len", "max_num_seqs", "quantization"):
            if getattr(self, key) is not None:
                args[key] = getattr(self, key)
        return {**args, **self.llm_kwargs}


class VLLMEngine:
    name = "vllm"
    supports_completions = True
    Options = VLLMOptions

    def __init__(self, model: str | None = None, options: VLLMOptions | None = None, **values: Any):
        self.options = options or engine_options(VLLMOptions, self.name, values)
        if self.options.batch_invariant:
            os.environ["VLLM_BATCH_INVARIANT"] = "1"  # read when vLLM builds its kernels: set before import
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
        self._args = self.options.llm_args(model)
        self._llm = vllm.LLM(**self._args)
        self._tokenizer = self._llm.get_tokenizer()
        self.max_model_len = int(self._llm.llm_engine.model_config.max_model_len)

    def _prompt_tokens(self, request: Request) -> int:
        if request.chat:
            ids = self._tokenizer.apply_chat_template([{"role": "user", "content": request.prompt}],
                                                      tokenize=True, add_generation_prompt=True)
            return len(ids)
        return len(self._tokenizer.encode(request.prompt))

    def _params(self, request: Request, prompt_tokens: int):
        from vllm import SamplingParams

        max_tokens = min(request.max_tokens, self.max_model_len - prompt_tokens)
        return SamplingParams(n=request.n, max_tokens=max_tokens, temperature=request.temperature,
                              top_p=request.top_p if request.top_p > 0 else 1.0,
                              presence_penalty=request.presence_penalty, frequency_penalty=request.frequency_penalty,
                              stop=request.stop or None, seed=request.seed)

    def generate(self, requests: list[Request]) -> list[Result]:
        results: list[Result | None] = [None] * len(requests)
        lengths = [self._prompt_tokens(r) for r in requests]
        for i, (request, tokens) in enumerate(zip(requests, lengths, strict=True)):
            if tokens >= self.max_model_len:  # vLLM would abort every request of the call
                results[i] = Result(request, tokens_in=tokens, error_kind="context_length",
                                    error=f"prompt of {tokens} tokens does not fit max_model_len {self.max_model_len}")
        for chat in (False, True):
            indices = [i for i, r in enumerate(requests) if r.chat == chat and results[i] is None]
            if indices:
                self._run(requests, indices, [lengths[i] for i in indices], chat, results)
        return results  # type: ignore[return-value]

    def _run(self, requests: list[Request], indices: list[int], lengths: list[int], chat: bool,
             results: list[Result | None]) -> None:
        params = [self._params(requests[i], n) for i, n in zip(indices, lengths, strict=True)]
        try:
            if chat:
                conversations = [[{"role": "user", "content": requests[i].prompt}] for i in indices]
                outputs = self._llm.chat(conversations, params, use_tqdm=False)
            else:
                outputs = self._llm.generate([requests[i].prompt for i in indices], params, use_tqdm=False)
        except (ValueError, RuntimeError) as err:
            for i in indices:
                results[i] = Result(requests[i], error=f"vllm: {err}", error_kind="engine")
            return
        for i, output in zip(indices, outputs, strict=True):
            results[i] = to_result(requests[i], output)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "vllm": self._vllm_version,
                "batch_invariant": self.options.batch_invariant,
                **{k: v for k, v in self._args.items() if k != "model"}}

    def close(self) -> None:
        """Shut vLLM down and give the GPU memory back, as vLLM's own tests do between engines."""
        import gc

        llm, self._llm = getattr(self, "_llm", None), None
        if llm is None:
            return
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            with contextlib.suppress(Exception):
                engine_core.shutdown()
        del llm
        gc.collect()
        with contextlib.suppress(ImportError):
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def to_result(request: Request, output: Any) -> Result:
    """A vLLM ``RequestOutput`` as a Result: samples that did not end by ``stop``/``length`` are failures."""
    tokens_in = len(output.prompt_token_ids or [])
    good = [o for o in output.outputs if (o.finish_reason or "stop") in GOOD_FINISH]
    bad = sorted({str(o.finish_reason) for o in output.outputs} - set(GOOD_FINISH))
    completions = [Completion(o.text, o.finish_reason or "stop", len(o.token_ids)) for o in good]
    if not completions:
        return Result(request, tokens_in=tokens_in, error_kind="incomplete",
                      error=f"vllm: generation ended with finish_reason {', '.join(bad)}")
    return Result(request, completions, tokens_in=tokens_in)
