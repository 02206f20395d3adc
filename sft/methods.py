"""Training methods: which weights train. ``lora`` / ``qlora`` (adapters), ``full``, ``hft``.

Half Fine-Tuning (HFT; Hui et al., 2024, "HFT: Half Fine-Tuning for Large Language Models") is
full-parameter training where, in each round, half of the parameters are frozen so that what
the model already knows is kept in the frozen half, and a different half is updated in the
next round. Written here from the paper's description:

- a *group* is one weight-holding module of a transformer layer (``q_proj``, ``k_proj``,
  ``v_proj``, ``o_proj``, ``gate_proj``, ``up_proj``, ``down_proj``, the two norms); the
  embeddings, the final norm and an untied LM head form one more set of groups;
- in every layer, half of the attention groups, half of the MLP groups and half of the other
  groups are frozen (an odd count alternates between rounding down and up from round to round),
  chosen by a generator seeded with ``(hft.seed, round, layer)``;
- a round lasts ``hft.round_steps`` optimizer steps; the optimizer holds every parameter from
  the start, so a group unfrozen in a later round continues with its own AdamW moments.

The schedule is a pure function of the seed and the model's groups (``hft_schedule``), applied
by ``HalfFineTuning`` (a TrainerCallback) and written to the run as ``hft_schedule.json``.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from typing import Any

from transformers import TrainerCallback

LAYER = re.compile(r"^(?P<prefix>.*?\.layers\.(?P<index>\d+))\.(?P<group>.+)\.(weight|bias)$")
ADAPTER_METHODS = ("lora", "qlora")


def is_adapter_method(method: str) -> bool:
    return method in ADAPTER_METHODS


def lora_config(fields: dict[str, Any]):
    from peft import LoraConfig

    return LoraConfig(**fields)


def parameter_groups(model: Any) -> dict[str, dict[str, list[str]]]:
    """``{layer: {group: [parameter names]}}``; non-layer parameters under layer ``"outer"``."""
    groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, _param in model.named_parameters():
        match = LAYER.match(name)
        if match:
            groups[match["index"]][match["group"]].append(name)
        else:
            groups["outer"][name.rsplit(".", 1)[0]].append(name)
    return {layer: dict(members) for layer, members in groups.items()}


def _kind(group: str) -> str:
    if "attn" in group or "attention" in group:
        return "attention"
    if "mlp" in group or "feed_forward" in group or "ffn" in group:
        return "mlp"
    return "other"


def frozen_groups(groups: dict[str, list[str]], seed: int, round_index: int, layer: str) -> list[str]:
    """The groups of one layer frozen in one round: half of each kind, seeded by (seed, round, layer)."""
    rng = random.Random(f"{seed}:{round_index}:{layer}")
    by_kind: dict[str, list[str]] = defaultdict(list)
    for group in sorted(groups):
        by_kind[_kind(group)].append(group)
    frozen: list[str] = []
    for offset, kind in enumerate(sorted(by_kind)):
        members = by_kind[kind]
        count = len(members) // 2 + (len(members) % 2) * ((round_index + offset) % 2)
        frozen.extend(rng.sample(members, count))
    return sorted(frozen)


def hft_schedule(model: Any, seed: int, round_index: int) -> dict[str, list[str]]:
    """``{layer: [frozen group names]}`` for one round."""
    return {layer: frozen_groups(members, seed, round_index, layer)
            for layer, members in parameter_groups(model).items()}


def frozen_parameter_names(model: Any, seed: int, round_index: int) -> set[str]:
    groups = parameter_groups(model)
    names: set[str] = set()
    for layer, frozen in hft_schedule(model, seed, round_index).items():
        for group in frozen:
            names.update(groups[layer][group])
    return names


class HalfFineTuning(TrainerCallback):
    """Freezes the scheduled half at the start of every round (after the optimizer took every parameter)."""

    def __init__(self, model: Any, round_steps: int, seed: int):
        if round_steps < 1:
            raise ValueError("hft.round_steps must be at least 1")
        self.model, self.round_steps, self.seed = model, round_steps, seed
        self.rounds: list[dict[str, Any]] = []
        self._current: int | None = None

    def apply(self, step: int) -> None:
        round_index = step // self.round_steps
        if round_index == self._current:
            return
        self._current = round_index
        frozen = frozen_parameter_names(self.model, self.seed, round_index)
        for name, param in self.model.named_parameters():
            param.requires_grad_(name not in frozen)
            if name in frozen:
                param.grad = None
        self.rounds.append({"round": round_index, "first_step": step + 1,
                            "frozen": hft_schedule(self.model, self.seed, round_index)})

    def on_train_begin(self, args, state, control, **kwargs):
        self.apply(state.global_step)

    def on_step_begin(self, args, state, control, **kwargs):
        self.apply(state.global_step)

    def record(self) -> dict[str, Any]:
        return {"round_steps": self.round_steps, "seed": self.seed, "rounds": self.rounds}


def prepare_full_model(model: Any) -> Any:
    """Every weight trainable in float32 master copies is the Trainer's job; here only requires_grad."""
    for param in model.parameters():
        param.requires_grad_(True)
    return model
