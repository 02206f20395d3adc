"""Labels: prompt tokens are -100; assistant tokens and the end-of-turn token are trained."""

from __future__ import annotations

import pytest

from curate.errors import CurateError
from curate.lm.render import IGNORE_INDEX, end_of_turn_token, render_record, render_records, template_hash
from curate.records import make_record


def _trained_text(tokenizer, rendered) -> str:
    return tokenizer.decode([t for t, label in zip(rendered.input_ids, rendered.labels, strict=True)
                             if label != IGNORE_INDEX])


def _runs(rendered) -> list[list[int]]:
    """Maximal runs of consecutive trained positions."""
    runs, current = [], []
    for position, label in enumerate(rendered.labels):
        if label != IGNORE_INDEX:
            current.append(position)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def test_end_of_turn_token_is_found_from_the_template(tiny_tokenizer):
    assert end_of_turn_token(tiny_tokenizer) == "<|im_end|>"


def test_single_turn_trains_only_the_reply_and_its_end_of_turn(tiny_tokenizer):
    record = make_record([{"role": "user", "content": "what is two plus three"},
                          {"role": "assistant", "content": "five"}])
    rendered = render_record(tiny_tokenizer, record, "<|im_end|>")
    eot_id = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert _trained_text(tiny_tokenizer, rendered) == "five<|im_end|>"
    # every trained label equals its input token (labels are shifted inside the model, not here)
    for token, label in zip(rendered.input_ids, rendered.labels, strict=True):
        assert label in (IGNORE_INDEX, token)
    # the prompt, including the user's own end-of-turn token and the assistant header, is masked
    first_trained = rendered.labels.index(next(label for label in rendered.labels if label != IGNORE_INDEX))
    prompt_text = tiny_tokenizer.decode(rendered.input_ids[:first_trained])
    assert prompt_text == "<|im_start|>user\nwhat is two plus three<|im_end|>\n<|im_start|>assistant\n"
    assert rendered.labels[:first_trained] == [IGNORE_INDEX] * first_trained
    # the end-of-turn token closing the reply is trained; the newline the template adds after it is not
    last_trained = max(i for i, label in enumerate(rendered.labels) if label != IGNORE_INDEX)
    assert rendered.labels[last_trained] == eot_id
    assert all(label == IGNORE_INDEX for label in rendered.labels[last_trained + 1:])
    assert last_trained + 1 < len(rendered.labels)


def test_multi_turn_trains_every_assistant_turn_and_no_user_turn(tiny_tokenizer):
    record = make_record([
        {"role": "system", "content": "answer briefly"},
        {"role": "user", "content": "name a color"},
        {"role": "assistant", "content": "red"},
        {"role": "user", "content": "one more please"},
        {"role": "assistant", "content": "blue and green"},
    ])
    rendered = render_record(tiny_tokenizer, record, "<|im_end|>")
    runs = _runs(rendered)
    assert len(runs) == 2
    decoded = [tiny_tokenizer.decode([rendered.input_ids[i] for i in run]) for run in runs]
    assert decoded == ["red<|im_end|>", "blue and green<|im_end|>"]
    masked = tiny_tokenizer.decode([t for t, label in zip(rendered.input_ids, rendered.labels, strict=True)
                                    if label == IGNORE_INDEX])
    for text in ("answer briefly", "name a color", "one more please"):
        assert text in masked
    assert rendered.trainable == sum(len(run) for run in runs)


def test_record_without_assistant_turn_has_nothing_to_train(tiny_tokenizer):
    # the schema requires an assistant turn; a hand-built dict stands in for a prompt-only row
    record = {"id": "x", "messages": [{"role": "user", "content": "hello"}]}
    assert render_record(tiny_tokenizer, record, "<|im_end|>").trainable == 0


def test_template_that_rewrites_earlier_turns_is_refused(tiny_tokenizer):
    import copy

    bad = copy.deepcopy(tiny_tokenizer)
    # renders the number of messages up front: adding a turn changes the beginning of the text
    bad.chat_template = ("{{ messages|length }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                         "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    record = make_record([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    with pytest.raises(CurateError, match="renders turn 1 differently"):
        render_record(bad, record, "<|im_end|>")


def test_template_hash_changes_with_the_template(tiny_tokenizer):
    import copy

    other = copy.deepcopy(tiny_tokenizer)
    other.chat_template = tiny_tokenizer.chat_template + " "
    assert template_hash(other) != template_hash(tiny_tokenizer)


def test_render_records_finds_the_end_of_turn_itself(tiny_tokenizer):
    records = [make_record([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}])]
    (rendered,) = render_records(tiny_tokenizer, records)
    assert _trained_text(tiny_tokenizer, rendered) == "yes<|im_end|>"
