"""Parsers for the teacher's replies: numbered instruction lists, Alpaca task lists,
"Is it classification?" answers, and instance lists (input-first and output-first).

They follow yizhongw/self-instruct (``bootstrap_instructions.py``,
``prepare_for_finetuning.py``) and tatsu-lab/stanford_alpaca (``generate_instruction.py``),
with the changes needed for chat models noted where they are made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WHITESPACE = re.compile(r"\s+")
_NUMBERED = re.compile(r"(?:^|\n)[ \t]*(\d+)\s?[.)](?:\s+|$)")


def parse_instruction_list(text: str, first_number: int, max_number: int, completion: bool) -> list[str]:
    """The instructions of a numbered-list continuation, in order, whitespace collapsed.

    In completion mode the prompt ended with "9." so the text starts inside item 9 (the
    published parser). A chat reply instead starts with its own numbers, sometimes after
    a line such as "Here are more tasks:", which is dropped. Items numbered above
    ``max_number`` (the published stop sequence "16.") and restarts of the numbering
    before ``first_number`` are kept: the novelty filter rejects copies of the prompt.
    A chat reply with no numbered item at all is taken as one task.
    """
    matches = list(_NUMBERED.finditer(text))
    lead = text[: matches[0].start()] if matches else text
    items = []
    # completion mode: the text before the first number is item `first_number` itself;
    # chat mode: it is a preamble, unless the reply has no numbered item at all
    if completion or not matches:
        items.append(_WHITESPACE.sub(" ", lead).strip())
    for k, match in enumerate(matches):
        if int(match.group(1)) > max_number:
            break
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        items.append(_WHITESPACE.sub(" ", text[match.end() : end]).strip())
    return [item for item in items if item]


def capitalize_first(text: str) -> str:
    """Upper-case the first character only (the published ``str.capitalize`` also lower-cases
    the rest, which breaks names and acronyms such as "USA")."""
    return text[:1].upper() + text[1:]


@dataclass
class AlpacaTask:
    instruction: str
    input: str
    output: str


def parse_alpaca_tasks(text: str, first_number: int, truncated: bool) -> list[AlpacaTask]:
    """Tasks of an Alpaca-style reply: blocks split on "###", each "N. Instruction/Input/Output".

    As in stanford_alpaca, the last block is dropped when the reply was cut off by length,
    and a block that does not split into exactly the three fields is skipped.
    """
    # completion mode continues after "N. Instruction:"; a chat reply usually repeats it
    head = f"{first_number}. Instruction:"
    raw = text.lstrip() if text.lstrip().startswith(head) else head + text
    blocks = raw.split("###")
    tasks = []
    for k, block in enumerate(blocks):
        if truncated and k == len(blocks) - 1:
            continue
        number = first_number + k
        parts = re.split(rf"{number}\.\s+(Instruction|Input|Output):", block)
        if len(parts) != 7:
            continue
        instruction = _WHITESPACE.sub(" ", parts[2]).strip()
        task_input = parts[4].strip()
        task_input = "" if task_input.lower() == "<noinput>" else task_input
        tasks.append(AlpacaTask(instruction, task_input, parts[6].strip()))
    return tasks


def parse_is_classification(text: str) -> bool:
    """"Yes" (any case, optional punctuation) means classification; anything else does not."""
    words = text.strip().split()
    return bool(words) and words[0].strip(".,!:;\"'").lower() == "yes"


def parse_input_output(text: str) -> tuple[str, str]:
    """Split one example into (input, output) on "Output:" (published ``parse_input_output``)."""
    if re.search(r"Output\s*\d*\s*:", text):
        parts = re.split(r"Output\s*\d*\s*:", text)
        inst_input, inst_output = parts[0].strip(), parts[1].strip()
    else:
        inst_input, inst_output = "", text.strip()
    # a second input/output pair glued on: keep the first
    if re.search(r"Input\s*\d*\s*:", inst_output):
        inst_output = re.split(r"Input\s*\d*\s*:", inst_output)[0].strip()
    inst_input = re.sub(r"^Input\s*\d*\s*:", "", inst_input).strip()
    return inst_input, inst_output


def parse_generation_instances(text: str, truncated: bool) -> list[tuple[str, str]]:
    """(input, output) pairs of an input-first reply ("Example N" blocks, or one Output:)."""
    text = text.strip()
    if re.search(r"Example\s?\d*\.?", text):
        blocks = [b.strip() for b in re.split(r"Example\s?\d*\.?", text) if b.strip()]
        instances = [parse_input_output(b) for b in blocks]
    elif re.search(r"Output\s*\d*\s*:", text):
        instances = [parse_input_output(text)]
    else:
        return []
    return instances[:-1] if truncated else instances


def parse_classification_instances(text: str, truncated: bool) -> list[tuple[str, str]]:
    """(input, label) pairs of an output-first reply: "Class label: X" then the input lines."""
    if "Class label:" not in text:
        return []
    instances = []
    for block in text.split("Class label:")[1:]:
        fields = block.strip().split("\n", 1)
        label = fields[0].strip()
        inst_input = fields[1].strip() if len(fields) == 2 else ""
        instances.append((inst_input, label))
    return instances[:-1] if truncated else instances
