"""Every instruction filter and instance rule, with the published constants."""

from __future__ import annotations

import pytest

from generators.instruction_rules import (
    ALPACA_BLACKLIST,
    conflicting_instances,
    dedupe_instances,
    instance_reject_reason,
    instruction_reject_reason,
)


@pytest.mark.parametrize("instruction, reason", [
    ("", "empty"),
    ("Too short here", "too_short"),                       # 3 words: "more than 3" fails
    ("Four words are enough", None),
    (" ".join(["word"] * 150), None),
    (" ".join(["word"] * 151), "too_long"),
    ("Describe the image in detail please", "blacklisted_keyword"),
    ("Describe the IMAGES in detail please", "blacklisted_keyword"),
    ("Explain how to Go To the station", "blacklisted_keyword"),
    ("Open the attached file and count lines", "blacklisted_keyword"),
    ("Plot the data you are given below", "blacklisted_keyword"),
    ("Explain what mapping means in mathematics", None),   # whole words only
    ("Describe a graphic novel you like", None),
    ("Write a program that prints the primes", "write_a_program"),
    ("write a program that prints the primes", "write_a_program"),  # published: tested after capitalize()
    ("WRITE A PROGRAM that prints the primes", "write_a_program"),
    ("$5 is what this costs, explain why", "starts_with_punctuation"),  # string.punctuation, not only \p{P}
    ("~ Tilde first, then four words", "starts_with_punctuation"),
    ("- List four colours of the rainbow", "starts_with_punctuation"),
    ("\"Quote\" this sentence back to me", "starts_with_punctuation"),
    ("Éxplain the French word café to me", "starts_with_non_ascii"),
    ("Write a poem about the first snow", None),
])
def test_instruction_filters(instruction, reason):
    assert instruction_reject_reason(instruction) == reason


def test_alpaca_blacklist_adds_media_words():
    assert len(ALPACA_BLACKLIST) == 18
    text = "Compose the music for a short video"
    assert instruction_reject_reason(text) is None
    assert instruction_reject_reason(text, blacklist=ALPACA_BLACKLIST) == "blacklisted_keyword"


def test_constants_are_configurable():
    assert instruction_reject_reason("Four words are enough", min_words=4) == "too_short"
    assert instruction_reject_reason("Describe the image in detail", blacklist=()) is None
    assert instruction_reject_reason("one two three four five", max_words=4) == "too_long"


@pytest.mark.parametrize("inp, out, reason", [
    ("same", "same", "input_equals_output"),
    ("", "", "input_equals_output"),
    ("Sentence: hi", "", "empty_output"),
    ("Sentence:", "Hello", "ends_with_colon"),
    ("Sentence: hi", "The answer is:", "ends_with_colon"),
    ("Sentence: hi", "Hello", None),
    ("", "A direct answer", None),
])
def test_instance_rules(inp, out, reason):
    assert instance_reject_reason(inp, out) == reason


def test_same_input_different_output_is_a_conflict():
    assert conflicting_instances([("x", "1"), ("y", "2"), ("x", "3")])
    assert not conflicting_instances([("x", "1"), ("x", "1"), ("y", "2")])
    assert not conflicting_instances([("", "1"), ("", "2")])  # empty inputs never conflict


def test_dedupe_keeps_first_occurrences_in_order():
    assert dedupe_instances([("a", "1"), ("b", "2"), ("a", "1")]) == [("a", "1"), ("b", "2")]


AGREEMENT = [
    "Describe the image in detail please", "Explain how to go  to the station", "Plot the data you are given",
    "Write a program that prints the primes", "WRITE A PROGRAM that prints primes", "write a program to sort",
    "- List four colours of the rainbow", "$5 is what this costs, explain why", "~ Tilde first, then four words",
    "Éxplain the French word café to me", "«Quote» this sentence back to me", "Too short here",
    " ".join(["word"] * 151), "Explain what mapping means in mathematics", "Write a poem about the first snow",
    "Suggest a name for a new bakery", "Open the attached FILE and count lines",
]


def test_filter_preset_makes_the_same_decisions():
    """curate.filtering's self-instruct preset and generation read the one definition: same verdicts."""
    import polars as pl

    from curate.filtering.rules import apply_filters, resolve_filters, resolve_thresholds

    names = [n for n in resolve_filters("self-instruct") if n.startswith(("instruction", "blacklisted", "write_a",
                                                                            "starts_with"))]
    frame = pl.DataFrame({"row": list(range(len(AGREEMENT))), "instruction": AGREEMENT,
                          "response": ["ok"] * len(AGREEMENT), "input": [""] * len(AGREEMENT)})
    reasons = apply_filters(frame, names, resolve_thresholds())["reason"].to_list()
    mapping = {"instruction_too_short": "too_short", "instruction_too_long": "too_long"}
    assert [mapping.get(r, r) for r in reasons] == [instruction_reject_reason(i) for i in AGREEMENT]
