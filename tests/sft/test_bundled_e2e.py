"""End to end on the real bundled SmolLM2-135M-Instruct: QLoRA (nf4 on CPU), 20 steps, reload, generate."""

from __future__ import annotations

import json

import pytest
import yaml

from curate.records import make_record

CAPITALS = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Germany", "Berlin"), ("Japan", "Tokyo"),
            ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Norway", "Oslo"),
            ("Chile", "Santiago"), ("Greece", "Athens")]


def _curated(path):
    rows = []
    for country, city in CAPITALS:
        rows.append(make_record([{"role": "user", "content": f"What is the capital of {country}?"},
                                 {"role": "assistant", "content": f"The capital of {country} is {city}."}]))
        rows.append(make_record([{"role": "user", "content": f"Name the capital city of {country}."},
                                 {"role": "assistant", "content": f"{city} is the capital of {country}."},
                                 {"role": "user", "content": "Which country was that?"},
                                 {"role": "assistant", "content": f"That was {country}."}]))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.slow
def test_bundled_qlora_20_steps_then_reload_and_generate(tmp_path):
    import bitsandbytes as bnb

    from sft.chat import answer, load_run
    from sft.train import train

    data = _curated(tmp_path / "curated.jsonl")
    out = tmp_path / "runs" / "capitals"
    overrides = {"eval_split": 0.1, "method": "qlora", "batch_size": 1, "sft": {"max_steps": 20,
                                            "max_length": 96, "eval_steps": 10}}
    result = train(str(data), str(out), overrides=overrides, say=lambda line: None, show_progress=False)
    assert result.steps == 20
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"] == "bundled" and config["quantization"] == "nf4"
    assert config["sft"]["eos_token"] == "<|im_end|>"
    metrics = json.loads((out / "metrics.json").read_text())
    losses = [row["loss"] for row in metrics["train_loss"]]
    assert len(losses) == 20 and sum(losses[-5:]) < sum(losses[:5])
    assert [row["step"] for row in metrics["eval_loss"]] == [10, 20]

    loaded = load_run(out)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in loaded.model.modules())
    reply = answer(loaded, [{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=24)
    assert reply and "Paris" in reply
