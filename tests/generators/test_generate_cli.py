"""`curate generate` end to end through the CLI (openai engine on a scripted local server), and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from curate.cli import cli


def teacher_reply(body: dict) -> str:
    prompt = body["messages"][0]["content"] if "messages" in body else body["prompt"]
    if prompt.endswith("Is it classification?"):
        return "No"
    if prompt.startswith("Come up with examples"):
        return "Example 1\nNumber: 4\nOutput: 16\nExample 2\nNumber: 5\nOutput: 25"
    return "9. Square the given number and explain each step.\n10. Name a fruit that is yellow when ripe."


def test_generate_via_cli_with_openai_engine(scripted_server, seeds_file, tmp_path):
    scripted_server.default_text = teacher_reply
    out = tmp_path / "data" / "generated.jsonl"
    args = ["generate", "--seeds", str(seeds_file.parent), "--out", str(out), "--engine", "openai",
            "--base-url", scripted_server.base_url, "--teacher", "scripted-model", "-n", "2", "--batch-size", "1",
            "--price-in", "1.5", "--price-out", "2", "--seed", "7", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "2 instructions, 4 rows in" in result.output and "estimated cost: $" in result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["batches.jsonl", "errors.jsonl", "generated.jsonl",
                                                             "manifest.json", "rejected_candidates.jsonl"]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["meta"]["instruction"] for r in records} == {"Square the given number and explain each step.",
                                                           "Name a fruit that is yellow when ripe."}
    assert all(r["meta"]["engine"] == "openai" and r["meta"]["prompt_style"] == "chat" for r in records)
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 7 and manifest["config"]["price_in"] == 1.5
    assert manifest["engine"]["base_url"] == scripted_server.base_url
    # the same command again: already complete, nothing added
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "(4 from before)" in again.output
    assert len(out.read_text().splitlines()) == 4


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_bad_seed_row_is_one_line_with_file_line_field(seeds_file, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(seeds_file.read_text().splitlines()[0] + "\n" + '{"id": "x", "instruction": "", "instances": []}\n')
    out = tmp_path / "generated.jsonl"
    result = run("generate", "--seeds", str(bad), "--out", str(out), "-n", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {bad}:2: field 'instruction': expected a non-empty string"]
    assert not out.exists()


def test_missing_seeds_folder_and_vllm_without_gpu(seeds_file, tmp_path):
    result = run("generate", "--seeds", str(tmp_path / "nope"), "--out", str(tmp_path / "g.jsonl"))
    assert result.returncode == 2 and "no such file or folder" in result.stderr
    result = run("generate", "--seeds", str(seeds_file), "--out", str(tmp_path / "g.jsonl"), "--engine", "vllm",
                 "--teacher", "some/model")
    assert result.returncode == 2
    assert "install `curate[vllm]`" in result.stderr or "needs a CUDA GPU" in result.stderr


def test_help_lists_the_flags():
    result = CliRunner().invoke(cli, ["generate", "--help"])
    assert result.exit_code == 0
    for flag in ("--seeds", "--num-instructions", "--engine", "--teacher", "--base-url", "--seed", "--price-in",
                 "--price-out", "--max-tokens-total", "--preset", "--config", "--rpm", "--concurrency"):
        assert flag in result.output


def test_a_stalled_run_exits_1_with_advice(scripted_server, seeds_file, tmp_path):
    scripted_server.default_text = "I cannot help with that."  # answers, but nothing parses to a task
    config = tmp_path / "gen.yaml"
    config.write_text("stall_batches: 2\n")
    out = tmp_path / "run" / "generated.jsonl"
    result = CliRunner().invoke(cli, ["generate", "--seeds", str(seeds_file), "--out", str(out), "--base-url",
                                      scripted_server.base_url, "--teacher", "scripted-model", "-n", "3",
                                      "--batch-size", "1", "--config", str(config), "-q"])
    assert result.exit_code == 1, result.output
    assert "stopped: 2 batches in a row accepted nothing: nothing new was accepted" in result.output
    assert json.loads((out.parent / "manifest.json").read_text())["status"] == "stalled"


def test_dry_run_on_the_cpu_engine_counts_with_the_teachers_tokenizer(seeds_file, tmp_path):
    result = run("generate", "--dry-run", "--engine", "cpu", "-n", "10", "--seeds", str(seeds_file),
                 "--out", str(tmp_path / "g.jsonl"))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    first, second = result.stdout.splitlines()[:2]
    assert "completion prompts; tokens counted with the teacher's tokenizer (SmolLM2-135M-Instruct" in first
    assert second.startswith("first prompt (") and int(second.split("(")[1].split()[0].replace(",", "")) > 50
    assert not (tmp_path / "g.jsonl").exists() and not (tmp_path / "manifest.json").exists()
