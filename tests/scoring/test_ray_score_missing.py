"""Without Ray installed, `curate score --executor ray` says how to install it; --address alone is an error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from scoring_fixtures import make_records, write_jsonl

from curate.cli import cli


def test_score_executor_ray_without_ray_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", make_records(3))
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does when it is not installed
    result = CliRunner().invoke(cli, ["score", str(src), "--out", str(tmp_path / "scored.jsonl"), "--scorer",
                                      "length", "--executor", "ray", "--no-progress"])
    assert result.exit_code == 2
    assert "install curate[ray] to use --executor ray" in result.output
    assert not (tmp_path / "scored.jsonl").exists()


def test_score_address_without_ray_executor_is_an_error(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", make_records(3))
    result = CliRunner().invoke(cli, ["score", str(src), "--out", str(tmp_path / "scored.jsonl"), "--scorer",
                                      "length", "--address", "auto", "--no-progress"])
    assert result.exit_code == 2
    assert "--address applies only to --executor ray" in result.output
