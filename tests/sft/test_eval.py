"""`curate eval` end to end: a tiny random Llama trained for a few steps, scored against its base."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from curate.cli import cli
from curate.records import make_record
from curate.runs.evidence import EvalResults, find_run_files
from generators.engines.fake import FakeEngine
from sft.eval import EvalConfig, evaluate, table
from sft.train import train

FAST = {"sft": {"max_steps": 3, "per_device_train_batch_size": 4, "max_length": 96, "save_steps": 100,
                "learning_rate": 5e-3}, "eval_split": 0.0, "quantization": "none"}


def _train_records(count: int) -> list[dict]:
    return [make_record([{"role": "user", "content": f"what is {a} plus {b}"},
                         {"role": "assistant", "content": f"the sum is {a + b}\n#### {a + b}"}])
            for a, b in ((i % 7, (i * 3) % 5) for i in range(count))]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("eval-run")
    data = folder / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _train_records(24)))
    train(str(data), str(folder / "run"), overrides={**FAST, "model": str(tiny_model_dir)},
          say=lambda line: None, show_progress=False)
    return folder / "run"


@pytest.fixture
def eval_file(tmp_path):
    rows = [make_record([{"role": "user", "content": f"what is {a} plus {b}"},
                         {"role": "assistant", "content": f"the sum is {a + b}\n#### {a + b}"}])
            for a, b in ((1, 2), (3, 4), (2, 2), (5, 1), (0, 3))]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_eval_run_vs_base_with_judge(trained_run, eval_file, tmp_path):
    out = tmp_path / "eval"
    judge = FakeEngine(default="A")  # always the first shown: pure position bias
    config = EvalConfig([str(trained_run)], str(eval_file), str(out), base=True, max_new_tokens=8, batch_size=2,
                        resamples=200, judge="fake")
    result = evaluate(config, say=lambda line: None, judge_engine=judge)
    assert set(result["models"]) == {"base", "run"}
    for entry in result["models"].values():
        metrics = entry["metrics"]
        assert metrics["nll"]["lo"] <= metrics["nll"]["value"] <= metrics["nll"]["hi"]
        assert all(math.isfinite(metrics[k]["value"]) for k in ("nll", "perplexity", "ended", "answer_tokens",
                                                               "repeat4", "exact_match_strict"))
        assert metrics["nll"]["n"] == 5 and len(entry["template_id"]) == 16
    assert result["models"]["base"]["metrics"]["nll"] != result["models"]["run"]["metrics"]["nll"]
    assert result["eval_set"]["checkable"] == 5 and len(result["eval_set"]["sha256"]) == 64
    assert result["conclusion"].startswith("run vs base: reference NLL/token") and "Judged win rate" in \
        result["conclusion"]
    paired = result["paired_nll"][0]
    assert paired["x"] == "run" and paired["y"] == "base" and paired["lo"] <= paired["value"] <= paired["hi"]
    pair = result["judged"][0]
    assert pair["x"] == "run" and pair["y"] == "base" and pair["win_rate"]["value"] == 0.5
    assert pair["order_inconsistency"]["value"] == 1.0  # position bias: every pair flips with the order
    assert len(judge.requests) == 10
    for name in ("eval.json", "answers.jsonl", "examples.jsonl", "judgments.jsonl"):
        assert (out / name).exists(), name
    assert len((out / "answers.jsonl").read_text().splitlines()) == 10
    assert "NLL/token" in table(result) and "judged run vs base" in table(result)
    assert EvalResults.read(out / "eval.json").eval_set["sha256"] == result["eval_set"]["sha256"]
    assert [run.folder for run in find_run_files(tmp_path).compare] == [out]  # the report's compare section

    # a rerun with another judge reuses the cached answers (same text), and only judges again
    answers = (out / "answers.jsonl").read_text()
    again = evaluate(config, say=lambda line: None, judge_engine=FakeEngine(default="tie"))
    assert (out / "answers.jsonl").read_text() == answers
    assert again["judged"][0]["order_inconsistency"]["value"] == 0.0


@pytest.mark.slow
def test_eval_command_nll_only(trained_run, eval_file, tmp_path):
    out = tmp_path / "e"
    result = CliRunner().invoke(cli, ["eval", str(trained_run), "--eval", str(eval_file), "--out", str(out),
                                      "--no-generate", "--resamples", "100"])
    assert result.exit_code == 0, result.output
    assert "NLL/token" in result.output and "ended" not in result.output
    saved = json.loads((out / "eval.json").read_text())
    assert saved["results"][0]["model"] == "run" and "nll_lo" in saved["results"][0]


@pytest.mark.slow
def test_eval_errors_are_one_line(trained_run, eval_file, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", str(trained_run), "--eval", str(eval_file), "--out", str(tmp_path / "x"),
                                 "--judge", "cpu"])
    assert result.exit_code == 2 and "two models" in result.output
    result = runner.invoke(cli, ["eval", str(trained_run), "--eval", str(eval_file), "--out", str(tmp_path / "x"),
                                 "--lm-eval", "gsm8k"])
    assert result.exit_code == 2 and "lm-evaluation-harness" in result.output


def test_batched_nll_equals_one_at_a_time(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    from curate.lm.nll import token_nll
    from curate.lm.render import render_records

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    records = _train_records(5)
    rendered = render_records(tiny_tokenizer, records)
    batched = token_nll(model, rendered, pad_id=tiny_tokenizer.pad_token_id, batch_size=4)
    single = [token_nll(model, [r], pad_id=tiny_tokenizer.pad_token_id)[0] for r in rendered]
    assert [b.tokens for b in batched] == [s.tokens for s in single] == [r.trainable for r in rendered]
    for b, s in zip(batched, single, strict=True):
        assert b.nll == pytest.approx(s.nll, rel=1e-4)
