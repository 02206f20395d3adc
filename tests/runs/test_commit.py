"""Output sets: a kill -9 at every commit step leaves a complete old or a complete new set, and readers can tell which."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from curate.errors import CurateError
from curate.runs.commit import KILL_ENV, journal_path, output_set, read_set, recover_folder, verify_set

NAMES = ("curated.jsonl", "rejected.jsonl", "filter_report.json", "filter_config.yaml")

WRITE_SET = textwrap.dedent("""
    import sys
    from pathlib import Path
    from curate.runs.commit import output_set
    folder, tag = Path(sys.argv[1]), sys.argv[2]
    members = [folder / n for n in sys.argv[3:]]
    with output_set(members, command="test") as out:
        for m in members:
            with out.open(m) as f:
                f.write(f"{tag} {m.name}\\n" * (50 if m.suffix == ".jsonl" else 1))
""")

WRITE_FOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import curate.runs.commit as commit
    if sys.argv[3] == "no-exchange":
        commit._exchange = lambda a, b: False
    target, tag = Path(sys.argv[1]), sys.argv[2]
    with commit.output_folder(target) as staged:
        (staged / "data").mkdir()
        for name in ("data/train.parquet", "README.md", "provenance.json"):
            (staged / name).write_text(f"{tag} {name}")
""")


def _run(script: str, args: list[str], kill_at: int | None = None) -> int:
    env = dict(os.environ)
    env.pop(KILL_ENV, None)
    if kill_at is not None:
        env[KILL_ENV] = str(kill_at)
    return subprocess.run([sys.executable, "-c", script, *args], env=env, timeout=60).returncode


def _tags(folder: Path, names: tuple[str, ...]) -> set[str]:
    return {(folder / n).read_text().split()[0] for n in names}


def test_set_commit_and_verify(tmp_path: Path) -> None:
    members = [tmp_path / n for n in NAMES]
    with output_set(members, command="test") as out:
        for m in members:
            with out.open(m) as f:
                f.write("A\n")
    status = verify_set(members)
    assert status.state == "complete" and status.ok
    assert json.loads(journal_path(members[0]).read_text())["state"] == "committed"
    assert not list(tmp_path.glob("*.staged")) and not list(tmp_path.glob(".*.staged"))


def test_failed_run_leaves_old_set_untouched(tmp_path: Path) -> None:
    members = [tmp_path / n for n in NAMES]
    assert _run(WRITE_SET, [str(tmp_path), "A", *NAMES]) == 0
    before = {m: m.read_bytes() for m in members}
    with pytest.raises(RuntimeError), output_set(members, command="test") as out:
        with out.open(members[0]) as f:
            f.write("B\n")
        raise RuntimeError("boom")
    assert {m: m.read_bytes() for m in members} == before
    assert not list(tmp_path.glob(".*.staged"))


def test_reader_names_the_member_from_another_run(tmp_path: Path) -> None:
    members = [tmp_path / n for n in NAMES]
    assert _run(WRITE_SET, [str(tmp_path), "A", *NAMES]) == 0
    old_rejected = members[1].read_bytes()
    assert _run(WRITE_SET, [str(tmp_path), "B", *NAMES]) == 0
    run_b = verify_set(members).run_id
    members[1].write_bytes(old_rejected)  # an old member put back by hand (or an older, non-set writer)
    status = verify_set(members)
    assert status.state == "incomplete"
    assert "rejected.jsonl is from run " in status.describe() and run_b in status.describe()
    with pytest.raises(CurateError, match="incomplete set: rejected.jsonl is from run"):
        read_set(members)
    members[0].write_text("edited by hand\n")
    assert "curated.jsonl was changed after run" in verify_set(members).describe()


@pytest.mark.slow
def test_kill_at_every_set_commit_step_leaves_complete_old_or_new(tmp_path: Path) -> None:
    members = [tmp_path / n for n in NAMES]
    seen = set()
    for k in range(1, 50):
        assert _run(WRITE_SET, [str(tmp_path), "A", *NAMES]) == 0
        rc = _run(WRITE_SET, [str(tmp_path), "B", *NAMES], kill_at=k)
        status = read_set(members)  # every curate reader: finishes an interrupted commit, else raises
        assert status.state == "complete", status.describe()
        tags = _tags(tmp_path, NAMES)
        assert len(tags) == 1, f"kill at step {k}: mixed set {tags}"
        seen.add(tags.pop())
        assert verify_set(members).state == "complete"
        if rc == 0:
            break
        assert rc == -9
    else:
        pytest.fail("the writer never completed")
    assert k > len(NAMES) + 2  # staged, journal, one per rename, done: each was killed once
    assert seen == {"A", "B"}
    assert not list(tmp_path.glob(".*.staged"))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["exchange", "no-exchange"])
def test_kill_at_every_folder_commit_step(tmp_path: Path, mode: str) -> None:
    target = tmp_path / "my-dataset"
    names = ("data/train.parquet", "README.md", "provenance.json")
    for k in range(1, 20):
        assert _run(WRITE_FOLDER, [str(target), "A", mode]) == 0
        rc = _run(WRITE_FOLDER, [str(target), "B", mode], kill_at=k)
        if not target.exists():  # the two-rename fallback killed between its renames
            assert mode == "no-exchange"
            recover_folder(target)  # what the next run (output_folder) does first
            assert _tags(target, names) == {"B"}
            continue
        assert len(_tags(target, names)) == 1
        if rc == 0:
            break
        assert rc == -9
    assert _tags(target, names) == {"B"}
    _run(WRITE_FOLDER, [str(target), "C", mode])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


WRITE_FILES = textwrap.dedent("""
    import sys, tempfile
    from pathlib import Path
    from curate.runs.commit import commit_files
    folder, tag = Path(sys.argv[1]), sys.argv[2]
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".final."))
    for name in ("config.yaml", "metrics.json", "adapter_model.safetensors", "tokenizer.json"):
        (staging / name).write_text(f"{tag} {name}")
    (staging / "merged").mkdir()
    (staging / "merged" / "model.safetensors").write_text(f"{tag} merged")
    commit_files(staging, folder, "test", primary="config.yaml")
""")


@pytest.mark.slow
def test_commit_files_kill_at_every_step(tmp_path: Path) -> None:
    from curate.runs.commit import journal_members

    run = tmp_path / "run"
    names = ("config.yaml", "metrics.json", "adapter_model.safetensors", "tokenizer.json")
    for k in range(1, 40):
        assert _run(WRITE_FILES, [str(run), "A"]) == 0
        rc = _run(WRITE_FILES, [str(run), "B"], kill_at=k)
        members = journal_members(run / "config.yaml")
        assert read_set(members).state == "complete"
        assert sorted(m.name for m in members) == sorted(names)
        assert len(_tags(run, names)) == 1, f"kill at {k}: {_tags(run, names)}"
        if rc == 0:
            break
        assert rc == -9
    else:
        pytest.fail("never completed")
    assert _tags(run, names) == {"B"} and (run / "merged" / "model.safetensors").read_text() == "B merged"


def test_reader_finishes_a_killed_commit_while_a_new_run_holds_the_lock(tmp_path: Path) -> None:
    import time

    from curate.runs.lock import acquire

    members = [tmp_path / n for n in NAMES]
    assert _run(WRITE_SET, [str(tmp_path), "A", *NAMES]) == 0
    assert _run(WRITE_SET, [str(tmp_path), "B", *NAMES], kill_at=3) == -9  # journal + one rename
    assert verify_set(members).state == "committing"
    held = acquire(members[0], "a new run, still filtering")  # the next run has the lock, not yet its commit
    try:
        started = time.monotonic()
        assert read_set(members, wait_s=0.3).state == "complete"
        assert time.monotonic() - started < 5
    finally:
        held.release()
    assert _tags(tmp_path, NAMES) == {"B"}
