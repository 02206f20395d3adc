"""Errors the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class CurateError(Exception):
    """An error the user can act on; its message is printed as one line."""


class InputError(CurateError):
    """Bad input at a known place: ``file:line: field: message``."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str):
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = message
        super().__init__(self.render())

    def render(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        what = f"field '{self.field}': " if self.field else ""
        return f"{where}: {what}{self.reason}"


class RecordError(ValueError):
    """A record breaks the schema; ``field`` is a dotted path such as ``messages[1].content``."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.reason = message
        super().__init__(f"field '{field}': {message}")
