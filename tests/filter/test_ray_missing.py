"""Without Ray installed, `--executor ray` says how to install it (and --address alone is an error)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from filter_data import record, sentence, write_jsonl

from curate.cli import cli


def test_executor_ray_without_ray_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(sentence(rng, 20), sentence(rng, 20)) for _ in range(3)])
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does when it is not installed
    result = CliRunner().invoke(cli, ["filter", str(src), "--out", str(tmp_path / "out.jsonl"), "--executor", "ray"])
    assert result.exit_code == 2
    assert "install curate[ray] to use --executor ray" in result.output
    assert not (tmp_path / "out.jsonl").exists()


def test_address_without_ray_executor_is_an_error(tmp_path: Path, rng) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(sentence(rng, 20), sentence(rng, 20)) for _ in range(3)])
    result = CliRunner().invoke(cli, ["filter", str(src), "--out", str(tmp_path / "out.jsonl"), "--address", "auto"])
    assert result.exit_code == 2
    assert "--address applies only to --executor ray" in result.output
