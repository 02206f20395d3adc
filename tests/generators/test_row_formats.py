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
