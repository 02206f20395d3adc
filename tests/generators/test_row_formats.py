"""Training-row rendering: the chat form and the published Self-Instruct augmentation."""

from __future__ import annotations

import random
from collections import Counter

from generators.row_formats import (
    WITH_INPUT,
    WITHOUT_INPUT,
    collapse_blank_lines,
    instance_key,
    instance_rng,
    render_row,
    strip_single_field_prefix,
)


def test_thirteen_templates_seven_with_input_six_without():
    assert (len(WITH_INPUT), len(WITHOUT_INPUT)) == (7, 6)
    assert all("{input}" in t for t in WITH_INPUT) and not any("{input}" in t for t in WITHOUT_INPUT)
    assert sum("Output:" in t for t in WITH_INPUT + WITHOUT_INPUT) >= 6


def test_single_field_prefix_only():
    assert strip_single_field_prefix("Sentence: The cat sat.") == "The cat sat."
    assert strip_single_field_prefix("Sentence 1: A\nSentence 2: B") == "Sentence 1: A\nSentence 2: B"
    assert strip_single_field_prefix("no label here: really") == "no label here: really"
    assert strip_single_field_prefix("Email: Dear Sam,\nsee you soon.") == "Dear Sam,\nsee you soon."


def test_blank_lines_collapse():
    assert collapse_blank_lines("a\n\n\nb\n \nc") == "a\nb\nc"


def test_chat_rows():
    rng = random.Random(0)
    assert render_row("Fix it.", "Sentence: x y", "X y.", "chat", rng).user == "Fix it.\n\nSentence: x y"
    assert render_row("Name a fruit.", "", "Apple", "chat", rng).user == "Name a fruit."


def test_self_instruct_rows_halve_stripping_and_collapsing_and_use_every_template():
    stripped = collapsed = 0
    used: Counter = Counter()
    for k in range(2000):
        row = render_row("Summarize the text.", "Text: one\n\ntwo", "A\n\nB", "self-instruct", instance_rng(1, "t", k))
        stripped += row.prefix_stripped
        collapsed += row.blank_lines_collapsed
        used[row.template] += 1
        assert row.user.startswith(("Summarize the text.", "Task: Summarize the text."))
        assert row.assistant in ("A\n\nB", "A\nB")
    assert 850 < stripped < 1150 and 850 < collapsed < 1150
    assert set(used) == set(range(len(WITH_INPUT)))


def test_rows_are_deterministic_per_instance():
    one = render_row("Sort the list.", "List: 3, 1", "1, 3", "self-instruct", instance_rng(7, "task-a", 0))
    two = render_row("Sort the list.", "List: 3, 1", "1, 3", "self-instruct", instance_rng(7, "task-a", 0))
    assert one == two
    assert instance_key("a ", "b", "c") == instance_key("a", "b", " c")


def test_cli_row_format_flag_writes_published_rows(scripted_server, seeds_file, tmp_path):
    import json

    from click.testing import CliRunner

    from curate.cli import cli

    def reply(body):
        prompt = body["messages"][0]["content"]
        if prompt.endswith("Is it classification?"):
            return "No"
        if prompt.startswith("Come up with examples"):
            return "Example 1\nSentence: the cat sat\nOutput: The cat sat.\nExample 2\nSentence: dogs bark\nOutput: Dogs bark."
        return "Sure! Here are new tasks:\n\n1. Capitalize the first word of the sentence.\n\nHope this helps!"

    scripted_server.default_text = reply
    out = tmp_path / "generated.jsonl"
    result = CliRunner().invoke(cli, ["generate", "--seeds", str(seeds_file), "--out", str(out), "--engine", "openai",
                                      "--base-url", scripted_server.base_url, "--teacher", "scripted-model", "-n", "1",
                                      "--batch-size", "1", "--row-format", "self-instruct", "-q"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["meta"]["row_format"] for r in records} == {"self-instruct"}
    assert sum(bool(r["meta"].get("seed_task")) for r in records) == 12  # the test seeds' instances
    machine = [r for r in records if not r["meta"].get("seed_task")]
    assert len(machine) == 2 and machine[0]["meta"]["instruction"] == "Capitalize the first word of the sentence."
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["row_format"] == "self-instruct"
