"""CPU/GPU engine: batched ``transformers`` generate, by default on the bundled SmolLM2 (de-quantized).

All requests of a batch that share sampling parameters are padded on the left and
generated together. Kept as the measured alternative to llama.cpp on CPU
(``bench/bench_engines.py``) and for models that have no GGUF. Presence/frequency
penalties have no exact transformers equivalent and are ignored (recorded in describe()).
A batch shares one random generator, seeded from its first request's seed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from curate.errors import CurateError
from curate.records.model import BUNDLED_NAME, load_bundled_hf
from generators.engines.base import Completion, Request, Result, cut_at_stop, engine_options


@dataclass
class TransformersOptions:
    """Options of ``--engine transformers``."""

    batch_size: int = field(default=8, metadata={"help": "requests generated together"})
    dtype: str = field(default="float32", metadata={"help": "weights dtype (float32, bfloat16, ...)"})
    device: str | None = field(default=None, metadata={"help": "cuda or cpu [default: cuda when present]"})


class _StopOnStrings:
    """Stops a row once its decoded continuation contains a stop string (transformers' own
    ``stop_strings`` precomputes tables over the whole vocabulary and fails on some tokenizers)."""

    def __init__(self, tokenizer, stops: list[str], prompt_len: int):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, stops, prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], device=input_ids.device)


class TransformersEngine:
    name = "transformers"
    supports_completions = True
    Options = TransformersOptions

    def __init__(self, model: str | None = None, options: TransformersOptions | None = None, **values: Any):
        import torch

        options = options or engine_options(TransformersOptions, self.name, values)
        batch_size, dtype, device = options.batch_size, options.dtype, options.device
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if model is None:
            self._model, self._tokenizer = load_bundled_hf(dtype)
            self.model = BUNDLED_NAME
        else:
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(model)
                self._model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
            except OSError as err:
                raise CurateError(f"--teacher: cannot load {model!r} with transformers ({err})") from None
            self.model = model
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model.to(self.device).eval()
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self.batch_size = batch_size

    def _text(self, request: Request) -> str:
        if not request.chat:
            return request.prompt
        return self._tokenizer.apply_chat_template(
            [{"role": "user", "content": request.prompt}], tokenize=False, add_generation_prompt=True)

    def generate(self, requests: list[Request]) -> list[Result]:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[(r.max_tokens, r.temperature, r.top_p, tuple(r.stop), r.n, r.chat)].append(i)
        results: list[Result | None] = [None] * len(requests)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                try:
                    for i, result in zip(chunk, self._batch([requests[i] for i in chunk]), strict=True):
                        results[i] = result
                except (RuntimeError, ValueError) as err:
                    for i in chunk:
                        results[i] = Result(requests[i], error=f"transformers: {err}", error_kind="engine")
        return results  # type: ignore[return-value]

    def _batch(self, batch: list[Request]) -> list[Result]:
        import torch

        first = batch[0]
        encoded = self._tokenizer([self._text(r) for r in batch], return_tensors="pt", padding=True,
                                  add_special_tokens=False).to(self.device)
        sample = first.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": first.max_tokens, "do_sample": sample,
                                  "num_return_sequences": first.n, "pad_token_id": self._tokenizer.pad_token_id}
        if sample:
            kwargs.update(temperature=first.temperature, top_p=first.top_p or 1.0, top_k=0)
            if first.seed is not None:
                torch.manual_seed(first.seed)
        if first.stop:
            kwargs["stopping_criteria"] = [_StopOnStrings(self._tokenizer, first.stop, encoded["input_ids"].shape[1])]
        with torch.inference_mode():
            output = self._model.generate(**encoded, **kwargs)
        prompt_len = encoded["input_ids"].shape[1]
        eos = self._tokenizer.eos_token_id
        results = []
        for k, request in enumerate(batch):
            tokens_in = int(encoded["attention_mask"][k].sum())
            completions = []
            for j in range(first.n):
                new = output[k * first.n + j, prompt_len:].tolist()
                while new and new[-1] == self._tokenizer.pad_token_id and self._tokenizer.pad_token_id != eos:
                    new.pop()
                ended = eos in new
                if ended:
                    new = new[: new.index(eos)]
                text, stopped = cut_at_stop(self._tokenizer.decode(new, skip_special_tokens=True), request.stop)
                finish = "stop" if ended or stopped or len(new) < first.max_tokens else "length"
                completions.append(Completion(text, finish, len(new)))
            results.append(Result(request, completions, tokens_in=tokens_in))
        return results

    def describe(self) -> dict[str, Any]:
        import transformers

        return {"name": self.name, "model": self.model, "device": self.device, "batch_size": self.batch_size,
                "transformers": transformers.__version__, "ignored": ["presence_penalty", "frequency_penalty"]}

    def close(self) -> None:
        """Drop the model so a second engine in this process finds the memory free."""
        import gc

        import torch

        self._model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
