"""CPU engine: llama.cpp (``llama_cpp.Llama``) on a GGUF file, by default the bundled SmolLM2-135M-Instruct.

Requests run one after another in one process; llama.cpp keeps the KV cache of the
previous prompt and reuses its longest common prefix, so consecutive requests that share
a few-shot prefix (the classification and instance prompts) skip most prompt processing.
This is the CPU default because it measured fastest (``bench/bench_engines.py``).
llama.cpp's own sampler defaults stay (top-k 40, min-p 0.05): sampling over the whole
49k vocabulary measured 2x slower on CPU. ``n_threads`` defaults to half the cores, as
llama-cpp-python does; on a busy machine more threads than idle cores is much slower.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.records.model import BUNDLED_NAME, bundled_gguf
from generators.engines.base import Completion, Request, Result, engine_options


@dataclass
class LlamaCppOptions:
    """Options of ``--engine llamacpp`` (``cpu``)."""

    n_ctx: int = field(default=4096, metadata={"help": "context window in tokens"})
    n_threads: int | None = field(default=None, metadata={"help": "CPU threads [default: half the cores]"})
    verbose: bool = False


class LlamaCppEngine:
    name = "llamacpp"
    supports_completions = True
    Options = LlamaCppOptions

    def __init__(self, model: str | None = None, options: LlamaCppOptions | None = None, **values: Any):
        options = options or engine_options(LlamaCppOptions, self.name, values)
        n_ctx, n_threads, verbose = options.n_ctx, options.n_threads, options.verbose
        try:
            from llama_cpp import Llama
        except ImportError:
            raise CurateError("llama-cpp-python is not installed: `pip install llama-cpp-python` (or `make setup`)") from None
        path = Path(model) if model else bundled_gguf()
        if not path.is_file():
            raise CurateError(f"--teacher: {path} is not a GGUF file (the llamacpp engine loads a local .gguf)")
        self.model = BUNDLED_NAME if model is None else path.name
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max((os.cpu_count() or 2) // 2, 1)
        self._llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=self.n_threads,
                          n_threads_batch=self.n_threads, verbose=verbose)

    def _one(self, request: Request) -> Result:
        kwargs = {
            "max_tokens": request.max_tokens, "temperature": request.temperature, "top_p": request.top_p,
            "presence_penalty": request.presence_penalty, "frequency_penalty": request.frequency_penalty,
            "stop": request.stop or None, "seed": request.seed, "repeat_penalty": 1.0,
        }
        completions, tokens_in = [], 0
        try:
            for k in range(request.n):
                if request.seed is not None:
                    kwargs["seed"] = request.seed + k
                if request.chat:
                    response = self._llm.create_chat_completion(
                        messages=[{"role": "user", "content": request.prompt}], **kwargs)
                    text = response["choices"][0]["message"]["content"] or ""
                else:
                    response = self._llm.create_completion(request.prompt, **kwargs)
                    text = response["choices"][0]["text"]
                usage = response["usage"]
                tokens_in = usage["prompt_tokens"]
                completions.append(Completion(text, response["choices"][0]["finish_reason"] or "stop",
                                              usage["completion_tokens"]))
        except (ValueError, RuntimeError) as err:  # e.g. the prompt does not fit the context window
            return Result(request, error=f"llama.cpp: {err}", error_kind="context_length"
                          if "context" in str(err) else "engine")
        return Result(request, completions, tokens_in=tokens_in)

    def generate(self, requests: list[Request]) -> list[Result]:
        return [self._one(r) for r in requests]

    def describe(self) -> dict[str, Any]:
        import llama_cpp

        return {"name": self.name, "model": self.model, "path": str(self.path), "n_ctx": self.n_ctx,
                "n_threads": self.n_threads, "llama_cpp_python": llama_cpp.__version__}

    def close(self) -> None:
        self._llm.close() if hasattr(self._llm, "close") else None
