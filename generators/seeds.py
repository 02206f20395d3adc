"""Seed tasks in the Self-Instruct schema, from one file or a folder of ``.jsonl`` files.

A seed task is ``{"id", "name", "instruction", "instances": [{"input", "output"}],
"is_classification"}`` (yizhongw/self-instruct ``data/seed_tasks.jsonl``). ``id``, ``name``
and ``is_classification`` are optional (defaults: ``<file stem>-<line>``, "", false). A bad
row stops the run with the file, line and field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import CurateError, InputError
from curate.records.jsonl import iter_json_rows


@dataclass
class SeedTask:
    id: str
    instruction: str
    instances: list[dict[str, str]]
    is_classification: bool = False
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def seed_files(path: str | Path) -> list[Path]:
    """The file itself, or the folder's ``*.jsonl`` files in name order."""
    path = Path(path)
    if not path.exists():
        raise CurateError(f"{path}: no such file or folder (give --seeds a seed file or a folder of .jsonl files)")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz")))
        if not files:
            raise CurateError(f"{path}: no .jsonl files in this folder")
        return files
    return [path]


def load_seeds(path: str | Path) -> list[SeedTask]:
    """Every seed task of ``path`` (a file or a folder), validated; ids must be unique."""
    tasks: list[SeedTask] = []
    where: dict[str, str] = {}
    for file in seed_files(path):
        for line_no, row in iter_json_rows(file):
            task = _seed_task(row, file, line_no)
            if task.id in where:
                raise InputError(str(file), line_no, "id", f"duplicate seed id {task.id!r} (first at {where[task.id]})")
            where[task.id] = f"{file}:{line_no}"
            tasks.append(task)
    return tasks


def _seed_task(row: Any, file: Path, line_no: int) -> SeedTask:
    def bad(field_name: str, message: str) -> InputError:
        return InputError(str(file), line_no, field_name, message)

    if not isinstance(row, dict):
        raise bad(None, "expected a JSON object with 'instruction' and 'instances'")  # type: ignore[arg-type]
    instruction = row.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise bad("instruction", "expected a non-empty string")
    instances = row.get("instances", [])
    if not isinstance(instances, list):
        raise bad("instances", "expected a list of {input, output} objects")
    clean = []
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise bad(f"instances[{i}]", "expected an object with 'input' and 'output'")
        for key in ("input", "output"):
            if not isinstance(instance.get(key, ""), str):
                raise bad(f"instances[{i}].{key}", "expected a string")
        clean.append({"input": instance.get("input", ""), "output": instance.get("output", "")})
    is_classification = row.get("is_classification", False)
    if not isinstance(is_classification, bool):
        raise bad("is_classification", f"expected true or false, got {is_classification!r}")
    seed_id = row.get("id", f"{file.name.split('.')[0]}-{line_no}")
    if not isinstance(seed_id, (str, int)):
        raise bad("id", "expected a string")
    extra = {k: v for k, v in row.items() if k not in {"id", "name", "instruction", "instances", "is_classification"}}
    return SeedTask(str(seed_id), instruction.strip(), clean, is_classification, str(row.get("name", "")), extra)


def seeds_hash(path: str | Path) -> str:
    """SHA-256 over the seed files' names and bytes (a folder hashes in name order)."""
    digest = hashlib.sha256()
    for file in seed_files(path):
        digest.update(file.name.encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()
