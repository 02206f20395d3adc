"""The `curate` command line.

Each command lives in its own module under ``curate/commands/`` and exposes a click
command named ``command``; this group finds them there, so a command exists exactly
when its module does. Heavy imports (torch, trl, vllm) stay inside command bodies so
``curate --help`` is instant.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import IO, Any

import click

from curate import __version__
from curate.errors import CurateError

_COMMAND_PACKAGE = "curate.commands"


def _command_modules() -> dict[str, str]:
    package = importlib.import_module(_COMMAND_PACKAGE)
    names = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        names[info.name.rstrip("_").replace("_", "-")] = f"{_COMMAND_PACKAGE}.{info.name}"
    return names


class CommandFolder(click.Group):
    """A click group whose commands are the modules of ``curate.commands``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_command_modules())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module_name = _command_modules().get(name)
        if module_name is None:
            return None
        return importlib.import_module(module_name).command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except CurateError as err:
            raise UserError(err) from err


class UserError(click.ClickException):
    """A :class:`CurateError` as click shows it: ``error: ...`` on stderr, exit code 2."""

    exit_code = 2

    def __init__(self, error: CurateError):
        super().__init__(error.format_message())
        self.exit_code = error.exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


@click.group(cls=CommandFolder, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(__version__, prog_name="curate")
def cli() -> None:
    """Build supervised fine-tuning datasets for LLMs and prove they work."""


def main() -> None:
    """Console entry point: click's error handling, plus exit 130 on Ctrl-C."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
