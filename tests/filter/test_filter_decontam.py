"""Decontamination: 13-gram overlap with an evaluation set's prompts or answers."""

from __future__ import annotations

import json

import polars as pl
from filter_data import record

from curate.filtering.decontam import find_contamination, load_eval_set

EVAL_PROMPT = ("Rewrite the following sentence so that it is shorter and clearer while keeping every fact "
               "that the original sentence contains about the meeting schedule")
EVAL_ANSWER = "The meeting moves to Tuesday at noon in the large room on the third floor of the old building"


def write_eval(tmp_path):
    rows = [
        {"id": "ev-1", "instruction": EVAL_PROMPT, "instances": [{"input": "", "output": EVAL_ANSWER}]},
        {"id": "ev-2", "instruction": "Name a prime number.", "instances": [{"input": "", "output": "Seven"}]},
    ]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def frame(records):
    return pl.DataFrame({
        "row": list(range(len(records))),
        "prompt": [r["messages"][0]["content"] for r in records],
        "response": [r["messages"][1]["content"] for r in records],
    })


def test_long_ngram_overlap_is_found_with_the_eval_id(tmp_path):
    eval_set = load_eval_set(write_eval(tmp_path), ngram=13)
    assert eval_set.rows == 2
    leaked_answer = "Sure. " + EVAL_ANSWER.upper() + "! Anything else?"
    rows = [
        record("Please help me with my notes for work.", leaked_answer),
        record("Intro text. " + EVAL_PROMPT + " ... and more", "Done."),
        record("Rewrite the following sentence so that it is shorter", "An unrelated answer about cats."),
    ]
    hits = find_contamination(frame(rows), eval_set)
    assert hits["row"].to_list() == [0, 1]
    assert hits["eval_id"].to_list() == ["ev-1", "ev-1"]
    assert "response shares" in hits["detail"][0] and "prompt shares" in hits["detail"][1]


def test_short_eval_texts_match_only_when_equal(tmp_path):
    eval_set = load_eval_set(write_eval(tmp_path), ngram=13)
    rows = [record("name a prime number", "Eleven"), record("Name a prime number and explain why.", "Two")]
    hits = find_contamination(frame(rows), eval_set)
    assert hits["row"].to_list() == [0]
    assert hits["eval_id"].to_list() == ["ev-2"]
