"""``length``: the response's length in tokens of a named tokenizer (not characters / 4).

All assistant turns are counted, each tokenized on its own without special tokens, so the
number is the text's length whatever the chat template adds around it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from curate.scoring.base import SCORER_VERSION, Result, config_key, ok


@dataclass
class LengthConfig:
    tokenizer: str = field(default="bundled", metadata={"help": "bundled (SmolLM2's), a tokenizer folder or hub id"})

    def settings(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer}


def load_tokenizer(name: str) -> Any:
    from curate.errors import CurateError

    if name == "bundled":
        from transformers import AutoTokenizer

        from curate.records.model import bundled_gguf

        path = bundled_gguf()
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise CurateError(f"--tokenizer {name}: cannot load a tokenizer ({str(err).splitlines()[0]})") from None


class LengthScorer:
    group = "length"

    def __init__(self, config: LengthConfig | None = None, tokenizer: Any = None):
        self.config = config or LengthConfig()
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(self.config.tokenizer)

    def key(self) -> str:
        return config_key(self.group, self.config.settings())

    def describe(self) -> dict[str, Any]:
        return {"scorer": "length", "tokenizer": self.config.tokenizer, "vocab_size": len(self.tokenizer),
                "counts": "tokens of every assistant turn, no special tokens", "version": SCORER_VERSION}

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> list[Result]:
        texts, owner = [], []
        for index, record in enumerate(batch):
            for message in record["messages"]:
                if message["role"] == "assistant":
                    texts.append(message["content"])
                    owner.append(index)
        counts = [0] * len(batch)
        if texts:
            encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            for index, ids in zip(owner, encoded, strict=True):
                counts[index] += len(ids)
        return [ok({"length": n}) for n in counts]
