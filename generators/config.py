"""The generation config: one dataclass, two presets (``self-instruct``, ``alpaca``).

Defaults are the published values (yizhongw/self-instruct; tatsu-lab/stanford_alpaca).
Loaded by the one config loader (:mod:`curate.config`): preset defaults <- ``--config x.yaml``
(fields by name, sampling blocks by sub-field) <- command-line flags. The teacher is part of
it: ``engine``, ``teacher`` and ``engine_options`` (the chosen engine's own options, e.g.
``gpu_memory_utilization`` for vllm or ``concurrency`` for openai; checked by
``generators.engines.factory``). ``GenerateConfig.to_dict()`` is what the manifest records,
with any API key masked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.config import build, given, read_yaml
from curate.errors import CurateError
from generators.instruction_rules import ALPACA_BLACKLIST, SELF_INSTRUCT_BLACKLIST

PRESETS = ("self-instruct", "alpaca")


@dataclass
class Sampling:
    """Decoding parameters for one kind of request."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: list[str] = field(default_factory=list)


@dataclass
class GenerateConfig:
    preset: str = field(default="self-instruct", metadata={"help": "self-instruct or alpaca"})
    engine: str = field(default="auto", metadata={"help": "auto, cpu, llamacpp, transformers, openai or vllm"})
    teacher: str | None = field(default=None, metadata={"help": "model: served name, HF id/folder or GGUF"})
    engine_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the engine's own options"})
    num_instructions: int = field(default=100, metadata={"help": "stop once this many new instructions are accepted"})
    seed: int = field(default=42, metadata={"help": "seeds the choice of in-context examples and the teacher's sampling"})
    prompt_style: str = field(default="auto", metadata={"help": "chat, completion, or auto (chat for the openai engine)"})
    request_batch_size: int = field(default=5, metadata={"help": "instruction-generation requests per batch"})
    num_prompt_instructions: int = field(default=8, metadata={"help": "in-context instructions per request"})
    num_machine_instructions: int = field(default=2, metadata={"help": "of those, machine-generated ones (seeds fill in)"})
    max_list_number: int = field(default=15, metadata={"help": "parse list items up to this number"})
    tasks_per_request: int = field(default=20, metadata={"help": "alpaca: tasks asked for per request"})
    novelty_threshold: float = field(default=0.7, metadata={"help": "reject when ROUGE-L F vs any pool instruction is above"})
    min_words: int = field(default=3, metadata={"help": "reject instructions of this many words or fewer"})
    max_words: int = field(default=150, metadata={"help": "reject instructions of more words"})
    blacklist: list[str] = field(default_factory=lambda: list(SELF_INSTRUCT_BLACKLIST))
    classify: bool = field(default=True, metadata={"help": "identify classification tasks (self-instruct)"})
    max_instances: int = field(default=5, metadata={"help": "instances kept per instruction"})
    instance_rules: bool = field(default=True, metadata={"help": "apply the instance validity rules"})
    row_format: str = field(default="chat", metadata={"help": "chat (instruction, blank line, input) or self-instruct "
                                                              "(the published templates; see generators/row_formats.py)"})
    pool_membership: str = field(default="published", metadata={"help": "published: every ROUGE-accepted instruction "
                                 "joins the pool at once; completed: only tasks that got a valid instance"})
    stall_batches: int = field(default=20, metadata={"help": "stop after this many batches in a row accept nothing"})
    max_tokens_total: int | None = field(default=None, metadata={"help": "stop once tokens in + out reach this"})
    price_in: float | None = field(default=None, metadata={"help": "price per million input tokens"})
    price_out: float | None = field(default=None, metadata={"help": "price per million output tokens"})
    instructions: Sampling = field(
        default_factory=lambda: Sampling(1024, 0.7, 0.5, 2.0, 0.0, ["\n\n", "\n16", "16.", "16 ."])
    )
    classification: Sampling = field(default_factory=lambda: Sampling(3, 0.0, 0.0, 0.0, 0.0, ["\n", "Task"]))
    instances: Sampling = field(default_factory=lambda: Sampling(350, 0.0, 0.0, 1.5, 0.0, ["Example 6", "Task:"]))
    instances_classification_max_tokens: int = 300

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise CurateError(f"--preset: unknown preset {self.preset!r} (choose from {', '.join(PRESETS)})")
        if self.prompt_style not in ("auto", "chat", "completion"):
            raise CurateError(f"--prompt-style: expected chat, completion or auto, got {self.prompt_style!r}")
        if self.row_format not in ("chat", "self-instruct"):
            raise CurateError(f"--row-format: expected chat or self-instruct, got {self.row_format!r}")
        if self.pool_membership not in ("published", "completed"):
            raise CurateError(f"pool_membership: expected published or completed, got {self.pool_membership!r}")
        if self.num_instructions < 1:
            raise CurateError("--num-instructions: must be at least 1")
        if self.num_machine_instructions > self.num_prompt_instructions:
            raise CurateError("num_machine_instructions cannot exceed num_prompt_instructions")
        if not 0.0 <= self.novelty_threshold <= 1.0:
            raise CurateError("novelty_threshold: must be between 0 and 1")
        if self.max_tokens_total is not None and self.max_tokens_total < 1:
            raise CurateError("--max-tokens-total: must be positive")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["engine_options"].get("api_key"):
            data["engine_options"]["api_key"] = "***"  # never on disk
        return data


def preset_defaults(preset: str) -> dict[str, Any]:
    """The fields where ``alpaca`` differs from ``self-instruct``."""
    if preset == "alpaca":
        return {
            "preset": "alpaca",
            "num_prompt_instructions": 3,
            "num_machine_instructions": 0,
            "max_list_number": 20,
            "blacklist": list(ALPACA_BLACKLIST),
            "classify": False,
            "max_instances": 1,
            "instance_rules": False,
            "instructions": Sampling(3072, 1.0, 1.0, 0.0, 0.0, ["\n20", "20.", "20."]),
        }
    return {"preset": preset}


SAMPLING_FIELDS = ("instructions", "classification", "instances")


def build_config(yaml_path: str | Path | None = None, **overrides: Any) -> GenerateConfig:
    """Preset defaults, then the YAML file, then explicit overrides (None values are ignored)."""
    loaded, source = read_yaml(yaml_path) if yaml_path is not None else ({}, "")
    flags = given(overrides)
    preset = flags.get("preset") or loaded.get("preset") or "self-instruct"
    defaults = {**dataclasses.asdict(GenerateConfig()), "preset": preset}
    for key, value in preset_defaults(preset).items():
        defaults[key] = dataclasses.asdict(value) if isinstance(value, Sampling) else value
    layers = [(f"--preset {preset}", defaults), *([(source, loaded)] if yaml_path is not None else []), ("flags", flags)]
    try:
        return build(GenerateConfig, layers, nested=dict.fromkeys(SAMPLING_FIELDS, Sampling))
    except TypeError as err:  # a sampling block without a required field
        raise CurateError(f"{source or 'config'}: {err}") from None
