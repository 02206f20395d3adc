"""The judge through a fake engine with queued replies, and the answer parser on its own."""

from __future__ import annotations

import pytest
from scoring_fixtures import make_records

from curate.scoring.judge import REMINDER, JudgeScorer, parse_judgement
from generators.engines.fake import FakeEngine


@pytest.mark.parametrize(("text", "expected"), [
    ('{"score": 4, "reason": "good"}', (4.0, "json")),
    ('```json\n{"score": 4.5, "reason": "fine"}\n```', (4.5, "json")),
    ('Sure! {"reason": "ok", "score": "3"}', (3.0, "json")),
    ("Score: 2", (2.0, "pattern")),
    ("I rate it 4/5 overall.", (4.0, "pattern")),
    ("Overall I would give this answer a 4.", (4.0, "number")),
    ("It is 3 out of 5.", (3.0, "pattern")),
])
def test_parser_reads_json_patterns_and_a_number_in_prose(text, expected):
    assert parse_judgement(text) == expected


@pytest.mark.parametrize("text", ["", "no idea", '{"score": 9}', "Score: 7", "between 2 and 3", '{"score": true}',
                                  "1. 1. 1. 1. 1.", REMINDER])
def test_parser_refuses_what_it_cannot_read(text):
    assert parse_judgement(text) is None


def test_judge_json_prose_garbage_and_refusal():
    rows = make_records(4, multi_turn_every=0)
    engine = FakeEngine()
    engine.enqueue('{"score": 5, "reason": "correct and complete"}')
    engine.enqueue("This reply is decent; I would give it a 3.")
    engine.enqueue("%%% <garbage> %%%")
    engine.enqueue("I'm sorry, but I can't evaluate this conversation.")
    engine.enqueue("still garbage")            # retry of row 3
    engine.enqueue("I cannot help with that.")  # retry of row 4
    results = JudgeScorer(engine=engine)(rows)
    assert results[0]["scores"] == {"judge": 5.0}
    assert results[0]["meta"]["raw"].startswith('{"score": 5')
    assert results[0]["meta"]["parsed_from"] == "json"
    assert results[1]["scores"] == {"judge": 3.0} and results[1]["meta"]["parsed_from"] == "number"
    assert "no score from 0 to 5 (after one retry)" in results[2]["error"]
    assert "garbage" in results[2]["error"]
    assert results[3]["error"].startswith("judge refused to rate")
    assert len(engine.requests) == 6
    assert all(r.temperature == 0.0 for r in engine.requests)
    assert engine.requests[4].prompt.endswith(REMINDER) and engine.requests[4].id == rows[2]["id"]
    assert rows[0]["messages"][0]["content"] in engine.requests[0].prompt


def test_garbage_then_valid_on_retry_is_scored_with_two_attempts():
    engine = FakeEngine().enqueue("hmm").enqueue('{"score": 2, "reason": "wrong sum"}')
    result = JudgeScorer(engine=engine)(make_records(1))[0]
    assert result["scores"] == {"judge": 2.0} and result["meta"]["attempts"] == 2


def test_engine_error_is_a_row_error():
    engine = FakeEngine().enqueue_error("HTTP 503").enqueue_error("HTTP 503")
    result = JudgeScorer(engine=engine)(make_records(1))[0]
    assert result["error"].startswith("judge engine error: HTTP 503")
