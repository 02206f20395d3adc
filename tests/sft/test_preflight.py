"""Preflight: truncation counted, empty samples dropped or fatal (--strict), end-of-turn token checked."""

from __future__ import annotations

import pytest

from curate.errors import CurateError
from curate.lm.render import IGNORE_INDEX, Rendered
from sft.preflight import check_samples

EOT = 2


def _sample(name: str, prompt: int, reply: int) -> Rendered:
    ids = [7] * prompt + [8] * reply + [EOT]
    labels = [IGNORE_INDEX] * prompt + [8] * reply + [EOT]
    return Rendered(name, ids, labels)


def test_nothing_to_report_when_everything_fits():
    lines = []
    kept, report = check_samples([_sample("a", 3, 2), _sample("b", 4, 1)], 16, EOT, "<eot>", False, say=lines.append)
    assert len(kept) == 2 and report.truncated == 0 and report.dropped_no_trainable == 0
    assert report.trainable_tokens == 3 + 2
    assert lines == []


def test_truncation_is_counted_with_an_example():
    lines = []
    samples = [_sample("short", 2, 2), _sample("long", 4, 10), _sample("longer", 4, 20)]
    kept, report = check_samples(samples, 10, EOT, "<eot>", False, say=lines.append)
    assert len(kept) == 3 and all(len(s.input_ids) <= 10 for s in kept)
    assert report.truncated == 2
    assert report.truncated_tokens_max == 4 + 20 + 1 - 10
    assert report.truncated_example == "long"
    assert report.lost_end_of_turn == 2 and report.lost_end_of_turn_example == "long"
    assert any("2 of 3 samples longer than max_length=10" in line and "long" in line for line in lines)
    assert any("lose their end-of-turn token" in line for line in lines)


def test_samples_with_nothing_left_to_train_are_dropped_and_counted():
    lines = []
    samples = [_sample("ok", 2, 2), _sample("prompt-too-long", 12, 3), _sample("also", 11, 1)]
    kept, report = check_samples(samples, 10, EOT, "<eot>", False, say=lines.append)
    assert [s.record_id for s in kept] == ["ok"]
    assert report.dropped_no_trainable == 2 and report.dropped_example == "prompt-too-long"
    assert any("2 samples have no trainable" in line and "dropped" in line for line in lines)


def test_strict_turns_a_drop_into_an_error():
    with pytest.raises(CurateError, match=r"train: 1 samples have no trainable .* record prompt-too-long"):
        check_samples([_sample("ok", 2, 2), _sample("prompt-too-long", 12, 3)], 10, EOT, "<eot>", True)


def test_missing_end_of_turn_in_labels_is_fatal():
    bad = Rendered("no-eot", [7, 7, 8, 8, EOT], [IGNORE_INDEX, IGNORE_INDEX, 8, 8, IGNORE_INDEX])
    with pytest.raises(CurateError, match=r"end-of-turn token '<eot>' is not in the labels of 1 samples .*no-eot"):
        check_samples([_sample("ok", 2, 2), bad], 16, EOT, "<eot>", False)


def test_no_sample_left_is_an_error():
    with pytest.raises(CurateError, match="no sample left"):
        check_samples([_sample("x", 20, 1)], 10, EOT, "<eot>", False, say=lambda line: None)
