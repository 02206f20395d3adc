"""The output lock: a second live run is refused naming the first; a dead holder's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from curate.errors import CurateError
from curate.runs.lock import acquire, check_writable, lock_path, output_lock

HOLD = textwrap.dedent("""
    import sys, time
    from curate.runs.lock import acquire
    held = acquire(sys.argv[1], "curate filter")
    print("held", flush=True)
    time.sleep(60)
""")


def _holder(target: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_live_run_is_refused_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "curated.jsonl"
    proc = _holder(out)
    try:
        with pytest.raises(CurateError) as err:
            acquire(out, "curate filter")
        message = str(err.value)
        assert f"is in use by pid {proc.pid} on " in message
        assert message.endswith("(curate filter)")
        assert str(out) in message
    finally:
        proc.kill()
        proc.wait()


def test_lock_released_on_exit_and_file_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with output_lock(out, "curate export") as held:
        info = json.loads(lock_path(out).read_text())
        assert info["pid"] == os.getpid() and info["command"] == "curate export"
        assert held.took_over is None
    assert not lock_path(out).exists()
    with output_lock(out, "curate export"):  # free again
        pass


def test_stale_lock_of_killed_process_is_taken_over_with_notice(tmp_path: Path) -> None:
    out = tmp_path / "curated.jsonl"
    proc = _holder(out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert lock_path(out).exists()  # kill -9 left the file behind
    notices: list[str] = []
    with output_lock(out, "curate filter", notice=notices.append) as held:
        assert held.took_over["pid"] == proc.pid
    assert len(notices) == 1 and f"pid {proc.pid}" in notices[0] and "is gone" in notices[0]


def test_many_racers_exactly_one_wins(tmp_path: Path) -> None:
    out = tmp_path / "curated.jsonl"
    done = tmp_path / "done"
    code = textwrap.dedent("""
        import os, sys, time
        from curate.errors import CurateError
        from curate.runs.lock import acquire
        time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
        try:
            held = acquire(sys.argv[1], "race")
        except CurateError:
            print("lost", flush=True); sys.exit(0)
        print("won", flush=True)
        while not os.path.exists(sys.argv[3]):  # hold until every racer has tried
            time.sleep(0.02)
    """)
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", code, str(out), str(start), str(done)], stdout=subprocess.PIPE,
                              text=True) for _ in range(6)]
    results = [p.stdout.readline().strip() for p in procs]
    done.write_text("")
    for p in procs:
        p.wait(timeout=30)
    assert sorted(results) == ["lost"] * 5 + ["won"]


def test_check_writable(tmp_path: Path) -> None:
    assert check_writable(tmp_path / "new" / "deeper" / "out.jsonl") == tmp_path / "new" / "deeper"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CurateError, match="not a folder"):
        check_writable(blocker / "out.jsonl")
    with pytest.raises(CurateError, match="is a folder"):
        check_writable(tmp_path)
    with pytest.raises(CurateError, match="not a folder"):
        check_writable(blocker, folder=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through mode bits; test_stage_guarantees covers root with chattr +i")
def test_check_writable_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(CurateError, match="not writable"):
            check_writable(ro / "out.jsonl")
    finally:
        ro.chmod(0o755)


def test_locks_output_decorator(tmp_path: Path) -> None:
    from curate.runs.lock import locks_output

    @locks_output("out", "curate thing")
    def stage(source: str, out: Path) -> bool:
        return lock_path(out).exists()

    assert stage("in", tmp_path / "o.jsonl") is True
    assert not lock_path(tmp_path / "o.jsonl").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CurateError, match="not a folder"):
        stage("in", out=blocker / "o.jsonl")


def test_folders_made_for_the_lock_go_again_when_left_empty(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "out.jsonl"
    with output_lock(out, "curate import"):
        assert out.parent.is_dir()
    assert not (tmp_path / "a").exists()  # a failed run leaves no empty folders behind
    with output_lock(out, "curate import"):
        out.write_text("rows\n")
    assert out.read_text() == "rows\n"


def test_without_flock_o_excl_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import curate.runs.lock as lock

    monkeypatch.setattr(lock, "fcntl", None)  # a filesystem or platform without flock
    out = tmp_path / "curated.jsonl"
    busy = pytest.raises(CurateError, match=f"in use by pid {os.getpid()} on .*\\(curate filter\\)")
    with lock.output_lock(out, "curate filter"), busy:
        lock.acquire(out, "curate filter")
    assert not lock_path(out).exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(out).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "command": "curate filter",
                                          "started": "earlier"}))
    notices: list[str] = []
    with lock.output_lock(out, "curate filter", notice=notices.append):
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    assert notices and f"pid {dead.pid}" in notices[0]
    lock_path(out).write_text(json.dumps({"pid": 1, "host": "another-host", "started": "earlier"}))
    with pytest.raises(CurateError, match="in use by pid 1 on another-host"):  # cannot tell: never taken over
        lock.acquire(out, "curate filter")


def test_only_rank_zero_of_a_distributed_launch_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from curate.runs.lock import guard_output

    out = tmp_path / "runs" / "NAME"
    with guard_output(out, "curate train", folder=True) as held:  # rank 0 (or no launcher)
        assert held is not None
        monkeypatch.setenv("RANK", "1")
        with guard_output(out, "curate train", folder=True) as other:  # rank 1 of the same run: no second lock
            assert other is None
        monkeypatch.delenv("RANK")
        with pytest.raises(CurateError, match="in use"):  # a second, separate run is still refused
            acquire(out, "curate train")
