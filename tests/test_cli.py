"""The command line: listing, version, import/convert and bad input end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from curate import __version__
from curate.cli import _command_modules, cli

GOOD = {"instruction": "Add 2 and 3.", "input": "", "output": "5"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command_with_a_description():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = result.output.split("Commands:")[1]
    for name in _command_modules():
        line = next(line for line in listed.splitlines() if line.strip().startswith(name + " "))
        assert len(line.split()) > 2, f"{name} has no description"
    assert "import" in _command_modules() and "convert" in _command_modules()


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_import_says_which_format_it_picked_and_counts(tmp_path):
    source = tmp_path / "data.jsonl"
    source.write_text(json.dumps(GOOD) + "\n")
    result = CliRunner().invoke(cli, ["import", str(source), "--out", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 0, result.output
    assert "format: alpaca (detected)" in result.output
    assert "imported 1 records" in result.output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (json.dumps(GOOD) + "\n" + '{"instruction": "x", "input": ""}\n', ":2: field 'output': missing"),
        (json.dumps(GOOD) + "\n" + '{"instruction": "x", "output": 5}\n', ":2: field 'output': expected a string"),
        (json.dumps(GOOD) + "\n{not json\n", ":2: malformed JSON"),
        ("", ": is empty"),
    ],
)
def test_bad_input_is_one_line_nonzero_and_writes_nothing(tmp_path, content, expected):
    source = tmp_path / "data.jsonl"
    source.write_text(content)
    out = tmp_path / "out.jsonl"
    out.write_text("previous run\n")
    result = run("import", str(source), "--out", str(out), "--format", "alpaca")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {source}")
    assert expected in lines[0]
    assert out.read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "out.jsonl"]


def test_non_utf8_byte_names_line_and_column(tmp_path):
    source = tmp_path / "data.jsonl"
    source.write_bytes(json.dumps(GOOD).encode() + b'\n{"instruction": "caf\xe9", "output": "x"}\n')
    result = run("import", str(source), "--out", str(tmp_path / "out.jsonl"))
    assert result.returncode == 2
    assert f"{source}:2: not valid UTF-8 (byte 0xe9" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_skip_invalid_quarantines_and_counts(tmp_path):
    source = tmp_path / "data.jsonl"
    source.write_text(json.dumps(GOOD) + "\n{oops\n" + '{"instruction": "x"}\n' + json.dumps(GOOD) + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["import", str(source), "--out", str(out), "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert "imported 2 records" in result.output
    assert "2 invalid rows set aside" in result.output
    side = [json.loads(line) for line in (tmp_path / "out.invalid.jsonl").read_text().splitlines()]
    assert [(row["line"], row["field"]) for row in side] == [(2, None), (3, "output")]
    assert side[1]["row"] == {"instruction": "x"}
    assert len(out.read_text().splitlines()) == 2


def test_convert_to_alpaca_json_array(tmp_path):
    source = tmp_path / "data.jsonl"
    source.write_text(json.dumps(GOOD) + "\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(source), "-o", str(tmp_path / "r.jsonl")]).exit_code == 0
    result = runner.invoke(cli, ["convert", str(tmp_path / "r.jsonl"), "--to", "alpaca", "-o", str(tmp_path / "a.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "a.json").read_text()) == [GOOD]


def test_convert_rejects_a_hand_edited_record(tmp_path):
    source = tmp_path / "data.jsonl"
    source.write_text(json.dumps(GOOD) + "\n")
    records = tmp_path / "r.jsonl"
    CliRunner().invoke(cli, ["import", str(source), "-o", str(records)])
    edited = json.loads(records.read_text())
    edited["messages"][1]["content"] = "6"
    records.write_text(json.dumps(edited) + "\n")
    result = run("convert", str(records), "--to", "alpaca", "-o", str(tmp_path / "a.json"))
    assert result.returncode == 2
    assert f"{records}:1: field 'id': does not match" in result.stderr
