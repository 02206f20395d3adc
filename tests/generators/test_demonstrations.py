"""The in-context demonstrations of the Self-Instruct prompts: the original's size and variety.

Counts as in yizhongw/self-instruct (classification: 31 examples, 12 Yes and 19 No; instances:
16 output-first and 11 input-first tasks, up to 5 examples each, with code, long passages and
an email), every demonstration parsed by the parser that reads the teacher's replies, so a
demonstration teaches exactly the format we read back.
"""

from __future__ import annotations

import re

from generators.instruction_rules import instance_reject_reason
from generators.parsing import parse_classification_instances, parse_generation_instances
from generators.templates import load_template


def _demos(name: str) -> list[tuple[str, str]]:
    """(task, body) of each demonstration; the last block is the placeholder."""
    text = load_template(name).text
    blocks = text.split("\n\nTask: ")[1:]
    assert blocks[-1].startswith("{{instruction}}")
    return [tuple(b.split("\n", 1)) for b in blocks[:-1]]  # type: ignore[misc]


def test_classification_prompt_31_examples_12_yes_19_no():
    demos = _demos("self_instruct_classify")
    answers = [body.strip() for _, body in demos]
    assert len(demos) == 31
    assert answers.count("Is it classification? Yes") == 12 and answers.count("Is it classification? No") == 19
    assert len({task for task, _ in demos}) == 31


def test_output_first_prompt_16_tasks_every_example_parses():
    demos = _demos("self_instruct_instances_clf")
    assert len(demos) == 16
    counts = []
    for task, body in demos:
        instances = parse_classification_instances(body, truncated=False)
        assert instances, task
        assert all(instance_reject_reason(i, o) is None for i, o in instances), task
        counts.append(len(instances))
    assert max(counts) == 5 and min(counts) == 1  # up to five; a task with no input lists its labels
    assert any("def " in body for _, body in demos)  # code
    assert any(len(body.split()) > 100 for _, body in demos)  # long passages


def test_input_first_prompt_11_tasks_with_code_passages_and_an_email():
    demos = _demos("self_instruct_instances_gen")
    assert len(demos) == 11
    counts = []
    for task, body in demos:
        instances = parse_generation_instances(body, truncated=False)
        assert instances, task
        assert all(instance_reject_reason(i, o) is None for i, o in instances), task
        counts.append(len(instances))
    assert max(counts) == 5 and counts.count(1) >= 3
    bodies = [body for _, body in demos]
    assert any("def " in b and "return" in b for b in bodies)  # code
    assert any(len(i.split()) >= 100 for b in bodies for i, _ in parse_generation_instances(b, False))  # a passage
    assert any(i.startswith("Email:") for b in bodies for i, _ in parse_generation_instances(b, False))  # an email


def test_demonstrations_never_trip_the_instance_stop_sequences():
    """The instance requests stop at "Task:" and "Example 6": no demonstration body may hold them."""
    for name in ("self_instruct_instances_clf", "self_instruct_instances_gen"):
        for task, body in _demos(name):
            assert "Task:" not in body and "Example 6" not in body, task
            assert not re.search(r"Example\s?\d", body) or name.endswith("gen"), task
