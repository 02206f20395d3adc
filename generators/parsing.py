"""Parsers for the teacher's replies: numbered instruction lists, Alpaca task lists,
"Is it classification?" answers, and instance lists (input-first and output-first).

Completion mode follows yizhongw/self-instruct (``bootstrap_instructions.py``,
``prepare_for_finetuning.py``) and tatsu-lab/stanford_alpaca (``generate_instruction.py``)
exactly. Chat replies are freer: they open with a preamble ("Sure! Here are 20 tasks:"),
number from 1 again, use "N)" or bold markers, and close with commentary ("I hope these
help!"). The chat parsers accept all of that, so a reply that holds tasks never yields none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WHITESPACE = re.compile(r"\s+")
# the published split: "\n" + number + optional space + "." + space ("10) x" stays inside item 9)
_PUBLISHED_ITEM = re.compile(r"\n(\d+)\s?\. ")
# chat: a numbered line, "9.", "9)", "**9.**", "Task 9:", "- 9." at the start of a line
_CHAT_ITEM = re.compile(r"(?m)^[ \t]*(?:[-*][ \t]+)?(?:\*\*)?(?:Task[ \t]+)?(\d+)[ \t]?[.):](?:\*\*)?(?:[ \t]+|$)")
_BULLET = re.compile(r"(?m)^[ \t]*[-*•][ \t]+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# a closing paragraph of a chat reply that talks about the list instead of adding to it
_COMMENTARY = re.compile(
    r"(?i)^\W*(I hope|Hope (this|these)|Let me know|Feel free|These (tasks|instructions|examples|are)|"
    r"This list|Each (of these|task|example)|All of these|Note:|I've|I have|I can|If you|Would you like|"
    r"Here are|Sure|Certainly|Of course|Enjoy|Good luck|---)")


def _collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def parse_instruction_list(text: str, first_number: int, max_number: int, completion: bool) -> list[str]:
    """The instructions of a numbered-list reply, in order, whitespace collapsed.

    Completion mode is the published parser: the prompt ended with "9." so the text starts
    inside item 9, items are split on "\\nN. " only, and items numbered above ``max_number``
    (the published stop sequence "16.") are cut. Chat mode: see :func:`parse_chat_instruction_list`.
    """
    if not completion:
        return parse_chat_instruction_list(text, max_number)
    matches = list(_PUBLISHED_ITEM.finditer(text))
    items = [text[: matches[0].start()] if matches else text]
    for k, match in enumerate(matches):
        if int(match.group(1)) > max_number:
            break
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        items.append(text[match.end() : end])
    return [item for item in (_collapse(i) for i in items) if item]


def parse_chat_instruction_list(text: str, max_number: int) -> list[str]:
    """A chat reply's instructions: the preamble before the first numbered line is dropped,
    each item ends at its first blank line (what follows is commentary), any numbering is
    accepted (a list that restarts at 1 keeps every item: the novelty filter rejects copies
    of the prompt's own items), bold markers go. A reply without numbers gives its bullet
    items, or else its text as one task (minus a preamble line ending in ":")."""
    matches = [m for m in _CHAT_ITEM.finditer(text) if int(m.group(1)) <= max_number]
    if matches:
        bodies = [text[m.end() : matches[k + 1].start() if k + 1 < len(matches) else len(text)]
                  for k, m in enumerate(matches)]
    elif _BULLET.search(text):
        parts = _BULLET.split(text)
        bodies = parts[1:]
    else:
        paragraphs = [p for p in _BLANK_LINE.split(text.strip()) if p.strip()]
        paragraphs = [p for p in paragraphs if not _COMMENTARY.match(p) and not p.rstrip().endswith(":")]
        bodies = paragraphs[:1]
    items = []
    for body in bodies:
        body = _BLANK_LINE.split(body.strip(), maxsplit=1)[0]
        item = _collapse(body.replace("**", ""))
        if item and not _COMMENTARY.match(item):
            items.append(item)
    return items


def capitalize_first(text: str) -> str:
    """Upper-case the first character only. The published ``str.capitalize()`` also lower-cases
    the rest ("USA" becomes "Usa"); the rules that depended on it ("Write a program") compare
    case-insensitively instead, so the decisions are the published ones and the text keeps its case."""
    return text[:1].upper() + text[1:]


@dataclass
class AlpacaTask:
    instruction: str
    input: str
    output: str


def _alpaca_fields(instruction: str, task_input: str, output: str) -> AlpacaTask:
    task_input = task_input.strip()
    task_input = "" if task_input.lower() in ("<noinput>", "<no input>") else task_input
    return AlpacaTask(_collapse(instruction), task_input, output.strip())


def parse_alpaca_tasks(text: str, first_number: int, truncated: bool, completion: bool = True) -> list[AlpacaTask]:
    """Tasks of an Alpaca-style reply: blocks "N. Instruction: / N. Input: / N. Output:".

    Completion mode is the published parser: blocks split on "###", block k must carry the
    number ``first_number + k`` and split into exactly the three fields; the last block is
    dropped when the reply was cut off by length. Chat mode: see :func:`parse_chat_alpaca_tasks`.
    """
    if not completion:
        return parse_chat_alpaca_tasks(text, truncated)
    blocks = (f"{first_number}. Instruction:" + text).split("###")
    tasks = []
    for k, block in enumerate(blocks):
        if truncated and k == len(blocks) - 1:
            continue
        parts = re.split(rf"{first_number + k}\.\s+(Instruction|Input|Output):", block)
        if len(parts) == 7:
            tasks.append(_alpaca_fields(parts[2], parts[4], parts[6]))
    return tasks


_ALPACA_FIELD = re.compile(
    r"(?m)^[ \t#]*(?:[-*][ \t]+)?(?:\*\*)?(?:(?:Task[ \t]+)?\d+[.):]?[ \t]*)?(?:\*\*)?(Instruction|Input|Output)"
    r"[ \t]*(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*")


def parse_chat_alpaca_tasks(text: str, truncated: bool) -> list[AlpacaTask]:
    """A chat reply's Alpaca tasks: any numbering (or none), "###" optional, bold markers
    allowed; a preamble and closing commentary are dropped. A task is an Instruction field
    followed by an Output field (Input optional); when the reply was cut off, the last goes."""
    fields = list(_ALPACA_FIELD.finditer(text))
    tasks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    lead = text[: fields[0].start()].strip() if fields else ""
    if fields and fields[0].group(1) != "Instruction" and lead and not lead.endswith(":"):
        current["instruction"] = lead  # a reply that continues the prompt's "N. Instruction:" itself
    for k, match in enumerate(fields):
        end = fields[k + 1].start() if k + 1 < len(fields) else len(text)
        name, value = match.group(1).lower(), text[match.end() : end]
        if name == "instruction":
            if "output" in current:
                tasks.append(current)
            current = {}
        if name in current:
            continue  # a repeated field inside one task: keep the first
        current[name] = value.split("###")[0]
    if "output" in current:
        current["output"] = _drop_commentary(current["output"])
        tasks.append(current)
        if truncated:  # the reply was cut inside this last task's output
            tasks.pop()
    return [_alpaca_fields(t.get("instruction", ""), t.get("input", ""), t["output"])
            for t in tasks if "instruction" in t and t["output"].strip()]


def _drop_commentary(text: str) -> str:
    """Cut a chat reply's closing paragraphs that talk about the reply ("I hope these help!")."""
    paragraphs = _BLANK_LINE.split(text.rstrip())
    while len(paragraphs) > 1 and _COMMENTARY.match(paragraphs[-1].strip()):
        paragraphs.pop()
    if len(paragraphs) == 1 and "\n" in paragraphs[0]:
        head, last = paragraphs[0].rsplit("\n", 1)
        if _COMMENTARY.match(last.strip()) and head.strip():
            paragraphs = [head]
    return "\n\n".join(paragraphs)


def parse_is_classification(text: str) -> bool:
    """"Yes" (any case, optional punctuation) means classification; anything else does not."""
    words = text.strip().split()
    return bool(words) and words[0].strip(".,!:;\"'*").lower() == "yes"


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


def parse_generation_instances(text: str, truncated: bool, chat: bool = False) -> list[tuple[str, str]]:
    """(input, output) pairs of an input-first reply ("Example N" blocks, or one Output:).

    Chat mode also drops a preamble before "Example 1" that has no "Output:" and closing
    commentary after the last output.
    """
    text = text.strip()
    if chat:
        text = _drop_commentary(text.replace("**", ""))  # markdown bold around "Example 1:", "Output:"
        first = re.search(r"Example\s?\d*\.?", text)
        if first and not re.search(r"Output\s*\d*\s*:", text[: first.start()]):
            text = text[first.start() :]  # "Sure! Here are some examples:" before Example 1
    if re.search(r"Example\s?\d*\.?", text):
        blocks = [b.strip() for b in re.split(r"Example\s?\d*\.?", text) if b.strip()]
        if chat:  # "Example 1:" / "Example 1)" leave their punctuation behind
            blocks = [s for s in (re.sub(r"^[:)\-]+", "", b).strip() for b in blocks) if s]
        instances = [parse_input_output(b) for b in blocks]
    elif re.search(r"Output\s*\d*\s*:", text):
        instances = [parse_input_output(text)]
    else:
        return []
    return instances[:-1] if truncated else instances


def parse_classification_instances(text: str, truncated: bool, chat: bool = False) -> list[tuple[str, str]]:
    """(input, label) pairs of an output-first reply: "Class label: X" then the input lines.

    Chat mode also drops closing commentary after the last input.
    """
    if chat:
        text = _drop_commentary(text.replace("**", ""))
    if "Class label:" not in text:
        return []
    instances = []
    for block in text.split("Class label:")[1:]:
        fields = block.strip().split("\n", 1)
        label = fields[0].strip()
        inst_input = fields[1].strip() if len(fields) == 2 else ""
        instances.append((inst_input, label))
    return instances[:-1] if truncated else instances
