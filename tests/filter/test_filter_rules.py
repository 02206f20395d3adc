"""Each quality filter fires on the row it targets and stays quiet on a clean one."""

from __future__ import annotations

import polars as pl
import pytest
from filter_data import record

from curate.errors import CurateError
from curate.filtering import rules as ff
from curate.filtering.extract import Columns
from curate.filtering.settings import FilterConfig


def frame_of(records: list[dict], preset: str = "sft") -> pl.DataFrame:
    columns = Columns(FilterConfig(preset=preset))
    for i, rec in enumerate(records):
        columns.add(i + 1, rec)
    return columns.frame(0)


def reasons(records: list[dict], preset: str = "sft", **thresholds: object) -> list[str | None]:
    t = ff.resolve_thresholds(thresholds)
    out = ff.apply_filters(frame_of(records, preset), ff.resolve_filters(preset), t)
    return out["reason"].to_list()



CLEAN_PROMPT = "Explain why the sky looks blue on a clear afternoon."
CLEAN_RESPONSE = ("Sunlight is scattered by the molecules of the air, and blue light is scattered much more "
                  "than red light because its wavelength is shorter, so the sky looks blue.")

REPEATED = " ".join(["the cat sat on the mat"] * 20)
DUP_LINES = "\n".join(["Buy now and save money today."] * 6 + ["A different closing line here."])


@pytest.mark.parametrize(("prompt", "response", "meta", "expected"), [
    (CLEAN_PROMPT, CLEAN_RESPONSE, {}, None),
    (CLEAN_PROMPT, "   ", {}, "empty_turn"),
    (CLEAN_PROMPT, CLEAN_RESPONSE, {"finish_reason": "length"}, "truncated"),
    (CLEAN_PROMPT, CLEAN_PROMPT.upper() + "  ", {}, "response_equals_prompt"),
    (CLEAN_PROMPT, "As an AI language model, I think the sky is blue because of scattering.", {}, "boilerplate"),
    (CLEAN_PROMPT, "I'm sorry, but I can't help with that request today.", {}, "refusal"),
    (CLEAN_PROMPT, " ".join(["word"] * 2500), {}, "response_too_long"),
    (CLEAN_PROMPT, CLEAN_RESPONSE, {"tokens_out": 5000}, "response_too_long_tokens"),
    (" ".join(["ask"] * 4100), CLEAN_RESPONSE, {}, "prompt_too_long"),
    (CLEAN_PROMPT, DUP_LINES + " " + " ".join(["filler"] * 10) + " " + " ".join(f"w{i}" for i in range(40)),
     {}, "duplicate_lines"),
    (CLEAN_PROMPT, REPEATED, {}, "repeated_2gram"),
    (CLEAN_PROMPT, "ok " + "\u2605\u2606\u2665\u2666" * 20, {}, "non_text"),
])
def test_sft_filter_fires_on_its_target(prompt, response, meta, expected):
    assert reasons([record(prompt, response, **meta)]) == [expected]


def test_refusal_phrase_later_in_the_text_is_not_a_refusal():
    text = "The sky is blue. Some people say I cannot see colours at night, which is true for rods."
    assert reasons([record(CLEAN_PROMPT, text)]) == [None]


def test_detail_says_why():
    t = ff.resolve_thresholds({})
    out = ff.apply_filters(frame_of([record(CLEAN_PROMPT, "As an AI language model, no.")]), ["boilerplate"], t)
    assert out["detail"][0] == "contains 'as an ai language model'"


def test_wrong_language_only_when_a_language_is_asked():
    german = ("Der Himmel ist blau, weil das Licht der Sonne an den Molekülen der Luft gestreut wird und "
              "das blaue Licht stärker gestreut wird als das rote.")
    rows = [record(CLEAN_PROMPT, german), record(CLEAN_PROMPT, CLEAN_RESPONSE)]
    assert reasons(rows) == [None, None]
    assert reasons(rows, language="en") == ["wrong_language", None]
    assert reasons([record(CLEAN_PROMPT, german, language="de")], language="en") == [None]
    assert reasons([record(CLEAN_PROMPT, "这是一个关于天空为什么是蓝色的很长的回答，因为阳光被空气散射了很多次。" * 2)],
                   language="zh", language_min_words=1) == [None]


@pytest.mark.parametrize(("instruction", "output", "given", "expected"), [
    ("Summarize the following paragraph in two sentences.", "A summary.", "", None),
    ("Summarize this.", "A summary.", "", "instruction_too_short"),
    ("Describe the image below in a few words please.", "A cat.", "", "blacklisted_keyword"),
    ("Please go to the website and tell me about it.", "No.", "", "blacklisted_keyword"),
    ("Write a program that prints the first ten primes.", "print(2)", "", "write_a_program"),
    ("- List three colours that you find calming.", "Blue", "", "starts_with_punctuation"),
    ("Éxplain the rules of chess to a young child.", "Sure", "", "starts_with_non_ascii"),
    ("Repeat the input sentence back word for word.", "Hello there", "Hello there", "input_equals_output"),
    ("Give a title for the following short story.", "Title:", "", "ends_with_colon"),
])
def test_self_instruct_rules(instruction, output, given, expected):
    user = instruction + (f"\n\n{given}" if given else "")
    row = record(user, output, instruction=instruction, input=given)
    assert reasons([row], preset="self-instruct") == [expected]


def test_first_failing_filter_names_the_reason():
    row = record(CLEAN_PROMPT, "As an AI language model, I'm sorry, but no.", finish_reason="length")
    assert reasons([row]) == ["truncated"]


def test_unknown_threshold_and_filter_are_errors():
    with pytest.raises(CurateError, match="unknown threshold 'max_wordz'"):
        ff.resolve_thresholds({"max_wordz": 3})
    with pytest.raises(CurateError, match="unknown filter 'nope'"):
        ff.resolve_filters("sft", ["nope"])
    with pytest.raises(CurateError, match="unknown preset"):
        ff.resolve_filters("best")


def test_every_threshold_is_documented_and_every_preset_resolves():
    docs = ff.describe()
    assert all(d["doc"] for d in docs["thresholds"].values())
    for preset in ff.PRESETS:
        assert ff.resolve_filters(preset) == ff.PRESETS[preset]


def test_language_detail_names_the_detected_language():
    french = "Le ciel est bleu parce que la lumière du soleil est diffusée par les molécules de l'air."
    t = ff.resolve_thresholds({"language": "en"})
    out = ff.apply_filters(frame_of([record(CLEAN_PROMPT, french)]), ["wrong_language"], t)
    assert out["reason"][0] == "wrong_language" and out["detail"][0] == "detected fr, not en"


def test_token_thresholds_count_with_a_named_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()  # one token per word or punctuation mark
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]").save_pretrained(tmp_path / "tok")
    response = "word " * 30  # 150 characters: 38 tokens by characters / 4, 30 by the tokenizer
    rows = [record(CLEAN_PROMPT, response.strip())]
    by_chars = ff.resolve_thresholds({"max_response_tokens": 35})
    by_tokenizer = ff.resolve_thresholds({"max_response_tokens": 35, "tokenizer": str(tmp_path / "tok")})
    assert ff.apply_filters(frame_of(rows), ["response_too_long_tokens"], by_chars)["reason"][0] == \
        "response_too_long_tokens"
    assert ff.apply_filters(frame_of(rows), ["response_too_long_tokens"], by_tokenizer)["reason"][0] is None
