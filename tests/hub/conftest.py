"""Fixtures for the hub tests: a run folder built from scratch in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_fixtures import write_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")
