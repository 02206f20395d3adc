"""The Self-Instruct and Alpaca algorithms, driven by a fake engine with queued replies."""

from __future__ import annotations

import json
import random

import pytest

from curate.records import validate_record
from generators.config import build_config
from generators.engines.fake import FakeEngine
from generators.run import generate
from generators.seeds import load_seeds
from generators.self_instruct import PoolTask, SelfInstruct
from generators.templates import load_template

CLASSIFY_HEAD = load_template("self_instruct_classify").text.splitlines()[0]
CLF_HEAD = load_template("self_instruct_instances_clf").text.splitlines()[0]
GEN_HEAD = load_template("self_instruct_instances_gen").text.splitlines()[0]


def algo(seeds_file, completion=True, **overrides) -> SelfInstruct:
    config = build_config(**overrides)
    return SelfInstruct(config, load_seeds(seeds_file), {"name": "fake", "model": "fake-teacher"}, completion, "run1")


def rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def kind(prompt: str) -> str:
    for head, name in ((CLASSIFY_HEAD, "classify"), (CLF_HEAD, "clf"), (GEN_HEAD, "gen")):
        if prompt.startswith(head):
            return name
    return "instructions"


def test_instruction_prompt_exact_text(seeds_file):
    a = algo(seeds_file)
    context = [PoolTask("a", "Say  hello\n to the user:"), PoolTask("b", "Count the words in the sentence.")]
    assert a.render_instruction_prompt(context) == (
        "Come up with a series of new and diverse tasks, one instruction per numbered line:\n"
        "1. Say hello to the user\n"
        "2. Count the words in the sentence.\n"
        "3."
    )


def test_alpaca_prompt_exact_tail(seeds_file):
    a = algo(seeds_file, preset="alpaca")
    context = [PoolTask("a", "Name a prime number.", "", "7"), PoolTask("b", "Fix the grammar.", "She go.", "She goes.")]
    prompt = a.render_instruction_prompt(context)
    assert prompt.startswith("You are asked to come up with a set of 20 diverse task instructions.")
    assert prompt.endswith(
        "List of 20 tasks:\n"
        "###\n1. Instruction: Name a prime number.\n1. Input:\n<noinput>\n1. Output:\n7\n"
        "###\n2. Instruction: Fix the grammar.\n2. Input:\nShe go.\n2. Output:\nShe goes.\n"
        "###\n3. Instruction:"
    )


def test_classify_and_instance_prompts_end_with_the_task(seeds_file):
    for name, tail in (("self_instruct_classify", "Task: Sort the list.\nIs it classification?"),
                       ("self_instruct_instances_clf", "\n\nTask: Sort the list.\n"),   # published: a newline follows
                       ("self_instruct_instances_gen", "\n\nTask: Sort the list.\n")):
        assert load_template(name).render(instruction="Sort the list.").endswith(tail)


def test_in_context_sampling_six_seeds_two_machine_and_seeds_fill_in(seeds_file):
    a = algo(seeds_file)
    seed_ids = {s.id for s in a.seeds}
    requests, contexts = a.build_requests(random.Random(0), 0)
    assert len(requests) == 5
    for context in contexts:  # no machine tasks yet: all 8 are seeds
        assert len(context) == 8 and set(context) <= seed_ids and len(set(context)) == 8
    for i in range(3):
        a.add_to_pool(PoolTask(f"m{i}", f"Machine generated instruction number {i} here"))
    requests, contexts = a.build_requests(random.Random(0), 1)
    for request, context in zip(requests, contexts, strict=True):
        assert sum(i.startswith("m") for i in context) == 2
        assert sum(i in seed_ids for i in context) == 6
        lines = request.prompt.splitlines()
        assert lines[-1] == "9." and [line.split(".")[0] for line in lines[1:9]] == [str(k) for k in range(1, 9)]


def test_in_context_sampling_is_deterministic_per_seed(seeds_file):
    one = algo(seeds_file).build_requests(random.Random("42:0"), 0)[1]
    two = algo(seeds_file).build_requests(random.Random("42:0"), 0)[1]
    other = algo(seeds_file).build_requests(random.Random("43:0"), 0)[1]
    assert one == two and one != other


def scripted_teacher(instruction_replies, clf_words=("Classify",), instances=None):
    """Replies by prompt kind: instruction lists in order; Yes for classification-looking tasks."""
    replies = iter(instruction_replies)

    def reply(request):
        k = kind(request.prompt)
        task = request.prompt.rsplit("Task: ", 1)[-1]
        if k == "instructions":
            return next(replies, " Nothing new here at all")
        if k == "classify":
            return " Yes" if any(w in task for w in clf_words) else " No"
        if instances and task.split("\n")[0] in instances:
            return instances[task.split("\n")[0]]
        if k == "clf":
            return "Class label: Positive\nReview: Great value.\nClass label: Negative\nReview: Broke in a day."
        return "Example 1\nSentence: the cat sat\nOutput: The cat sat.\nExample 2\nSentence: dogs bark\nOutput: Dogs bark."

    return reply


def test_classification_routing_and_records(seeds_file, tmp_path):
    reply = scripted_teacher([" Classify the product review as positive or negative.\n10. Capitalize the first word of the sentence."])
    engine = FakeEngine(default=reply)
    out = tmp_path / "generated.jsonl"
    summary = generate(build_config(num_instructions=2, request_batch_size=1), seeds_file, out, engine, progress=False)
    assert summary.status == "complete"
    kinds = [kind(r.prompt) for r in engine.requests]
    assert kinds == ["instructions", "classify", "classify", "clf", "gen"]
    classify = [r for r in engine.requests if kind(r.prompt) == "classify"]
    assert all(r.max_tokens == 3 and r.temperature == 0.0 and r.stop == ["\n", "Task"] for r in classify)
    instance_requests = [r for r in engine.requests if kind(r.prompt) in ("clf", "gen")]
    assert [r.max_tokens for r in instance_requests] == [300, 350]
    assert all(r.stop == ["Example 6", "Task:"] for r in instance_requests)

    records = rows(out)
    assert len(records) == 4
    for record in records:
        validate_record(record)
    clf = [r for r in records if r["meta"]["is_classification"]]
    assert [(r["meta"]["input"], r["messages"][1]["content"]) for r in clf] == [
        ("Review: Great value.", "Positive"), ("Review: Broke in a day.", "Negative")]
    assert clf[0]["messages"][0]["content"] == "Classify the product review as positive or negative.\n\nReview: Great value."
    gen = [r for r in records if not r["meta"]["is_classification"]]
    assert gen[0]["meta"]["prompt_template"].startswith("self_instruct_instances_gen@")
    assert clf[0]["meta"]["prompt_template"].startswith("self_instruct_instances_clf@")
    meta = records[0]["meta"]
    for key in ("teacher", "engine", "sampling", "prompt_template", "seed_ids", "finish_reason", "tokens_in",
                "tokens_out", "created_at", "run_id", "instruction", "input", "is_classification", "most_similar",
                "avg_similarity_score"):
        assert key in meta, key
    assert meta["teacher"] == "fake-teacher" and meta["engine"] == "fake"
    assert len(meta["seed_ids"]) == 8 and meta["sampling"]["instructions"]["temperature"] == 0.7
    assert len(meta["most_similar"]) == 10
    assert meta["most_similar"][0]["score"] >= meta["most_similar"][-1]["score"]


def test_truncated_response_is_dropped_whole(seeds_file, tmp_path):
    engine = FakeEngine(default=scripted_teacher([]))
    engine.enqueue(" Classify the weather report as sunny or rainy.\n10. Another fine task to do", finish_reason="length")
    out = tmp_path / "generated.jsonl"
    summary = generate(build_config(num_instructions=1, request_batch_size=1, stall_batches=1), seeds_file, out,
                       engine, progress=False)
    assert summary.status == "stalled"
    assert summary.totals.rejected["truncated_response"] == 1
    assert not out.read_text()


def test_novelty_rejects_seed_copies_and_in_batch_duplicates(seeds_file, tmp_path):
    reply = scripted_teacher([
        " Decide whether the movie review is positive or negative.\n"        # a seed, verbatim
        "10. Name the capital city of the given country.\n"
        "11. Name the capital city of the given country please.\n"           # near-copy of item 10
        "12. Describe the picture on the wall in detail.\n"                  # blacklisted
        "13. Write a program to add two numbers together.\n"
        "14. Hi"])
    engine = FakeEngine(default=reply)
    out = tmp_path / "generated.jsonl"
    summary = generate(build_config(num_instructions=1, request_batch_size=1), seeds_file, out, engine, progress=False)
    rejected = rows(tmp_path / "rejected_candidates.jsonl")
    reasons = {r["instruction"]: r["reason"] for r in rejected}
    assert reasons["Decide whether the movie review is positive or negative."] == "too_similar"
    assert reasons["Name the capital city of the given country please."] == "too_similar"
    assert reasons["Describe the picture on the wall in detail."] == "blacklisted_keyword"
    assert reasons["Write a program to add two numbers together."] == "write_a_program"
    assert reasons["Hi"] == "too_short"
    similar = next(r for r in rejected if r["instruction"].endswith("please."))
    assert similar["detail"]["most_similar"] == "Name the capital city of the given country."
    assert similar["detail"]["rouge_l"] > 0.7
    assert summary.totals.instructions_accepted == 1
    assert summary.totals.candidates == 6


def test_instance_rules_conflicts_and_max_instances(seeds_file, tmp_path):
    many = "\n".join(f"Example {k}\nNumber: {k}\nOutput: {k * 2}" for k in range(1, 9))
    instances = {
        "Double the given number and print it.": many,
        "Answer with the country that the city is in.":
            "Example 1\nCity: Paris\nOutput: France\nExample 2\nCity: Paris\nOutput: Spain",
        "Repeat the word that you are given.":
            "Example 1\nWord: hello\nOutput:\nExample 2\nhi\nOutput: hi\nExample 3\nWord: sun\nOutput: sun sun\n"
            "Example 4\nWord: moon\nOutput: The answer is:",
        "Write the opposite of the given word.": "Example 1\nWord: hot\nOutput: ",
    }
    reply = scripted_teacher([" Double the given number and print it.\n10. Answer with the country that the city is in."
                              "\n11. Repeat the word that you are given.\n12. Write the opposite of the given word."],
                             instances=instances)
    out = tmp_path / "generated.jsonl"
    summary = generate(build_config(num_instructions=4, request_batch_size=1, stall_batches=1), seeds_file, out,
                       FakeEngine(default=reply), progress=False)
    records = rows(out)
    by_instruction: dict[str, list] = {}
    for r in records:
        by_instruction.setdefault(r["meta"]["instruction"], []).append(r)
    assert len(by_instruction["Double the given number and print it."]) == 5  # 8 valid, at most 5 kept
    assert [r["messages"][1]["content"] for r in by_instruction["Repeat the word that you are given."]] == ["sun sun"]
    assert "Answer with the country that the city is in." not in by_instruction
    assert "Write the opposite of the given word." not in by_instruction
    rejected = [r for r in rows(tmp_path / "rejected_candidates.jsonl") if r["batch"] == 0]
    reasons = sorted(r["reason"] for r in rejected)
    assert reasons == ["conflicting_instances", "empty_output", "empty_output", "ends_with_colon",
                       "input_equals_output", "no_valid_instances"]
    assert {r["instruction"] for r in rejected if r["stage"] == "task"} == {
        "Answer with the country that the city is in.", "Write the opposite of the given word."}
    assert summary.totals.instructions_accepted >= 2


def test_failed_requests_become_error_rows(seeds_file, tmp_path):
    engine = FakeEngine(default=scripted_teacher([" Tell me a fun fact about octopuses.\n10. Give me a synonym for happy please."]))
    engine.enqueue_error("HTTP 503: overloaded")                     # first instruction request fails
    out = tmp_path / "generated.jsonl"
    summary = generate(build_config(num_instructions=2, request_batch_size=1), seeds_file, out, engine, progress=False)
    errors = rows(tmp_path / "errors.jsonl")
    assert errors[0]["stage"] == "instructions" and errors[0]["error"] == "HTTP 503: overloaded"
    assert errors[0]["batch"] == 0 and errors[0]["request_id"] == "b0-instructions-0"
    assert summary.totals.errors == len(errors) == summary.totals.failed_requests == 1
    assert summary.totals.instructions_accepted == 2


def test_failed_classification_counts_as_not_classification(seeds_file, tmp_path):
    """As published: a task whose classification request fails goes on as a generation task."""
    engine = FakeEngine(default=scripted_teacher([], clf_words=("octopuses",)))
    engine.enqueue(" Tell me a fun fact about octopuses.\n10. Give me a synonym for happy please.")
    engine.enqueue_error("timeout")  # the first classification request
    out = tmp_path / "generated.jsonl"
    summary = generate(build_config(num_instructions=1, request_batch_size=1), seeds_file, out, engine, progress=False)
    errors = rows(tmp_path / "errors.jsonl")
    assert errors[0]["stage"] == "classification" and errors[0]["instruction"] == "Tell me a fun fact about octopuses."
    records = rows(out)
    assert {r["meta"]["instruction"] for r in records} == {"Tell me a fun fact about octopuses."}
    assert all(r["meta"]["is_classification"] is False for r in records)
    assert summary.totals.instructions_accepted == 1


def test_over_target_candidates_are_not_completed(seeds_file, tmp_path):
    reply = scripted_teacher([" Tell me a fun fact about octopuses.\n10. Give me a synonym for happy please.\n"
                              "11. Recommend a board game for four players."])
    engine = FakeEngine(default=reply)
    out = tmp_path / "generated.jsonl"
    summary = generate(build_config(num_instructions=1, request_batch_size=1), seeds_file, out, engine, progress=False)
    assert summary.totals.rejected["over_target"] == 2
    assert [kind(r.prompt) for r in engine.requests] == ["instructions", "classify", "gen"]


def test_alpaca_preset(seeds_file, tmp_path):
    reply = (" Give an example of a renewable energy source.\n4. Input:\n<noinput>\n4. Output:\nSolar power.\n###\n"
             "5. Instruction: Suggest background music for a short video.\n5. Input:\n<noinput>\n5. Output:\nPiano.\n###\n"
             "6. Instruction: Fix the grammar of the sentence.\n6. Input:\nShe go to school.\n6. Output:\n\n###\n"
             "7. Instruction: Correct the spelling in this sentence.\n7. Input:\nI recieved it.\n7. Output:\nI received it.")
    engine = FakeEngine(default=reply)
    out = tmp_path / "generated.jsonl"
    summary = generate(build_config(preset="alpaca", num_instructions=2, request_batch_size=1), seeds_file, out, engine,
                       progress=False)
    assert len(engine.requests) == 1  # no classification, no instance requests
    request = engine.requests[0]
    assert request.max_tokens == 3072 and request.temperature == 1.0 and request.stop == ["\n20", "20.", "20."]
    assert request.prompt.endswith("###\n4. Instruction:") and request.prompt.count("###\n") == 4
    records = rows(out)
    assert [(r["meta"]["instruction"], r["meta"]["input"], r["messages"][1]["content"]) for r in records] == [
        ("Give an example of a renewable energy source.", "", "Solar power."),
        ("Correct the spelling in this sentence.", "I recieved it.", "I received it."),
    ]
    assert records[1]["messages"][0]["content"] == "Correct the spelling in this sentence.\n\nI recieved it."
    assert all(r["meta"]["source"] == "alpaca" and r["meta"]["is_classification"] is False for r in records)
    assert summary.totals.rejected == {"blacklisted_keyword": 1, "empty_output": 1}


def test_chat_prompt_style_drops_blank_line_stop(seeds_file, tmp_path):
    engine = FakeEngine(default=scripted_teacher(["Here you go:\n\n9. Tell me a fun fact about octopuses."]))
    out = tmp_path / "generated.jsonl"
    generate(build_config(num_instructions=1, request_batch_size=1, prompt_style="chat"), seeds_file, out, engine,
             progress=False)
    assert engine.requests[0].chat and "\n\n" not in engine.requests[0].stop
    assert {r["meta"]["instruction"] for r in rows(out)} == {"Tell me a fun fact about octopuses."}
    assert rows(out)[0]["meta"]["prompt_style"] == "chat"


def test_too_few_seeds_is_a_clear_error(make_seeds, tmp_path):
    from curate.errors import CurateError

    path = make_seeds(tmp_path / "few.jsonl", count=3)
    with pytest.raises(CurateError, match="3 seed tasks, but each prompt needs 6"):
        generate(build_config(num_instructions=1), path, tmp_path / "out.jsonl", FakeEngine(), progress=False)


# -- pool membership ----------------------------------------------------------------------------

def _pool_run(seeds_file, tmp_path, membership):
    """Batch 0 proposes a task whose instances all fail; batch 1 proposes a near-copy of it."""
    failing = "Tell me a fun fact about octopuses in the sea."
    near = "Tell me a fun fact about octopuses in the ocean."
    reply = scripted_teacher([f" {failing}", f" {near}\n10. Give me a synonym for happy please."],
                             instances={failing: "Example 1\nInput: x\nOutput: x"})  # input == output: invalid
    out = tmp_path / membership / "generated.jsonl"
    config = build_config(num_instructions=1, request_batch_size=1, pool_membership=membership)
    generate(config, seeds_file, out, FakeEngine(default=reply), progress=False)
    return rows(out.parent / "rejected_candidates.jsonl"), rows(out), near


def test_published_pool_takes_every_novel_instruction_at_once(seeds_file, tmp_path):
    rejected, records, near = _pool_run(seeds_file, tmp_path, "published")
    assert any(r["reason"] == "no_valid_instances" for r in rejected)
    assert any(r["reason"] == "too_similar" and r["instruction"] == near for r in rejected)
    assert near not in {r["meta"]["instruction"] for r in records}


def test_completed_pool_membership_is_the_old_behaviour(seeds_file, tmp_path):
    rejected, records, near = _pool_run(seeds_file, tmp_path, "completed")
    assert not any(r["reason"] == "too_similar" for r in rejected)
    assert near in {r["meta"]["instruction"] for r in records}


def test_resume_puts_failed_novel_instructions_back_in_the_published_pool(seeds_file, tmp_path):
    a = algo(seeds_file, pool_membership="published")
    record = {"meta": {"instruction": "Give me a synonym for happy please.", "batch": 1, "task_id": "task-x"}}
    rejected = [{"batch": 0, "stage": "task", "reason": "no_valid_instances", "instruction": "Failed at instances here"},
                {"batch": 0, "stage": "instruction", "reason": "too_similar", "instruction": "Never joined the pool"}]
    a.restore([record], rejected)
    assert [t.instruction for t in a.machine] == ["Failed at instances here", "Give me a synonym for happy please."]
    assert a.accepted_count == 1
    b = algo(seeds_file, pool_membership="completed")
    b.restore([record], rejected)
    assert [t.instruction for t in b.machine] == ["Give me a synonym for happy please."]


# -- training rows ------------------------------------------------------------------------------

def _rows_run(seeds_file, out, row_format):
    reply = scripted_teacher([" Capitalize the first word of the sentence.\n10. Tell me a fun fact about octopuses."])
    config = build_config(num_instructions=2, request_batch_size=1, row_format=row_format, seed=3)
    generate(config, seeds_file, out, FakeEngine(default=reply), progress=False)
    return rows(out)


def test_row_format_self_instruct_adds_seeds_varies_templates_and_is_deterministic(seeds_file, tmp_path):
    first = _rows_run(seeds_file, tmp_path / "a" / "generated.jsonl", "self-instruct")
    again = _rows_run(seeds_file, tmp_path / "b" / "generated.jsonl", "self-instruct")
    strip = [{k: v for k, v in r["meta"].items() if k not in ("created_at", "run_id")} for r in first]
    assert strip == [{k: v for k, v in r["meta"].items() if k not in ("created_at", "run_id")} for r in again]
    assert [r["messages"] for r in first] == [r["messages"] for r in again]
    for record in first:
        validate_record(record)
        assert record["meta"]["row_format"] == "self-instruct" and "row_template" in record["meta"]
    seeds = [r for r in first if r["meta"].get("seed_task")]
    assert len(seeds) == len(load_seeds(seeds_file))
    machine = [r for r in first if not r["meta"].get("seed_task")]
    assert {r["meta"]["instruction"] for r in machine} == {"Capitalize the first word of the sentence.",
                                                         "Tell me a fun fact about octopuses."}
    assert len({r["meta"]["row_template"] for r in first}) > 3
    assert len({r["meta"]["instance_key"] for r in first}) == len(first)  # global dedup


def test_row_format_chat_is_instruction_blank_line_input(seeds_file, tmp_path):
    records = _rows_run(seeds_file, tmp_path / "generated.jsonl", "chat")
    assert not any(r["meta"].get("seed_task") for r in records)
    for record in records:
        meta = record["meta"]
        expected = meta["instruction"] + (f"\n\n{meta['input']}" if meta["input"] else "")
        assert record["messages"][0]["content"] == expected


def test_alpaca_chat_replies_with_preamble_and_renumbering_are_not_lost(scripted_server, seeds_file, tmp_path):
    """Issue 17's server: every reply is a preamble, then five good tasks numbered from 1."""
    from click.testing import CliRunner

    from curate.cli import cli

    tasks = [("Name a fruit that is yellow when ripe.", "Banana"),
             ("Translate good morning into French for a traveller.", "Bonjour"),
             ("How many legs does a spider usually have?", "Eight"),
             ("Suggest a short title for a cooking blog about soups.", "Bowl Weather"),
             ("Correct the spelling of the misspelled word recieve.", "receive")]

    def reply(body):
        return "Sure! Here are some new tasks:\n\n" + "\n\n".join(
            f"{k}. Instruction: {ins}\n{k}. Input:\n<noinput>\n{k}. Output:\n{out}"
            for k, (ins, out) in enumerate(tasks, start=1))

    scripted_server.default_text = reply
    out = tmp_path / "generated.jsonl"
    result = CliRunner().invoke(cli, ["generate", "--preset", "alpaca", "--seeds", str(seeds_file), "--out", str(out),
                                      "--engine", "openai", "--base-url", scripted_server.base_url, "--teacher", "m",
                                      "-n", "5", "--batch-size", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 5
    assert not any(r["reason"] == "no_instructions_parsed" for r in rows(tmp_path / "rejected_candidates.jsonl"))
