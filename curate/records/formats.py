"""Converters between the record schema and the formats people's data comes in.

Each format knows how to recognise a row, turn it into a record, and turn a record
back into a row. Import then convert then import gives identical records: fields
the record has no place for (a source's own id, extra keys) are kept in ``meta``
(``source_id``, ``extra``) and written back on export.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from curate.errors import CurateError, RecordError
from curate.records import make_record

Row = dict[str, Any]
Record = dict[str, Any]


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    detect: Callable[[Mapping[str, Any]], bool]
    to_record: Callable[[Row], Record]
    from_record: Callable[[Record], Row]


def _require_str(row: Mapping[str, Any], key: str, *, optional: bool = False) -> str:
    if key not in row or row[key] is None:
        if optional:
            return ""
        raise RecordError(key, "missing")
    value = row[key]
    if not isinstance(value, str):
        raise RecordError(key, f"expected a string, got {type(value).__name__}")
    return value


def _require_object(row: Any) -> Mapping[str, Any]:
    if not isinstance(row, dict):
        raise RecordError("<row>", f"expected a JSON object, got {type(row).__name__}")
    return row


def _provenance(row: Mapping[str, Any], known: set[str], fmt: str) -> dict[str, Any]:
    """meta entries for what the record itself has no place for, and the format the row had.

    Where the rows came from (``meta.source``: a file or dataset name) is the reader's to say
    (``curate.records.sources``); the format is not the source.
    """
    meta: dict[str, Any] = {"format": fmt}
    if "id" in row:
        meta["source_id"] = row["id"]
    extra = {k: v for k, v in row.items() if k not in known and k != "id"}
    if extra:
        meta["extra"] = extra
    return meta


def _restore_provenance(record: Record, row: Row, system: str = "") -> Row:
    """The row with the source's id first, its system prompt if any, and its extra fields last."""
    meta = record.get("meta", {})
    out: Row = {}
    if "source_id" in meta:
        out["id"] = meta["source_id"]
    out.update(row)
    if system:
        out["system"] = system
    out.update(meta.get("extra", {}))
    return out


def _join(first: str, second: str) -> str:
    return f"{first}\n\n{second}" if second else first


def _single_exchange(record: Record, fmt: str) -> tuple[str, str, str]:
    """(system, user, assistant) of a one-exchange record, or an error saying why not."""
    messages = record["messages"]
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    if len(system) > 1 or [m["role"] for m in rest] != ["user", "assistant"]:
        turns = "/".join(m["role"] for m in messages)
        raise CurateError(
            f"record {record['id']} has turns {turns}; {fmt} holds one user/assistant exchange "
            "(use --to sharegpt or --to messages)"
        )
    return (system[0] if system else "", rest[0]["content"], rest[1]["content"])


def _system_messages(row: Mapping[str, Any]) -> list[dict[str, str]]:
    system = _require_str(row, "system", optional=True)
    return [{"role": "system", "content": system}] if system else []


# -- Alpaca: instruction / input / output -----------------------------------------------

_ALPACA_KEYS = {"instruction", "input", "output", "system"}


def _alpaca_to_record(row: Row) -> Record:
    row = _require_object(row)
    instruction = _require_str(row, "instruction")
    given = _require_str(row, "input", optional=True)
    output = _require_str(row, "output")
    meta = _provenance(row, _ALPACA_KEYS, "alpaca")
    meta.update(instruction=instruction, input=given)
    messages = [*_system_messages(row), {"role": "user", "content": _join(instruction, given)},
                {"role": "assistant", "content": output}]
    return make_record(messages, meta)


def _alpaca_from_record(record: Record) -> Row:
    system, user, assistant = _single_exchange(record, "alpaca")
    instruction, given = _instruction_and_input(record, user, "input")
    row: Row = {"instruction": instruction, "input": given, "output": assistant}
    return _restore_provenance(record, row, system)


def _instruction_and_input(record: Record, user: str, input_key: str) -> tuple[str, str]:
    """Split a user turn back into instruction and input when meta says how it was joined."""
    meta = record.get("meta", {})
    instruction, given = meta.get("instruction"), meta.get(input_key, "")
    if isinstance(instruction, str) and isinstance(given, str) and _join(instruction, given) == user:
        return instruction, given
    return user, ""


ALPACA = Format(
    "alpaca", "instruction/input/output (JSON array or JSONL)",
    lambda row: "instruction" in row and "output" in row,
    _alpaca_to_record, _alpaca_from_record,
)


# -- Self-Instruct seed tasks: instruction / instances / is_classification ----------------

_SEED_KEYS = {"instruction", "instances", "is_classification", "name"}


@dataclass
class SeedTask:
    """One Self-Instruct seed task (yizhongw/self-instruct ``data/seed_tasks.jsonl``)."""

    id: str | None
    instruction: str
    instances: list[dict[str, str]]
    is_classification: bool = False
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def parse_seed_task(row: Any) -> SeedTask:
    """The one seed-task schema check (``curate import`` and ``curate generate --seeds`` use it).

    ``instruction`` is a non-empty string; ``instances`` a non-empty list of ``{input, output}``
    (input optional); ``is_classification`` a bool; ``id`` and ``name`` optional. Raises
    :class:`RecordError` naming the field.
    """
    row = _require_object(row)
    instruction = _require_str(row, "instruction")
    if not instruction.strip():
        raise RecordError("instruction", "expected a non-empty string")
    instances = row.get("instances")
    if not isinstance(instances, list):
        raise RecordError("instances", "missing" if instances is None else "expected a list")
    if not instances:
        raise RecordError("instances", "is empty")
    clean = []
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RecordError(f"instances[{i}]", "expected an object")
        try:
            clean.append({"input": _require_str(instance, "input", optional=True),
                          "output": _require_str(instance, "output")})
        except RecordError as err:
            raise RecordError(f"instances[{i}].{err.field}", err.reason) from None
    if "is_classification" in row and not isinstance(row["is_classification"], bool):
        raise RecordError("is_classification", "expected true or false")
    seed_id = row.get("id")
    if seed_id is not None and not isinstance(seed_id, (str, int)):
        raise RecordError("id", "expected a string")
    extra = {k: v for k, v in row.items() if k not in _SEED_KEYS and k != "id"}
    return SeedTask(None if seed_id is None else str(seed_id), instruction.strip(), clean,
                    row.get("is_classification", False), str(row.get("name", "")), extra)


def _seed_to_record(row: Row) -> Record:
    task = parse_seed_task(row)
    first = row["instances"][0]
    meta = _provenance(row, _SEED_KEYS, "self-instruct")
    meta.update(instruction=row["instruction"], input=first.get("input") or "", instances=row["instances"])
    for key in ("is_classification", "name"):
        if key in row:
            meta[key] = row[key]
    messages = [{"role": "user", "content": _join(row["instruction"], task.instances[0]["input"])},
                {"role": "assistant", "content": first["output"]}]
    return make_record(messages, meta)


def _seed_from_record(record: Record) -> Row:
    _, user, assistant = _single_exchange(record, "self-instruct")
    instruction, given = _instruction_and_input(record, user, "input")
    meta = record.get("meta", {})
    instances = meta.get("instances")
    if not isinstance(instances, list) or not instances:
        instances = [{}]
    # the messages are the truth for the first instance; later ones ride along in meta
    first = {**instances[0], "input": given, "output": assistant}
    row: Row = {}
    if "name" in meta:
        row["name"] = meta["name"]
    row.update(instruction=instruction, instances=[first, *instances[1:]])
    if "is_classification" in meta:
        row["is_classification"] = meta["is_classification"]
    return _restore_provenance(record, row)


SELF_INSTRUCT = Format(
    "self-instruct", "Self-Instruct seed tasks: instruction/instances/is_classification",
    lambda row: "instruction" in row and "instances" in row,
    _seed_to_record, _seed_from_record,
)


# -- ShareGPT: conversations [{from, value}] ------------------------------------------

_SPEAKER_TO_ROLE = {
    "human": "user", "user": "user",
    "gpt": "assistant", "chatgpt": "assistant", "assistant": "assistant", "bard": "assistant",
    "bing": "assistant", "model": "assistant",
    "system": "system",
    "tool": "tool", "function": "tool", "observation": "tool",
}
_ROLE_TO_SPEAKER = {"user": "human", "assistant": "gpt", "system": "system", "tool": "tool"}


def _sharegpt_to_record(row: Row) -> Record:
    row = _require_object(row)
    turns = row.get("conversations")
    if not isinstance(turns, list):
        raise RecordError("conversations", "missing" if turns is None else "expected a list")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError(f"conversations[{i}]", "expected an object")
        speaker = turn.get("from")
        if speaker not in _SPEAKER_TO_ROLE:
            known = ", ".join(sorted(_SPEAKER_TO_ROLE))
            raise RecordError(f"conversations[{i}].from", f"unknown speaker {speaker!r} (known: {known})")
        try:
            value = _require_str(turn, "value")
        except RecordError as err:
            raise RecordError(f"conversations[{i}].{err.field}", err.reason) from None
        messages.append({"role": _SPEAKER_TO_ROLE[speaker], "content": value})
    system = _require_str(row, "system", optional=True)
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return make_record(messages, _provenance(row, {"conversations", "system"}, "sharegpt"))


def _sharegpt_from_record(record: Record) -> Row:
    turns = [{"from": _ROLE_TO_SPEAKER[m["role"]], "value": m["content"]} for m in record["messages"]]
    return _restore_provenance(record, {"conversations": turns})


SHAREGPT = Format(
    "sharegpt", "ShareGPT: conversations with from/value",
    lambda row: "conversations" in row,
    _sharegpt_to_record, _sharegpt_from_record,
)


# -- Dolly: instruction / context / response / category -------------------------------

_DOLLY_KEYS = {"instruction", "context", "response", "category", "system"}


def _dolly_to_record(row: Row) -> Record:
    row = _require_object(row)
    instruction = _require_str(row, "instruction")
    context = _require_str(row, "context", optional=True)
    response = _require_str(row, "response")
    meta = _provenance(row, _DOLLY_KEYS, "dolly")
    meta.update(instruction=instruction, context=context)
    if "category" in row:
        meta["category"] = _require_str(row, "category")
    messages = [*_system_messages(row), {"role": "user", "content": _join(instruction, context)},
                {"role": "assistant", "content": response}]
    return make_record(messages, meta)


def _dolly_from_record(record: Record) -> Row:
    system, user, assistant = _single_exchange(record, "dolly")
    instruction, context = _instruction_and_input(record, user, "context")
    row: Row = {"instruction": instruction, "context": context, "response": assistant}
    if "category" in record.get("meta", {}):
        row["category"] = record["meta"]["category"]
    return _restore_provenance(record, row, system)


DOLLY = Format(
    "dolly", "Dolly: instruction/context/response/category",
    lambda row: "instruction" in row and "response" in row,
    _dolly_to_record, _dolly_from_record,
)


# -- prompt / completion ---------------------------------------------------------------

def _pc_to_record(row: Row) -> Record:
    row = _require_object(row)
    messages = [*_system_messages(row), {"role": "user", "content": _require_str(row, "prompt")},
                {"role": "assistant", "content": _require_str(row, "completion")}]
    return make_record(messages, _provenance(row, {"prompt", "completion", "system"}, "prompt-completion"))


def _pc_from_record(record: Record) -> Row:
    system, user, assistant = _single_exchange(record, "prompt-completion")
    row: Row = {"prompt": user, "completion": assistant}
    return _restore_provenance(record, row, system)


PROMPT_COMPLETION = Format(
    "prompt-completion", "prompt/completion pairs",
    lambda row: "prompt" in row and "completion" in row,
    _pc_to_record, _pc_from_record,
)


# -- messages (chat format, and curate's own records) ---------------------------------

def _messages_to_record(row: Row) -> Record:
    row = _require_object(row)
    turns = row.get("messages")
    if not isinstance(turns, list):
        raise RecordError("messages", "missing" if turns is None else "expected a list")
    messages, extra_keys = [], {}
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError(f"messages[{i}]", "expected an object")
        messages.append({"role": turn.get("role"), "content": turn.get("content")})
        rest = {k: v for k, v in turn.items() if k not in ("role", "content")}
        if rest:
            extra_keys[str(i)] = rest
    given_meta = row.get("meta", {})
    if not isinstance(given_meta, dict):
        raise RecordError("meta", "expected an object")
    scores = row.get("scores")
    record = make_record(messages, {}, scores if isinstance(scores, dict) else None)
    meta = {"format": "messages", **given_meta}
    if "id" in row and row["id"] != record["id"]:
        meta["source_id"] = row["id"]
    extra = {k: v for k, v in row.items() if k not in ("id", "messages", "meta", "scores")}
    if scores is not None and not isinstance(scores, dict):
        extra["scores"] = scores
    if extra:
        meta["extra"] = {**meta.get("extra", {}), **extra}
    if extra_keys:
        meta["message_fields"] = extra_keys
    record["meta"] = meta
    return record


def _messages_from_record(record: Record) -> Row:
    meta = dict(record.get("meta", {}))
    fields = meta.pop("message_fields", {})
    messages = [{**m, **fields.get(str(i), {})} for i, m in enumerate(record["messages"])]
    row: Row = {"id": meta.pop("source_id", record["id"]), "messages": messages}
    extra = meta.pop("extra", {})
    if meta.get("format") == "messages":
        meta.pop("format")
    if meta:
        row["meta"] = meta
    if "scores" in record:
        row["scores"] = record["scores"]
    row.update(extra)
    return row


MESSAGES = Format(
    "messages", "chat messages [{role, content}] (and curate's own records)",
    lambda row: "messages" in row,
    _messages_to_record, _messages_from_record,
)


# Order matters for detection: the first format whose test passes wins.
FORMATS: dict[str, Format] = {
    f.name: f for f in (MESSAGES, SHAREGPT, SELF_INSTRUCT, DOLLY, ALPACA, PROMPT_COMPLETION)
}


def detect_format(row: Any) -> Format:
    """The format of a sample row, or a CurateError listing what each format needs."""
    if isinstance(row, dict):
        for fmt in FORMATS.values():
            if fmt.detect(row):
                return fmt
    keys = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
    raise CurateError(
        f"cannot tell the format from a row with keys [{keys}]; pass --format "
        f"({', '.join(FORMATS)})"
    )


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise CurateError(f"unknown format {name!r} (known: {', '.join(FORMATS)})") from None

