"""Parsers of the teacher's replies: edge cases."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from generators.parsing import (
    capitalize_first,
    parse_alpaca_tasks,
    parse_classification_instances,
    parse_generation_instances,
    parse_input_output,
    parse_instruction_list,
    parse_is_classification,
)


def test_completion_continuation_starts_inside_item_nine():
    text = " Name three rivers in Africa.\n10. Sort the numbers from smallest to largest.\n11.  Explain\n   photosynthesis   simply."
    assert parse_instruction_list(text, 9, 15, completion=True) == [
        "Name three rivers in Africa.", "Sort the numbers from smallest to largest.", "Explain photosynthesis simply."]


def test_items_above_the_last_number_are_cut():
    text = " a b c d\n10. e f g h\n16. too far item here\n17. and more"
    assert parse_instruction_list(text, 9, 15, completion=True) == ["a b c d", "e f g h"]


def test_chat_reply_preamble_is_dropped_and_numbering_variants_parsed():
    text = "Sure! Here are some more tasks:\n\n9. Write a limerick about a cat.\n10) Translate 'good night' into Spanish.\n11 . Odd spacing here works"
    assert parse_instruction_list(text, 9, 15, completion=False) == [
        "Write a limerick about a cat.", "Translate 'good night' into Spanish.", "Odd spacing here works"]


def test_chat_reply_without_numbers_is_one_task():
    assert parse_instruction_list("Describe your favourite season.\n", 9, 15, completion=False) == [
        "Describe your favourite season."]


def test_empty_and_number_only_replies():
    assert parse_instruction_list("", 9, 15, completion=False) == []
    assert parse_instruction_list("   ", 9, 15, completion=True) == []
    assert parse_instruction_list("\n10. ", 9, 15, completion=True) == []


def test_restarted_numbering_is_kept_for_the_novelty_filter():
    assert parse_instruction_list("1. Copy of seed one\n2. Copy of seed two", 9, 15, completion=False) == [
        "Copy of seed one", "Copy of seed two"]


def test_capitalize_first_keeps_the_rest():
    assert capitalize_first("name the USA's capital") == "Name the USA's capital"
    assert capitalize_first("") == ""


def test_alpaca_tasks_noinput_truncation_and_malformed_blocks():
    text = (" Give an example of a renewable energy source.\n4. Input:\n<noinput>\n4. Output:\nSolar power.\n###\n"
            "5. Instruction: Fix the grammar.\n5. Input:\nShe go to school.\n5. Output:\nShe goes to school.\n###\n"
            "6. Instruction: broken block without fields\n###\n"
            "7. Instruction: Cut off\n7. Input:\n<noinput>\n7. Output:\nHalf")
    tasks = parse_alpaca_tasks(text, 4, truncated=True)
    assert [(t.instruction, t.input, t.output) for t in tasks] == [
        ("Give an example of a renewable energy source.", "", "Solar power."),
        ("Fix the grammar.", "She go to school.", "She goes to school."),
    ]
    assert len(parse_alpaca_tasks(text, 4, truncated=False)) == 3


def test_alpaca_chat_reply_that_repeats_the_head():
    text = "4. Instruction: Name a prime.\n4. Input:\n<noinput>\n4. Output:\n7"
    assert [(t.instruction, t.output) for t in parse_alpaca_tasks(text, 4, truncated=False, completion=False)] == [
        ("Name a prime.", "7")]


def test_is_classification_answers():
    for yes in (" Yes", "yes.", "YES, it is", "Yes!"):
        assert parse_is_classification(yes)
    for no in (" No", "", "Maybe", "not really", "Yesterday"):
        assert not parse_is_classification(no)


def test_input_output_split():
    assert parse_input_output("Sentence: hi there\nOutput: Hello there.") == ("Sentence: hi there", "Hello there.")
    assert parse_input_output("Just the answer") == ("", "Just the answer")
    assert parse_input_output("Input: 3, 1\nOutput: 1, 3\nInput 2: 9, 8") == ("3, 1", "1, 3")


def test_generation_instances_examples_single_and_truncated():
    text = "Example 1\nList: 3, 1, 2\nOutput: 1, 2, 3\nExample 2\nList: 9, 7\nOutput: 7, 9\nExample 3\nList: 5, 4\nOut"
    assert parse_generation_instances(text, truncated=True) == [("List: 3, 1, 2", "1, 2, 3"), ("List: 9, 7", "7, 9")]
    assert len(parse_generation_instances(text, truncated=False)) == 3
    assert parse_generation_instances("Output: Paris", truncated=False) == [("", "Paris")]
    assert parse_generation_instances("no structure at all", truncated=False) == []


def test_classification_instances_output_first():
    text = (" Positive\nReview: Loved it.\nClass label: Negative\nReview: Hated it.\nClass label: Neutral")
    assert parse_classification_instances("Class label:" + text, truncated=False) == [
        ("Review: Loved it.", "Positive"), ("Review: Hated it.", "Negative"), ("", "Neutral")]
    assert parse_classification_instances("Class label:" + text, truncated=True) == [
        ("Review: Loved it.", "Positive"), ("Review: Hated it.", "Negative")]
    assert parse_classification_instances("Positive: yes", truncated=False) == []


# -- replies recorded from the bundled model, and chat replies in the shapes chat models use ----

DATA = Path(__file__).parent / "data"


def _replies(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


def _parse(row: dict) -> list[str]:
    truncated = row["finish_reason"] == "length"
    completion = row["style"] == "completion"
    if row["preset"] == "alpaca":
        return [t.instruction for t in parse_alpaca_tasks(row["text"], row["first_number"], truncated, completion)]
    return parse_instruction_list(row["text"], row["first_number"], 15, completion)


@pytest.mark.parametrize("preset", ["self-instruct", "alpaca"])
def test_realistic_chat_replies_parse_to_the_tasks_they_hold(preset):
    rows = [r for r in _replies("replies_realistic.jsonl") if r["preset"] == preset]
    assert len(rows) >= 20
    for row in rows:
        assert _parse(row) == row["expected"], row["text"]


def _holds_tasks(row: dict) -> bool:
    text = row["text"]
    if row["preset"] == "alpaca":
        return bool(re.search(r"Instruction\s*:", text) and re.search(r"Output\s*:", text))
    return bool(text.strip())


@pytest.mark.parametrize("style", ["chat", "completion"])
def test_recorded_bundled_model_replies_never_parse_to_zero_tasks(style):
    rows = [r for r in _replies("replies_bundled.jsonl") if r["style"] == style]
    assert rows
    for row in rows:
        if _holds_tasks(row) and not (row["preset"] == "alpaca" and style == "completion"):
            assert _parse(row), row["text"]


def test_alpaca_chat_preamble_and_renumbering_no_longer_lose_the_reply():
    """The reply of issue 17: a preamble, then five good tasks numbered from 1."""
    text = "Sure! Here are some new tasks:\n\n" + "\n\n".join(
        f"{k}. Instruction: Name a fruit that starts with the letter {c}.\n{k}. Input:\n<noinput>\n{k}. Output:\n{f}"
        for k, (c, f) in enumerate([("A", "Apple"), ("B", "Banana"), ("C", "Cherry"), ("D", "Date"), ("E", "Elderberry")],
                                   start=1))
    assert len(parse_alpaca_tasks(text, 4, truncated=False, completion=False)) == 5
    assert parse_alpaca_tasks(text, 4, truncated=False, completion=True) == []  # the published parser loses it


def test_published_split_merges_parenthesised_numbers():
    """The published regex splits on "\\nN. " only: "10) ..." stays inside item 9, "11." splits."""
    text = " First task here now\n10) second task here\n11. Third task here now"
    assert parse_instruction_list(text, 9, 15, completion=True) == [
        "First task here now 10) second task here", "Third task here now"]


def test_chat_instance_replies_with_preamble_bold_and_commentary():
    text = ("Sure! Here are some examples for this task:\n\n**Example 1:**\n**Sentence:** the cat sat\n**Output:** The cat "
            "sat.\n\n**Example 2:**\nSentence: dogs bark\nOutput: Dogs bark.\n\nI hope these examples help!")
    assert parse_generation_instances(text, truncated=False, chat=True) == [
        ("Sentence: the cat sat", "The cat sat."), ("Sentence: dogs bark", "Dogs bark.")]
    clf = ("Here you go:\n\n**Class label:** Positive\nReview: Lovely food.\n\n**Class label:** Negative\n"
           "Review: Cold soup.\n\nLet me know if you need more.")
    assert parse_classification_instances(clf, truncated=False, chat=True) == [
        ("Review: Lovely food.", "Positive"), ("Review: Cold soup.", "Negative")]
