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

import click

from curate import __version__

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
