"""`curate train`, then `curate eval` of that run, each killed inside its final commit: the next
reader (`curate chat`; read_set for eval) finishes the commit and finds one run's files (config,
metrics, curve, adapter, tokenizer; eval.json with its examples). One test, so the tiny run is
trained once; every step of the same commit mechanism is walked cheaply in test_commit.py."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curate.runs.commit import KILL_ENV, journal_members, read_set, verify_set

_SFT_CONFTEST = Path(__file__).parents[1] / "sft" / "conftest.py"


def _sft_helpers():
    spec = importlib.util.spec_from_file_location("sft_test_helpers", _SFT_CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    helpers = _sft_helpers()
    root = tmp_path_factory.mktemp("tiny")
    model = helpers.build_model_dir(root / "model", helpers.build_tokenizer())
    data = root / "curated.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in helpers.make_records(24)))
    return model, data


def _train(model: Path, data: Path, out: Path, steps: int, kill_at: int | None = None) -> int:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop(KILL_ENV, None)
    if kill_at is not None:
        env[KILL_ENV] = str(kill_at)
    args = [sys.executable, "-m", "curate", "train", str(data), "--out", str(out), "--model", str(model),
            "--max-steps", str(steps), "--max-length", "96", "--eval-split", "0", "--set", "quantization=none",
            "--set", "sft.per_device_train_batch_size=4", "--set", "sft.save_steps=100"]
    return subprocess.run(args, env=env, capture_output=True, timeout=600).returncode


@pytest.mark.slow
def test_train_then_eval_killed_in_their_commits_leave_one_runs_files(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = tiny
    out = tmp_path / "run"
    # step 4: staged (1), journal (2), two members renamed (3, 4), the rest still staged
    assert _train(model, data, out, steps=2, kill_at=4) == -9
    members = journal_members(out / "config.yaml")
    assert verify_set(members).state == "committing"  # killed inside the commit window
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("what is two plus three\n")
    chat = subprocess.run([sys.executable, "-m", "curate", "chat", str(out), "--prompts", str(prompts),
                           "--max-new-tokens", "3"], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=300)
    assert chat.returncode == 0, chat.stderr  # the reader (chat) finished the killed commit, then loaded the run
    assert read_set(members).state == "complete"
    names = {m.name for m in members}
    assert {"config.yaml", "metrics.json", "loss_curve.png", "adapter_model.safetensors",
            "adapter_config.json"} <= names
    assert all(m.is_file() for m in members)
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2
    assert not list(out.glob(".*.staged"))

    # eval of that run, killed between its journal and its last rename: one run's eval.json + examples
    lines = data.read_text().splitlines(keepends=True)
    old_eval, new_eval = tmp_path / "old_eval.jsonl", tmp_path / "new_eval.jsonl"
    old_eval.write_text("".join(lines[:4]))
    new_eval.write_text("".join(lines[4:10]))
    ev = tmp_path / "eval"
    base = [sys.executable, "-m", "curate", "eval", str(out), "--no-generate", "--resamples", "50", "--out", str(ev)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    assert subprocess.run([*base, "--eval", str(old_eval)], env=env, capture_output=True).returncode == 0
    killed = subprocess.run([*base, "--eval", str(new_eval)], env={**env, KILL_ENV: "3"}, capture_output=True)
    assert killed.returncode == -9
    eval_members = journal_members(ev / "eval.json")
    assert verify_set(eval_members).state == "committing"
    assert read_set(eval_members).state == "complete"
    result = json.loads((ev / "eval.json").read_text())
    examples = [json.loads(line) for line in (ev / "examples.jsonl").read_text().splitlines()]
    assert result["eval_set"]["examples"] == len(examples) == 6  # the new eval set, in both files
