"""Prompt templates: plain text files in ``generators/prompts/``, rendered by placeholder substitution.

A placeholder is ``{{name}}``. Templates are files so that a change to a prompt is a
reviewable diff, and each has an id, ``<file stem>@<first 8 hex of its SHA-256>``, that
goes into every record's ``meta`` so a row always says which prompt produced it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from curate.errors import CurateError

PROMPTS_DIR = Path(__file__).parent / "prompts"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class Template:
    name: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.name}@{hashlib.sha256(self.text.encode()).hexdigest()[:8]}"

    def render(self, **values: object) -> str:
        missing = set(_PLACEHOLDER.findall(self.text)) - set(values)
        if missing:
            raise CurateError(f"prompt template {self.name}: no value for {{{{{sorted(missing)[0]}}}}}")
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.text)


def load_template(name_or_path: str) -> Template:
    """A template by name (a file in generators/prompts/, without .txt) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPTS_DIR / f"{name_or_path}.txt"
    if not path.is_file():
        raise CurateError(f"prompt template not found: {path}")
    text = path.read_text(encoding="utf-8")
    # the file ends with a newline for the editor's sake; the prompt does not
    return Template(path.stem, text[:-1] if text.endswith("\n") else text)
