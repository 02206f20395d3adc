"""The house rules that a reader relies on, checked on every module of curate, generators and sft.

Every module says what it is for (a docstring), no function runs over 80 lines, and the library
packages do not depend on click (only the CLI does). The import layers themselves are checked by
import-linter (`make lint`); this file checks what import-linter cannot.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("curate", "generators", "sft")
MAX_FUNCTION_LINES = 80
CLI_ONLY = ("curate/cli.py", "curate/commands/")


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", _modules(), ids=_relative)
def test_every_module_opens_with_a_docstring(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring and len(docstring.split()) >= 3, f"{_relative(path)}: say what this module is for"


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{_relative(path)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_runs_over_80_lines() -> None:
    offenders = [line for path in _modules() for line in _long_functions(path)]
    assert offenders == []


def test_only_the_cli_imports_click() -> None:
    offenders = []
    for path in _modules():
        relative = _relative(path)
        if relative.startswith(CLI_ONLY):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "click" or name.startswith("click.") for name in names):
                offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []
