"""Training methods on a tiny random Llama: full trains every weight, HFT exactly the scheduled half per round."""

from __future__ import annotations

import json

import torch
from transformers import TrainerCallback

from sft.methods import frozen_parameter_names, hft_schedule, parameter_groups
from sft.train import train

FAST = {"max_steps": 4, "per_device_train_batch_size": 2, "max_length": 96, "eval_steps": 2, "save_steps": 100,
        "learning_rate": 1e-3, "warmup_steps": 0}


class _ChangedPerStep(TrainerCallback):
    """Which parameters each optimizer step changed (snapshot before the step, diff after)."""

    def __init__(self):
        self.model = None
        self.before: dict[str, torch.Tensor] = {}
        self.changed: list[set[str]] = []

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self.model = model
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_step_end(self, args, state, control, **kwargs):
        self.changed.append({n for n, p in self.model.named_parameters() if not torch.equal(p, self.before[n])})


def test_hft_updates_exactly_the_unfrozen_half_each_round(tiny_model_dir, records_file, tmp_path):
    watcher = _ChangedPerStep()
    out = tmp_path / "hft"
    result = train(str(records_file), str(out), overrides={
        "model": str(tiny_model_dir), "method": "hft", "eval_split": 0.0, "hft": {"round_steps": 2, "seed": 7},
        "sft": dict(FAST)}, say=lambda line: None, show_progress=False, callbacks=[watcher])
    model = result.model
    names = {n for n, _ in model.named_parameters()}
    assert len(watcher.changed) == 4
    for step, changed in enumerate(watcher.changed):
        frozen = frozen_parameter_names(model, 7, step // 2)
        assert frozen and changed == names - frozen, f"step {step + 1}"
    # each round freezes half of every layer's groups, and the two rounds differ
    schedule = [hft_schedule(model, 7, r) for r in (0, 1)]
    groups = parameter_groups(model)
    for layer, members in groups.items():
        for round_schedule in schedule:
            assert len(round_schedule[layer]) in (len(members) // 2, (len(members) + 1) // 2)
    assert schedule[0] != schedule[1]
    recorded = json.loads((out / "hft_schedule.json").read_text())
    assert [r["round"] for r in recorded["rounds"]] == [0, 1] and recorded["round_steps"] == 2
    assert recorded["rounds"][1]["frozen"] == schedule[1]
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()


def test_full_fine_tuning_changes_every_weight(tiny_model_dir, records_file, tmp_path):
    watcher = _ChangedPerStep()
    sft = dict(FAST, max_steps=1)
    result = train(str(records_file), str(tmp_path / "full"), overrides={
        "model": str(tiny_model_dir), "method": "full", "eval_split": 0.0, "sft": sft},
        say=lambda line: None, show_progress=False, callbacks=[watcher])
    assert watcher.changed[0] == {n for n, _ in result.model.named_parameters()}
    assert result.metrics["trainable_parameters"] == sum(p.numel() for p in result.model.parameters())
