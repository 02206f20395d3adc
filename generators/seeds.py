"""Seed tasks for ``curate generate``: from one file, a folder of ``.jsonl`` files, or the bundled set.

A seed task is ``{"id", "name", "instruction", "instances": [{"input", "output"}],
"is_classification"}`` (yizhongw/self-instruct ``data/seed_tasks.jsonl``). The schema is
checked once, by :func:`curate.records.formats.parse_seed_task` (the same check as
``curate import``); here a bad row becomes ``file:line: field: message``. ``id`` defaults
to ``<file stem>-<line>``; ids must be unique across files.

The default seeds ship inside the installed package (the top-level ``seeds`` package, whose
``seed_tasks.jsonl`` is package data), so ``curate generate`` works from any folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from curate.errors import CurateError, InputError, RecordError
from curate.records.formats import SeedTask, parse_seed_task
from curate.records.jsonl import iter_json_rows

__all__ = ["SeedTask", "default_seeds_path", "load_seeds", "seed_files", "seeds_hash"]


def default_seeds_path() -> Path:
    """The folder of the bundled seed tasks (``seeds/`` in the repository, package data when installed)."""
    import seeds

    return Path(seeds.__file__).parent


def seed_files(path: str | Path | None) -> list[Path]:
    """The file itself, or the folder's ``*.jsonl`` files in name order; None: the bundled seeds."""
    path = default_seeds_path() if path is None else Path(path)
    if not path.exists():
        raise CurateError(f"{path}: no such file or folder (give --seeds a seed file or a folder of .jsonl files)")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz")))
        if not files:
            raise CurateError(f"{path}: no .jsonl files in this folder")
        return files
    return [path]


def load_seeds(path: str | Path | None = None) -> list[SeedTask]:
    """Every seed task of ``path`` (a file or a folder; None: the bundled seeds), validated."""
    tasks: list[SeedTask] = []
    where: dict[str, str] = {}
    for file in seed_files(path):
        for line_no, row in iter_json_rows(file):
            try:
                task = parse_seed_task(row)
            except RecordError as err:
                field = None if err.field == "<row>" else err.field
                raise InputError(str(file), line_no, field, err.reason) from None
            if task.id is None:
                task.id = f"{file.name.split('.')[0]}-{line_no}"
            if task.id in where:
                raise InputError(str(file), line_no, "id", f"duplicate seed id {task.id!r} (first at {where[task.id]})")
            where[task.id] = f"{file}:{line_no}"
            tasks.append(task)
    return tasks


def seeds_hash(path: str | Path | None = None) -> str:
    """SHA-256 over the seed files' names and bytes (a folder hashes in name order)."""
    digest = hashlib.sha256()
    for file in seed_files(path):
        digest.update(file.name.encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()
