"""IFD, its perplexity variant and response perplexity from one pass of a small local causal LM.

Instruction-Following Difficulty compares how hard the response is for the model with and
without the instruction. Two published forms, both stored:

* ``ifd`` = L(A|Q) / L(A): the ratio of mean token cross-entropies, the definition written in
  the Cherry LLM paper (Li et al., "From Quantity to Quality", NAACL 2024, the ``s_θ`` ratio).
* ``ifd_ppl`` = PPL(A|Q) / PPL(A) = exp(L(A|Q) - L(A)): the perplexity ratio as the Superfiltering
  paper writes it (Li et al., "Superfiltering", ACL 2024). Same side of 1 as ``ifd`` (above 1:
  the prompt does not help), but it ranks by the loss *difference*, so the orders differ.
* ``perplexity`` = exp(L(A|Q)): the response's perplexity given its prompt.

How the losses are taken (every choice recorded in ``meta.scoring``):

* Everything is rendered through the model's own chat template (:mod:`curate.lm.render`, the
  code training uses), and only assistant tokens are scored: the reply and its end-of-turn
  token, as training sees them.
* L(A|Q): the whole conversation in one sequence; each assistant token is predicted from
  everything before it (system prompt, earlier user and assistant turns, its own prompt).
* L(A): each assistant turn alone, as a conversation whose user turn is empty. The template's
  own headers (and default system prompt, if it has one) stay, so the ratio isolates what the
  *content* of the prompt and history does, and it works with templates that insist on
  user/assistant alternation.
* Multi-turn: token-weighted over all assistant turns, L(A|Q) is the mean loss over every
  assistant token given its history and L(A) the mean over the same turns each alone; a
  single-turn record reduces to the usual definition.
* A conversation longer than ``max_length`` tokens is an error for that row (the errors file
  says so), never silently truncated: cutting would score a different set of tokens with and
  without the prompt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from curate.scoring.base import SCORER_VERSION, Result, config_key, failed, ok, response_turns

ALONE_RULE = "each assistant turn after an empty user turn, through the chat template"
AGGREGATION = "token-weighted mean loss over all assistant turns"


@dataclass
class LMConfig:
    """The local model behind ``ifd``, ``ifd_ppl`` and ``perplexity``."""

    model: str = field(default="bundled", metadata={"help": "bundled (SmolLM2-135M-Instruct), a model folder or hub id"})
    batch_size: int = field(default=16, metadata={"help": "sequences per forward pass"})
    max_batch_tokens: int = field(default=16384, metadata={"help": "tokens per forward pass, padding included"})
    max_length: int = field(default=2048, metadata={"help": "longer conversations go to the errors file"})
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16"})
    device: str = field(default="auto", metadata={"help": "auto (cuda when present) | cpu | cuda | cuda:N"})

    def settings(self) -> dict[str, Any]:
        """What changes the numbers (batching does not, beyond float rounding)."""
        return {"model": self.model, "max_length": self.max_length, "dtype": self.dtype}


def load_lm(name: str, dtype: str = "float32", device: str = "auto") -> tuple[Any, Any]:
    """A causal LM in eval mode and its tokenizer: ``bundled`` or a local folder / cached hub id."""
    import torch

    from curate.errors import CurateError

    if name == "bundled":
        from curate.records.model import load_bundled_hf

        model, tokenizer = load_bundled_hf(dtype)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModelForCausalLM.from_pretrained(name, dtype=getattr(torch, dtype))
        except (OSError, ValueError) as err:
            raise CurateError(f"--model {name}: cannot load a causal LM ({str(err).splitlines()[0]})") from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    model.eval()
    return model, tokenizer


class LMScorer:
    """``ifd``, ``ifd_ppl`` and ``perplexity`` for a batch of records (one model, loaded once)."""

    group = "lm"

    def __init__(self, config: LMConfig | None = None, model: Any = None, tokenizer: Any = None,
                 padding_side: str = "right"):
        from curate.lm.render import end_of_turn_token, template_hash

        self.config = config or LMConfig()
        if model is None or tokenizer is None:
            model, tokenizer = load_lm(self.config.model, self.config.dtype, self.config.device)
        self.model, self.tokenizer = model, tokenizer
        self.padding_side = padding_side
        self.eot = end_of_turn_token(tokenizer)
        self.template = template_hash(tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else tokenizer.convert_tokens_to_ids(self.eot)

    def key(self) -> str:
        return config_key(self.group, self.config.settings())

    def describe(self) -> dict[str, Any]:
        return {"scorer": "lm", "model": self.config.model, "template": self.template, "end_of_turn": self.eot,
                "max_length": self.config.max_length, "dtype": self.config.dtype, "alone": ALONE_RULE,
                "aggregation": AGGREGATION, "version": SCORER_VERSION}

    def _sequences(self, record: Mapping[str, Any]) -> tuple[Any, list[Any]] | str:
        """The conditioned sequence and one sequence per assistant turn alone, or why the row cannot be scored."""
        from curate.errors import CurateError
        from curate.lm.render import render_record

        try:
            full = render_record(self.tokenizer, record, self.eot)
            alone = [render_record(self.tokenizer, {"id": record.get("id", "?"), "messages": [
                {"role": "user", "content": ""}, record["messages"][i]]}, self.eot) for i in response_turns(record)]
        except CurateError as err:
            return str(err)
        longest = max([len(full.input_ids)] + [len(s.input_ids) for s in alone])
        if longest > self.config.max_length:
            return f"conversation is {longest} tokens, above max_length {self.config.max_length}"
        if full.trainable == 0 or any(s.trainable == 0 for s in alone):
            return "no assistant token to score (empty reply or a template that drops it)"
        return full, alone

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> list[Result]:
        from curate.lm.nll import token_nll

        prepared = [self._sequences(record) for record in batch]
        flat: list[Any] = []
        for item in prepared:
            if not isinstance(item, str):
                flat.append(item[0])
                flat.extend(item[1])
        losses = token_nll(self.model, flat, pad_id=self.pad_id, batch_size=self.config.batch_size,
                           max_batch_tokens=self.config.max_batch_tokens, padding_side=self.padding_side)
        results, at = [], 0
        for item in prepared:
            if isinstance(item, str):
                results.append(failed(item))
                continue
            cond, alone = losses[at], losses[at + 1: at + 1 + len(item[1])]
            at += 1 + len(item[1])
            results.append(ifd_result(cond.nll, cond.tokens, sum(a.nll for a in alone), sum(a.tokens for a in alone)))
        return results


def ifd_result(cond_sum: float, cond_tokens: int, alone_sum: float, alone_tokens: int) -> Result:
    """The three scores from summed losses with and without the prompt."""
    cond, alone = cond_sum / cond_tokens, alone_sum / alone_tokens
    if alone <= 0.0:
        return failed("the response alone has zero loss; IFD is undefined")
    return ok({"ifd": cond / alone, "ifd_ppl": math.exp(cond - alone), "perplexity": math.exp(cond)})
