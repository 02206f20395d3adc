"""Errors the user can act on. Library code raises them; :mod:`curate.cli` prints one line and exits 2.

Nothing here knows about click, so the library packages can be used without the CLI.
"""

from __future__ import annotations


class CurateError(Exception):
    """An error the user can act on: printed as one line, ``error: ...``, exit code 2."""

    exit_code = 2

    def format_message(self) -> str:
        return str(self)


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
