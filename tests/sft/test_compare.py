"""`curate compare` end to end on a tiny random Llama: every file, finite numbers, all arms, resume skips done cells."""

from __future__ import annotations

import csv
import json
import math

import pytest
from click.testing import CliRunner

from curate.cli import cli
from curate.records import make_record
from curate.runs.evidence import CompareResults, find_run_files
from sft.compare import run_compare
from sft.comparison.plan import CompareConfig, cell_steps, descriptors, ordering, stratified_slice

TRAIN = {"sft": {"per_device_train_batch_size": 2, "max_length": 64, "learning_rate": 5e-3},
         "quantization": "none"}


def _pool(count: int) -> list[dict]:
    rows = []
    for i in range(count):
        a, b = i % 9, (i * 7) % 11
        good = i % 2 == 0
        answer = f"{a} plus {b} is {a + b}\n#### {a + b}" if good else f"no idea {i}"
        rows.append(make_record([{"role": "user", "content": f"question {i}: what is {a} plus {b}"},
                                 {"role": "assistant", "content": answer}],
                                scores={"planted": 1.0 if good else 0.0, "noise": (i * 37 % 17) / 17}))
    return rows


@pytest.fixture
def pool_file(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _pool(40)))
    return path


def test_orderings_nest_and_descriptors():
    scores, lengths = [0.1, 0.9, 0.5, 0.9], [5, 1, 9, 3]
    assert ordering("quality", 4, 0, scores, lengths) == [1, 3, 2, 0]
    assert ordering("bottom", 4, 0, scores, lengths) == [0, 2, 1, 3]
    assert ordering("longest", 4, 0, scores, lengths) == [2, 0, 3, 1]
    assert ordering("random", 4, 1, scores, lengths) == ordering("random", 4, 1, scores, lengths)
    assert sorted(ordering("random", 4, 1, scores, lengths)) == [0, 1, 2, 3]
    d = descriptors([1, 3], scores, lengths, [10, 20, 30, 40], ordering("longest", 4, 0, scores, lengths))
    assert d == {"size": 2, "mean_score": 0.9, "mean_response_tokens": 2.0, "train_tokens": 60,
                 "overlap_longest": 0.0}
    picked = stratified_slice([i / 100 for i in range(100)], 10, seed=0)
    assert len(picked) == 10 and all(sum(1 for p in picked if k * 20 <= p < (k + 1) * 20) == 2 for k in range(5))


def test_budget_rules():
    assert cell_steps("fixed-steps", {"max_steps": 10}, 50, 100) == {"max_steps": 10}
    assert cell_steps("fixed-tokens", {"max_steps": 10}, 50, 100) == {"max_steps": 20}
    assert cell_steps("fixed-epochs", {"max_steps": 10, "num_train_epochs": 2}, 50, 100) == \
        {"max_steps": -1, "num_train_epochs": 2.0}
    with pytest.raises(Exception, match="--max-steps"):
        cell_steps("fixed-steps", {"max_steps": -1}, 50, 100)


@pytest.mark.slow
def test_compare_end_to_end_and_resume(tiny_model_dir, pool_file, tmp_path):
    out = tmp_path / "cmp"
    config = CompareConfig(pool=str(pool_file), out=str(out), by="planted", sizes=[4, 8], arms=["quality", "random"],
                           seeds=[1], eval_size=6, recipe=None, model=str(tiny_model_dir),
                           overrides={**TRAIN, "sft": {**TRAIN["sft"], "max_steps": 2}}, resamples=100)
    lines: list[str] = []
    results = run_compare(config, say=lines.append)
    for name in ("results.json", "results.csv", "report.md", "nll_vs_size.png", "nll_vs_length.png", "eval.jsonl",
                 "plan.json"):
        assert (out / name).exists(), name
    assert {r["arm"] for r in results["results"]} == {"base", "quality", "random"}
    assert len(results["results"]) == 5
    for row in results["results"]:
        assert all(math.isfinite(row[k]) for k in ("nll", "nll_lo", "nll_hi"))
    quality = [r for r in results["results"] if r["arm"] == "quality"]
    assert all(r["mean_score"] == 1.0 and r["budget"] == "fixed-steps" and r["steps"] == 2 for r in quality)
    assert {p["size"] for p in results["paired"]} == {4, 8}
    assert all(math.isfinite(p["diff"]) for p in results["paired"])
    assert results["eval_set"]["examples"] == 6 and len(results["eval_set"]["sha256"]) == 64
    assert results["conclusion"].startswith(("Supported", "Not supported"))
    report = (out / "report.md").read_text()
    assert results["conclusion"] in report and "| quality | 4 |" in report
    with (out / "results.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 5
    files = find_run_files(tmp_path)  # what `curate report` shows
    assert [run.folder for run in files.compare] == [out]
    assert CompareResults.read(out / "results.json").conclusion == results["conclusion"]

    # resume: finished cells are skipped; a cell killed mid-flight (folder without cell.json) is redone
    killed = out / "cells" / "random-n8-s1"
    (killed / "cell.json").unlink()
    stamps = {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/cell.json")}
    lines.clear()
    again = run_compare(config, say=lines.append)
    assert sum("skipped" in line for line in lines) == 3
    assert any("training random-n8-s1" in line for line in lines)
    assert {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/cell.json")
            if p.parent.name in stamps} == stamps
    assert (killed / "cell.json").exists() and len(again["results"]) == 5


def test_compare_command_errors(pool_file, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["compare", str(pool_file), "--out", str(tmp_path / "c"), "--arms", "quality"])
    assert result.exit_code == 2 and "--by" in result.output
    result = runner.invoke(cli, ["compare", str(pool_file), "--out", str(tmp_path / "c"), "--by", "nope",
                                 "--sizes", "4"])
    assert result.exit_code == 2 and "scores.nope" in result.output
    result = runner.invoke(cli, ["compare", str(pool_file), "--out", str(tmp_path / "c"), "--arms", "best"])
    assert result.exit_code == 2 and "unknown arm" in result.output
