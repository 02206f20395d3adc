"""A tiny random Llama trains for a few real TRL steps on CPU: LoRA moves, the base does not."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
import yaml
from click.testing import CliRunner
from transformers import TrainerCallback

from curate.cli import cli
from curate.errors import CurateError
from sft.train import train

FAST = {"sft": {"max_steps": 4, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 4,
                "max_length": 96, "eval_steps": 2, "save_steps": 2}}


def _overrides(model_dir, **top):
    overrides = json.loads(json.dumps(FAST))
    overrides.update({"model": str(model_dir), "eval_split": 0.1, **top})
    return overrides


def _base_weights(model) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters() if "lora_" not in name}


def test_lora_weights_change_and_base_weights_do_not(tiny_model_dir, records_file, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    result = train(str(records_file), str(out), overrides=_overrides(tiny_model_dir, quantization="none"),
                   say=lambda line: None, show_progress=False)
    assert result.steps == 4 and not result.interrupted

    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    trained = result.model.get_base_model().state_dict()
    lora_b = {k: v for k, v in trained.items() if "lora_B" in k}
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b.values())  # LoRA B starts at zero
    for name, value in original.items():
        key = name.replace(".weight", ".base_layer.weight") if name.replace(".weight", ".base_layer.weight") in \
            trained else name
        torch.testing.assert_close(trained[key], value.to(trained[key].dtype), rtol=0, atol=0)

    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "chat_template.jinja",
                 "config.yaml", "metrics.json", "loss_curve.png"):
        assert (out / name).exists(), name
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["step"] for row in metrics["train_loss"]] == [1, 2, 3, 4]
    assert [row["step"] for row in metrics["eval_loss"]] == [2, 4]
    assert metrics["final_eval_loss"] > 0
    assert metrics["tokens_seen"] > 0 and metrics["tokens_per_second"] > 0
    assert metrics["packing"] == "documents"
    assert metrics["peak_memory"]["cpu_rss_peak_during_training_mb"] > 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["sft"]["eos_token"] == "<|im_end|>"
    assert config["sft"]["completion_only_loss"] is False and config["sft"]["packing"] is True
    assert config["run"]["versions"]["trl"] == "1.16.0"
    assert config["run"]["train_records"] + config["run"]["eval_records"] == 40


def test_qlora_trains_on_cpu_with_frozen_4bit_base(tiny_tokenizer, records_file, tmp_path):
    import bitsandbytes as bnb
    from tiny_lm import build_model_dir

    # bitsandbytes' CPU 4-bit kernels need output features of at least 64 (the default tiny model has 16)
    wide = build_model_dir(tmp_path / "wide", tiny_tokenizer, hidden=64, kv_heads=4)
    result = train(str(records_file), str(tmp_path / "q"), overrides=_overrides(wide, method="qlora"),
                   say=lambda line: None, show_progress=False)
    model = result.model
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and quantized[0].weight.quant_state.quant_type == "nf4"
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
    metrics = json.loads((tmp_path / "q" / "metrics.json").read_text())
    assert metrics["eval_loss"] and metrics["model_memory_mb"] > 0


def test_unpacked_run_groups_by_length(tiny_model_dir, records_file, tmp_path):
    overrides = _overrides(tiny_model_dir, quantization="none")
    overrides["sft"]["packing"] = False
    result = train(str(records_file), str(tmp_path / "u"), overrides=overrides, say=lambda line: None,
                   show_progress=False)
    config = yaml.safe_load((tmp_path / "u" / "config.yaml").read_text())
    assert config["sft"]["train_sampling_strategy"] == "group_by_length"
    assert result.metrics["packing"] == "off" and result.metrics["eval_loss"]


class _InterruptAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does, mid-step


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tiny_model_dir, records_file, tmp_path):
    out = tmp_path / "run"
    overrides = _overrides(tiny_model_dir, quantization="none")
    overrides["sft"].update({"max_steps": 6, "save_steps": 100})
    with pytest.raises(KeyboardInterrupt):
        train(str(records_file), str(out), overrides=overrides, say=lambda line: None, show_progress=False,
              callbacks=[_InterruptAt(3)])
    assert (out / "checkpoints" / "checkpoint-4").is_dir()  # the step under way finished, then saved
    assert json.loads((out / "metrics.json").read_text())["interrupted"] is True
    assert not (out / "adapter_model.safetensors").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    with pytest.raises(CurateError, match="already holds a run"):
        train(str(records_file), str(out), overrides=overrides, say=lambda line: None, show_progress=False)
    with pytest.raises(CurateError, match="contradict"):
        train(str(records_file), str(out), resume=True, overwrite=True)
    result = train(str(records_file), str(out), overrides={"sft": {"max_steps": 6}}, resume=True,
                   say=lambda line: None, show_progress=False)
    assert result.steps == 6 and (out / "adapter_model.safetensors").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    # continued, not restarted, and the history before the resume is kept
    assert [row["step"] for row in metrics["train_loss"]] == [1, 2, 3, 4, 5, 6]
    tokens = [row["tokens_seen"] for row in metrics["train_loss"]]
    assert tokens == sorted(tokens) and tokens[4] > tokens[3]  # the count continues too


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, records_file):
    with pytest.raises(CurateError, match="nothing to resume"):
        train(str(records_file), str(tmp_path / "none"), resume=True)


def test_a_run_killed_before_its_first_checkpoint_names_overwrite(tmp_path, records_file):
    out = tmp_path / "killed"
    (out / "checkpoints").mkdir(parents=True)  # what kill -9 during the first steps leaves
    for resume in (False, True):
        with pytest.raises(CurateError, match="no checkpoint yet: rerun with --overwrite"):
            train(str(records_file), str(out), resume=resume)


def test_adapter_names_its_real_base_and_has_no_placeholder_readme(tiny_model_dir, records_file, tmp_path):
    out = tmp_path / "run"
    overrides = _overrides(tiny_model_dir, quantization="none")
    overrides["sft"]["max_steps"] = 1
    train(str(records_file), str(out), overrides=overrides, say=lambda line: None, show_progress=False)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_model_dir.resolve())
    readme = (out / "README.md").read_text()
    assert "More Information Needed" not in readme and "## Base model" in readme
    assert str(tiny_model_dir.resolve()) in readme


def test_out_of_order_roles_are_dropped_or_an_error_with_strict(tiny_model_dir, records_file, tmp_path):
    from curate.records import make_record

    records = [json.loads(line) for line in records_file.read_text().splitlines()[:12]]
    records[0] = make_record(list(reversed(records[0]["messages"][:2])))  # assistant first
    records[3] = make_record(records[3]["messages"][:3])  # user, assistant, user: ends on a user turn
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    lines: list[str] = []
    overrides = _overrides(tiny_model_dir, quantization="none", eval_split=0.0)
    overrides["sft"]["max_steps"] = 1
    result = train(str(path), str(tmp_path / "run"), overrides=overrides, say=lines.append, show_progress=False)
    assert result.metrics["preflight"]["train"]["dropped_roles_out_of_order"] == 2
    assert any("2 of 12 records have their roles out of order" in line for line in lines)
    with pytest.raises(CurateError, match="roles out of order"):
        train(str(path), str(tmp_path / "strict"), overrides={**overrides, "strict": True}, say=lines.append,
              show_progress=False)


def test_small_eval_set_is_a_warning_with_the_numbers(tiny_model_dir, records_file, tmp_path):
    lines: list[str] = []
    overrides = _overrides(tiny_model_dir, quantization="none")
    overrides["sft"]["max_steps"] = 1
    train(str(records_file), str(tmp_path / "run"), overrides=overrides, say=lines.append, show_progress=False)
    warning = next(line for line in lines if line.startswith("warning: the eval set"))
    assert "has 4 records" in warning and "below 32 records / 1,000 tokens" in warning


def test_merge_writes_a_bf16_model_that_matches_the_adapter(tiny_model_dir, records_file, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    train(str(records_file), str(out), overrides=_overrides(tiny_model_dir, quantization="none"), merge=True,
          say=lambda line: None, show_progress=False)
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert merged.dtype == torch.bfloat16
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16),
                                             str(out)).eval()
    ids = torch.tensor([[5, 17, 33, 8, 90, 41]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, with_adapter(input_ids=ids).logits,
                                   atol=5e-2, rtol=0)


def test_cli_train_then_chat(tiny_model_dir, records_file, tmp_path):
    out = tmp_path / "cli-run"
    args = ["train", str(records_file), "--out", str(out), "--model", str(tiny_model_dir), "--max-steps", "2",
            "--max-length", "96", "--eval-split", "0.1", "--set", "sft.per_device_train_batch_size=4",
            "--set", "quantization=none"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output
    assert CliRunner().invoke(cli, args).exit_code == 2  # never clobbers a run silently
    result = CliRunner().invoke(cli, [*args, "--overwrite"])  # the demo re-runs this way
    assert result.exit_code == 0, result.output

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("what is two plus three\nname a color\n")
    answers = tmp_path / "answers.jsonl"
    result = CliRunner().invoke(cli, ["chat", str(out), "--prompts", str(prompts), "--max-new-tokens", "5",
                                      "--out", str(answers)])
    assert result.exit_code == 0, result.output
    assert "> what is two plus three" in result.output
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [r["messages"][0]["content"] for r in rows] == ["what is two plus three", "name a color"]


def test_cli_bad_recipe_key_is_one_line_and_exit_2(records_file, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(records_file), "--out", str(tmp_path / "x"),
                                      "--set", "sft.lerning_rate=1"])
    assert result.exit_code == 2
    assert "sft.lerning_rate is not a field of trl.SFTConfig" in result.output


def test_chat_refuses_a_run_whose_template_changed(tiny_model_dir, records_file, tmp_path):
    from sft.chat import load_run

    out = tmp_path / "run"
    train(str(records_file), str(out), overrides=_overrides(tiny_model_dir, quantization="none"),
          say=lambda line: None, show_progress=False)
    template = out / "chat_template.jinja"
    template.write_text(template.read_text() + "{# edited #}")
    with pytest.raises(CurateError, match="not the one the run was trained with"):
        load_run(out)


def test_missing_model_is_one_line_error(records_file, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(records_file), "--out", str(tmp_path / "x"),
                                      "--model", str(tmp_path / "no-such-model")])
    assert result.exit_code == 2
    assert "error:" in result.output and "no-such-model" in result.output
