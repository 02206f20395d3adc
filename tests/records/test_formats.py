"""Converters: every format round-trips (import -> convert -> import gives identical records)."""

from __future__ import annotations

import json

import pytest

from curate.errors import CurateError, RecordError
from curate.records.convert import export_file, import_file
from curate.records.formats import FORMATS, detect_format
from curate.records.jsonl import read_records

# Real-shaped rows, one list per format, with the quirks real dumps have.
SAMPLES = {
    "alpaca": [
        {"instruction": "Give three tips for staying healthy.", "input": "",
         "output": "1. Eat a balanced diet.\n2. Exercise regularly.\n3. Get enough sleep."},
        {"instruction": "Translate the sentence to French.", "input": "The cat sleeps.",
         "output": "Le chat dort.", "id": "alp-2", "text": "legacy column"},
        {"instruction": "Answer briefly.", "output": "Sure.", "system": "You are terse."},
    ],
    "self-instruct": [
        {"id": "seed_task_0", "name": "breakfast_suggestion",
         "instruction": "Is there anything I can eat for a breakfast that doesn't include eggs?",
         "instances": [{"input": "", "output": "Yes: oatmeal with fruit, or yogurt with granola."}],
         "is_classification": False},
        {"id": "seed_task_1", "name": "sentiment", "instruction": "Classify the sentiment: positive or negative.",
         "instances": [{"input": "I loved it.", "output": "positive"}, {"input": "Awful.", "output": "negative"}],
         "is_classification": True},
        {"id": 7, "instruction": "Rewrite more politely.", "instances": [{"input": "Send it now.",
         "output": "Could you send it when you have a moment?"}], "motivation_app": "Gmail"},
    ],
    "sharegpt": [
        {"id": "conv-1", "conversations": [
            {"from": "system", "value": "Be kind."},
            {"from": "human", "value": "Hi! What is 2+2?"}, {"from": "gpt", "value": "4."},
            {"from": "human", "value": "And times 3?"}, {"from": "gpt", "value": "12."}]},
        {"conversations": [{"from": "human", "value": "Tell a joke."}, {"from": "gpt", "value": "Knock knock."}],
         "model": "gpt-4"},
    ],
    "dolly": [
        {"instruction": "When did Virgin Australia start operating?",
         "context": "Virgin Australia commenced services on 31 August 2000 as Virgin Blue.",
         "response": "Virgin Australia started on 31 August 2000.", "category": "closed_qa"},
        {"instruction": "Name some fruits.", "context": "", "response": "Apple, pear, plum.",
         "category": "brainstorming"},
    ],
    "prompt-completion": [
        {"prompt": "Review: great film.\nIs this review positive or negative?", "completion": " positive<|endoftext|>"},
        {"prompt": "Q: capital of Peru?\nA:", "completion": " Lima", "id": 12},
    ],
    "messages": [
        {"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there."}]},
        {"id": "m-2", "messages": [{"role": "system", "content": "Pirate voice."},
                                   {"role": "user", "content": "Hello", "name": "bob"},
                                   {"role": "assistant", "content": "Arr."}],
         "meta": {"source": "chat-log", "lang": "en"}, "scores": {"judge": 6.0}, "split": "train"},
    ],
}


def _write(path, rows, as_array=False):
    if as_array:
        path.write_text(json.dumps(rows, indent=2))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_round_trip(tmp_path, name, suffix):
    source = _write(tmp_path / f"src{suffix}", SAMPLES[name], as_array=suffix == ".json")
    first = import_file(source, tmp_path / "a.jsonl", source_name="src")
    assert first.format == name
    assert first.records == len(SAMPLES[name])
    back = tmp_path / f"back{suffix}"
    assert export_file(tmp_path / "a.jsonl", back, name) == len(SAMPLES[name])
    import_file(back, tmp_path / "b.jsonl", name, source_name="src")
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    meta = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])["meta"]
    if name != "messages":  # where the rows came from and the format they had are two fields
        assert (meta["source"], meta["format"]) == ("src", name)


def test_self_instruct_and_alpaca_rows_come_back_exactly(tmp_path):
    for name in ("self-instruct", "dolly"):
        source = _write(tmp_path / "src.jsonl", SAMPLES[name])
        import_file(source, tmp_path / "r.jsonl", name)
        export_file(tmp_path / "r.jsonl", tmp_path / "back.jsonl", name)
        back = [json.loads(line) for line in (tmp_path / "back.jsonl").read_text().splitlines()]
        assert back == SAMPLES[name]


def test_import_keeps_source_ids_extras_and_all_instances(tmp_path):
    source = _write(tmp_path / "src.jsonl", SAMPLES["alpaca"])
    import_file(source, tmp_path / "r.jsonl")
    records = list(read_records(tmp_path / "r.jsonl"))
    assert records[1]["meta"]["source_id"] == "alp-2"
    assert records[1]["meta"]["extra"] == {"text": "legacy column"}
    assert records[1]["messages"][0]["content"] == "Translate the sentence to French.\n\nThe cat sleeps."
    assert records[2]["messages"][0] == {"role": "system", "content": "You are terse."}
    seeds = _write(tmp_path / "seeds.jsonl", SAMPLES["self-instruct"])
    import_file(seeds, tmp_path / "s.jsonl")
    second = list(read_records(tmp_path / "s.jsonl"))[1]
    assert second["meta"]["is_classification"] is True
    assert len(second["meta"]["instances"]) == 2


def test_sharegpt_maps_speakers_to_roles(tmp_path):
    source = _write(tmp_path / "src.jsonl", SAMPLES["sharegpt"])
    import_file(source, tmp_path / "r.jsonl")
    record = next(read_records(tmp_path / "r.jsonl"))
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant", "user", "assistant"]


def test_multi_turn_cannot_become_alpaca(tmp_path):
    source = _write(tmp_path / "src.jsonl", SAMPLES["sharegpt"][:1])
    import_file(source, tmp_path / "r.jsonl")
    with pytest.raises(CurateError, match="use --to sharegpt"):
        export_file(tmp_path / "r.jsonl", tmp_path / "out.json", "alpaca")
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    ("name", "row", "field"),
    [
        ("alpaca", {"instruction": "x"}, "output"),
        ("alpaca", {"instruction": 3, "output": "y"}, "instruction"),
        ("self-instruct", {"instruction": "x", "instances": []}, "instances"),
        ("self-instruct", {"instruction": "x", "instances": [{"input": ""}]}, "instances[0].output"),
        ("sharegpt", {"conversations": [{"from": "alien", "value": "x"}]}, "conversations[0].from"),
        ("sharegpt", {"conversations": [{"from": "human", "value": "only a question"}]}, "messages"),
        ("dolly", {"instruction": "x", "response": None}, "response"),
        ("prompt-completion", {"prompt": "x", "completion": ["y"]}, "completion"),
        ("messages", {"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ],
)
def test_bad_rows_name_the_field(name, row, field):
    with pytest.raises(RecordError) as err:
        FORMATS[name].to_record(row)
    assert err.value.field == field


def test_detection_says_what_it_needs():
    assert detect_format({"instruction": "a", "input": "", "output": "b"}).name == "alpaca"
    assert detect_format({"instruction": "a", "context": "", "response": "b"}).name == "dolly"
    with pytest.raises(CurateError, match="pass --format"):
        detect_format({"question": "a", "answer": "b"})
