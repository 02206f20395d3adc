"""`curate push` without a network (this machine has none): one clear line, nothing written remote or local.

These run the real command in a subprocess, because huggingface_hub reads HF_HUB_OFFLINE
and HF_ENDPOINT when it is imported.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from curate.errors import CurateError
from curate.hub.push import push_dataset

TOKEN = "hf_curatetestfaketoken0000000000000"


def _push(run_dir: Path, tmp_path: Path, env_changes: dict[str, str | None], *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["HF_HOME"] = str(tmp_path / "hf_home")
    env.pop("HF_TOKEN", None)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-m", "curate", "push", str(run_dir / "curated.jsonl"), "--repo-id", "curate-test/demo",
         "--out", str(tmp_path / "staged"), *args],
        env=env, capture_output=True, text=True, timeout=120,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _assert_nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "staged").exists()
    for path in (tmp_path / "hf_home").rglob("*") if (tmp_path / "hf_home").exists() else []:
        assert not path.is_file() or TOKEN not in path.read_text(errors="ignore"), f"token written to {path}"


def test_offline_push_fails_with_one_line(run_dir: Path, tmp_path: Path) -> None:
    result = _push(run_dir, tmp_path, {"HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach https://huggingface.co to push curate-test/demo")
    assert "nothing was uploaded" in lines[0]
    assert TOKEN not in result.stderr + result.stdout
    _assert_nothing_written(tmp_path)


def test_unreachable_hub_fails_with_one_line(run_dir: Path, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    result = _push(run_dir, tmp_path, {"HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": endpoint})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot reach {endpoint} to push curate-test/demo (ConnectError")
    _assert_nothing_written(tmp_path)


def test_missing_token_says_how_to_give_one(run_dir: Path, tmp_path: Path) -> None:
    result = _push(run_dir, tmp_path, {"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: no Hugging Face token: set HF_TOKEN or run `hf auth login` "
                                     "(nothing was uploaded)")
    _assert_nothing_written(tmp_path)


def test_repo_id_and_source_are_checked_first(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CurateError, match="ORG/NAME"):
        push_dataset(run_dir / "curated.jsonl", "no-slash", token=TOKEN)
    with pytest.raises(CurateError, match="no such file"):
        push_dataset(tmp_path / "missing.jsonl", "org/name", token=TOKEN)
