"""The record schema: ids, validation, helpers."""

from __future__ import annotations

import pytest

from curate.errors import RecordError
from curate.records import assistant_text, make_record, record_id, user_text, validate_record

CHAT = [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "Seven."}]


def test_id_ignores_whitespace_and_unicode_form_but_not_case_or_roles():
    spaced = [{"role": "user", "content": "  Name   a\nprime. "}, {"role": "assistant", "content": "Seven."}]
    decomposed = [{"role": "user", "content": "Cafe\u0301?"}, {"role": "assistant", "content": "Yes."}]
    composed = [{"role": "user", "content": "Caf\u00e9?"}, {"role": "assistant", "content": "Yes."}]
    assert record_id(spaced) == record_id(CHAT)
    assert record_id(decomposed) == record_id(composed)
    upper = [{"role": "user", "content": "NAME A PRIME."}, CHAT[1]]
    assert record_id(upper) != record_id(CHAT)
    swapped = [{"role": "assistant", "content": "Name a prime."}, {"role": "user", "content": "Seven."}]
    assert record_id(swapped) != record_id(CHAT)


def test_id_separates_turn_boundaries():
    joined = [{"role": "user", "content": "a b"}, {"role": "assistant", "content": "c"}]
    moved = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b c"}]
    assert record_id(joined) != record_id(moved)


def test_make_record_is_valid_and_keeps_meta_and_scores():
    record = make_record(CHAT, {"source": "test"}, {"judge": 7.5})
    assert validate_record(record) is record
    assert len(record["id"]) == 32
    assert record["meta"] == {"source": "test"}
    assert record["scores"] == {"judge": 7.5}
    assert user_text(record) == "Name a prime."
    assert assistant_text(record) == "Seven."


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.pop("messages"), "messages"),
        (lambda r: r.update(messages=[]), "messages"),
        (lambda r: r.update(messages="hi"), "messages"),
        (lambda r: r["messages"][1].update(role="bot"), "messages[1].role"),
        (lambda r: r["messages"][0].update(content=3), "messages[0].content"),
        (lambda r: r["messages"].pop(), "messages"),
        (lambda r: r.update(id=""), "id"),
        (lambda r: r.update(id="0" * 32), "id"),
        (lambda r: r.pop("meta"), "meta"),
        (lambda r: r.update(meta=[]), "meta"),
        (lambda r: r.update(scores={"judge": "high"}), "scores.judge"),
        (lambda r: r.update(scores={"judge": float("nan")}), "scores.judge"),
        (lambda r: r.update(extra=1), "extra"),
    ],
)
def test_validation_names_the_field(mutate, field):
    record = make_record(CHAT, {"source": "test"})
    mutate(record)
    with pytest.raises(RecordError) as err:
        validate_record(record)
    assert err.value.field == field


def test_rejected_rows_may_carry_reject():
    record = make_record(CHAT, {})
    record["reject"] = {"stage": "quality", "reason": "too_short", "detail": "2 words"}
    assert validate_record(record)["reject"]["reason"] == "too_short"


@pytest.mark.parametrize("text", [
    "plain ascii  text\twith\nwhitespace ", "\u00a0nbsp\u2003em\u3000ideographic\u2028line\x1c\x1f\x85 end",
    "zero\u200bwidth is not space", "Cafe\u0301 decomposed and café composed", "", "   ", "ﬁ ligature Ω ohm",
])
def test_normalize_text_is_nfc_then_collapsed_unicode_whitespace(text):
    import re
    import unicodedata

    from curate.records import normalize_text

    assert normalize_text(text) == re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()
