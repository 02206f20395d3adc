"""How a task instance becomes a training row: ``--row-format chat`` or ``--row-format self-instruct``.

Both give the record schema (one user turn, one assistant turn), deterministically: the random
choices of an instance come from ``(run seed, task id, instance index)``, not from the order of
the run.

- ``chat`` (the default): the user turn is the instruction, or the instruction, a blank line and
  the input; the assistant turn is the output. Inputs keep labels such as "Paragraph: ...".
- ``self-instruct``: the augmentation of the published ``prepare_for_finetuning.py``. Half of
  the inputs that carry a single ``Field:`` label lose it; half of the instances have their
  blank lines collapsed; each instance is rendered through one of 13 prompt templates
  (7 for tasks with an input, 6 without; "Input:"/"Output:" labels, a "Task:" header, blank
  lines or none). The templates are ours; their variety is the published one. The run also
  writes every seed task's instances as rows and drops repeated (instruction, input, output)
  triples across the whole output (see :mod:`generators.self_instruct`).

In the published files the prompt ends with "Output:" and the completion starts with a space;
in a chat record the user turn ends at the template's last label and the assistant turn is the
output itself (trailing whitespace and the leading space carry nothing in a chat turn).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

ROW_FORMATS = ("chat", "self-instruct")

WITH_INPUT = (
    "{instruction}\nInput: {input}\nOutput:",
    "{instruction}\n\nInput: {input}\n\nOutput:",
    "Task: {instruction}\nInput: {input}\nOutput:",
    "{instruction}\n\n{input}\n\nOutput:",
    "{instruction}\n\n{input}",
    "{instruction}\n{input}",
    "Task: {instruction}\n\n{input}",
)
WITHOUT_INPUT = (
    "{instruction} Output:",
    "{instruction}\nOutput:",
    "{instruction}\n\nOutput:",
    "{instruction}",
    "Task: {instruction}",
    "Task: {instruction}\nOutput:",
)

_FIELD_LABEL = re.compile(r"(?m)^[ \t]*([A-Z][\w ]{0,30}?)[ \t]*:[ \t]*")
_BLANK_LINES = re.compile(r"\n[ \t]*\n+")


@dataclass(frozen=True)
class Row:
    """The two turns of a training row and how they were made (recorded in ``meta``)."""

    user: str
    assistant: str
    template: int | None = None  # index into WITH_INPUT (input) or WITHOUT_INPUT (no input)
    prefix_stripped: bool = False
    blank_lines_collapsed: bool = False


def strip_single_field_prefix(text: str) -> str:
    """"Sentence: The cat sat." -> "The cat sat.": only when the input opens with a label and holds
    no other ``Label:`` line (so "Sentence 1: ... / Sentence 2: ..." keeps both labels)."""
    labels = _FIELD_LABEL.findall(text)
    match = _FIELD_LABEL.match(text)
    if match is None or len(labels) != 1:
        return text
    return text[match.end() :].strip()


def collapse_blank_lines(text: str) -> str:
    return _BLANK_LINES.sub("\n", text)


def instance_rng(seed: int, task: str, index: int) -> random.Random:
    """The random choices of one instance, independent of batch order and resume."""
    digest = hashlib.sha256(f"{seed}:{task}:{index}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def render_row(instruction: str, inst_input: str, output: str, row_format: str, rng: random.Random) -> Row:
    """One instance as the user and assistant turns of ``row_format``."""
    instruction, inst_input, output = instruction.strip(), inst_input.strip(), output.strip()
    if row_format == "chat":
        return Row(f"{instruction}\n\n{inst_input}" if inst_input else instruction, output)
    if row_format != "self-instruct":
        raise ValueError(f"unknown row format {row_format!r} (choose from {', '.join(ROW_FORMATS)})")
    stripped = collapsed = False
    if inst_input and rng.random() < 0.5:
        new_input = strip_single_field_prefix(inst_input)
        stripped, inst_input = new_input != inst_input, new_input or inst_input
    if rng.random() < 0.5:
        new_input, new_output = collapse_blank_lines(inst_input), collapse_blank_lines(output)
        collapsed = (new_input, new_output) != (inst_input, output)
        inst_input, output = new_input, new_output
    templates = WITH_INPUT if inst_input else WITHOUT_INPUT
    index = rng.randrange(len(templates))
    user = templates[index].format(instruction=instruction, input=inst_input).rstrip()
    return Row(user, output, index, stripped, collapsed)


def instance_key(instruction: str, inst_input: str, output: str) -> str:
    """The global-dedup key of an instance: its stripped instruction, input and output."""
    payload = "\x1f".join(s.strip() for s in (instruction, inst_input, output))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
