"""Errors the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations

from typing import IO, Any

import click


class CurateError(click.ClickException):
    """An error the user can act on: printed as one line, ``error: ...``, exit code 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


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
