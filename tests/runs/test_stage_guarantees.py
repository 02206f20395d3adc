"""The guarantees of each stage, through the real CLI in subprocesses: locks, output sets, writability, exit codes.

The crash tests kill the stage with SIGKILL at commit step k (CURATE_TEST_KILL_AT_STEP) for
k = 1, 2, ... until a run gets through, and after each kill check that a reader sees a complete
old or a complete new set.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from curate.records import make_record
from curate.records.jsonl import write_jsonl
from curate.runs.commit import KILL_ENV
from curate.runs.lock import lock_path


def curate(*args: str, kill_at: int | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    full.pop(KILL_ENV, None)
    if kill_at is not None:
        full[KILL_ENV] = str(kill_at)
    return subprocess.run([sys.executable, "-m", "curate", *args], env=full, capture_output=True, text=True,
                          timeout=300)


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(count))


VOCAB = tuple(f"{a}{b}" for a in ("ri", "mo", "ka", "te", "su", "lo", "ne", "pa") for b in ("ver", "nda", "sto", "lim"))


def records(n: int, tag: str, dup: int = 0) -> list[dict]:
    """``n`` distinct records (random words, so no dedup rule sees two as near-duplicates) plus ``dup`` exact copies."""
    rng = random.Random(f"{tag}-{n}")
    rows = [make_record([{"role": "user", "content": f"{tag} question {i}: {_words(rng, 14)}?"},
                         {"role": "assistant", "content": f"{tag} answer {i}: {_words(rng, 30)}."}],
                        {"source": tag})
            for i in range(n)]
    return rows + rows[:dup]


def _hold_lock(target: Path, command: str) -> subprocess.Popen:
    code = textwrap.dedent("""
        import sys, time
        from curate.runs.lock import acquire
        acquire(sys.argv[1], sys.argv[2]); print("held", flush=True); time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code, str(target), command], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


# ---------------------------------------------------------------- export


def test_export_duplicate_ids_warn_and_strict_refuses(tmp_path: Path) -> None:
    src = tmp_path / "curated.jsonl"
    write_jsonl(src, records(6, "x", dup=1))
    done = curate("export", str(src), "--out", str(tmp_path / "ds"))
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stderr and "7 rows but 6 unique ids" in done.stderr
    strict = curate("export", str(src), "--out", str(tmp_path / "ds2"), "--strict")
    assert strict.returncode == 2 and "refusing with --strict" in strict.stderr
    assert strict.stderr.count("\n") == 1 and not (tmp_path / "ds2").exists()


def test_export_second_run_refused_while_first_holds_the_folder(tmp_path: Path) -> None:
    src = tmp_path / "curated.jsonl"
    write_jsonl(src, records(4, "x"))
    out = tmp_path / "ds"
    holder = _hold_lock(out, "curate export")
    try:
        done = curate("export", str(src), "--out", str(out))
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2
    assert f"is in use by pid {holder.pid} on " in done.stderr and "(curate export)" in done.stderr
    assert not out.exists()
    again = curate("export", str(src), "--out", str(out))  # the holder died: taken over, with a notice
    assert again.returncode == 0 and "took over a stale lock" in again.stderr
    assert not lock_path(out).exists()


@pytest.mark.slow
def test_export_kill_at_every_commit_step(tmp_path: Path) -> None:
    from curate.records.shards import read_export

    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    write_jsonl(old, records(5, "old"))
    write_jsonl(new, records(7, "new"))
    out = tmp_path / "ds"
    (tmp_path / "keep").mkdir()
    for k in range(1, 30):
        assert curate("export", str(old), "--out", str(out)).returncode == 0
        (out / "LICENSE").write_text("user file\n")  # not written by export: must survive
        done = curate("export", str(new), "--out", str(out), kill_at=k)
        rows = list(read_export(out))
        card = (out / "README.md").read_text()
        tags = {r["meta"]["source"] for r in rows}
        assert tags in ({"old"}, {"new"}), f"kill at {k}: {tags}"
        assert len(rows) == (5 if tags == {"old"} else 7)
        assert f"num_examples: {len(rows)}" in card  # the card describes the data beside it
        assert (out / "LICENSE").read_text() == "user file\n"
        if done.returncode == 0:
            break
        assert done.returncode == -9, done.stderr
    else:
        pytest.fail("export never completed")
    assert k > 1
    curate("export", str(new), "--out", str(out))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]


# ---------------------------------------------------------------- unwritable outputs


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A folder nobody may write into: mode 0555, and immutable (chattr +i) as root, whom mode bits do not stop."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    immutable = False
    if os.geteuid() == 0:
        immutable = subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode == 0
        if not immutable:
            pytest.skip("running as root and chattr +i is not available: cannot make a read-only folder")
    yield ro
    if immutable:
        subprocess.run(["chattr", "-i", str(ro)], check=True)
    ro.chmod(0o755)


@pytest.mark.parametrize("stage", ["export", "import", "convert", "filter", "generate", "train"])
def test_unwritable_output_is_one_line_exit_2(tmp_path: Path, read_only_dir: Path, stage: str) -> None:
    import time

    src = tmp_path / "in.jsonl"
    write_jsonl(src, records(4, "x"))
    ro = read_only_dir
    args = {"export": [str(src), "--out", str(ro / "ds")],
            "import": [str(src), "--out", str(ro / "r.jsonl")],
            "convert": [str(src), "--to", "alpaca", "--out", str(ro / "a.jsonl")],
            "filter": [str(src), "--out", str(ro / "curated.jsonl")],
            "generate": ["--out", str(ro / "generated.jsonl"), "--base-url", "http://127.0.0.1:9/v1", "--teacher", "m"],
            "train": [str(src), "--out", str(ro / "run")]}[stage]
    started = time.monotonic()
    done = curate(stage, *args)
    assert time.monotonic() - started < 60  # checked before any loading (train took 81 s to fail before)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "not writable" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- filter


def _filter_files(folder: Path) -> list[Path]:
    return [folder / n for n in ("curated.jsonl", "rejected.jsonl", "filter_report.json", "filter_config.yaml")]


def _filter_state(folder: Path) -> tuple[str, int, int]:
    """(which input, kept, rejected) as the data says, checked against what the report says."""
    import json

    curated, rejected, report, _ = _filter_files(folder)
    kept_rows = [json.loads(line) for line in curated.read_text().splitlines()]
    rejected_rows = [json.loads(line) for line in rejected.read_text().splitlines()]
    doc = json.loads(report.read_text())
    tags = {r["meta"]["source"] for r in kept_rows + rejected_rows}
    assert len(tags) == 1, f"curated/rejected from different runs: {tags}"
    assert (doc["kept"], doc["rejected"]) == (len(kept_rows), len(rejected_rows)), "report from another run"
    assert Path(doc["input"]).stem == tags.pop()
    return Path(doc["input"]).stem, len(kept_rows), len(rejected_rows)


@pytest.mark.slow
def test_filter_kill_at_every_commit_step(tmp_path: Path) -> None:
    from curate.runs.commit import journal_members, read_set

    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    write_jsonl(old, records(6, "old", dup=2))
    write_jsonl(new, records(9, "new", dup=3))
    out = tmp_path / "o"
    seen = set()
    for k in range(1, 30):
        assert curate("filter", str(old), "--out", str(out / "curated.jsonl"), "--preset", "none").returncode == 0
        done = curate("filter", str(new), "--out", str(out / "curated.jsonl"), "--preset", "none", kill_at=k)
        status = read_set(journal_members(out / "curated.jsonl"))  # what every reader does first
        assert status.state == "complete", status.describe()
        state = _filter_state(out)
        assert state in (("old", 6, 2), ("new", 9, 3)), f"kill at {k}: {state}"
        seen.add(state[0])
        if done.returncode == 0:
            break
        assert done.returncode == -9, done.stderr
    else:
        pytest.fail("filter never completed")
    assert seen == {"old", "new"} and k >= 7  # staged, journal, 4 renames, done
    assert not list(out.glob(".*.staged"))


def test_filter_second_run_refused_and_stale_lock_taken_over(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    write_jsonl(src, records(5, "in"))
    out = tmp_path / "curated.jsonl"
    holder = _hold_lock(out, "curate filter")
    try:
        done = curate("filter", str(src), "--out", str(out), "--preset", "none")
        assert done.returncode == 2
        assert done.stderr.strip() == done.stderr.strip().splitlines()[0]  # one line
        assert f"is in use by pid {holder.pid} on " in done.stderr and done.stderr.strip().endswith("(curate filter)")
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    again = curate("filter", str(src), "--out", str(out), "--preset", "none")
    assert again.returncode == 0, again.stderr
    assert f"took over a stale lock on {out}: pid {holder.pid}" in again.stderr
    assert _filter_state(tmp_path) == ("in", 5, 0)


def test_readers_finish_an_interrupted_commit_and_refuse_a_mixed_set(tmp_path: Path) -> None:
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    write_jsonl(old, records(6, "old", dup=2))
    write_jsonl(new, records(9, "new", dup=3))
    out = tmp_path / "o"
    curated = str(out / "curated.jsonl")
    assert curate("filter", str(old), "--out", curated, "--preset", "none").returncode == 0
    old_rejected = (out / "rejected.jsonl").read_bytes()
    # killed after the journal (the commit point) and one rename: the report finishes the commit, reads the new set
    assert curate("filter", str(new), "--out", curated, "--preset", "none", kill_at=3).returncode == -9
    shown = curate("report", str(out), "--out", str(tmp_path / "r.html"))
    assert shown.returncode == 0, shown.stderr
    assert _filter_state(out) == ("new", 9, 3)
    # an old member put back beside a newer set (by hand, or by a tool that ignores the journal)
    (out / "rejected.jsonl").write_bytes(old_rejected)
    for args in (["report", str(out), "--out", str(tmp_path / "r2.html")],
                 ["export", curated, "--out", str(tmp_path / "ds")]):
        refused = curate(*args)
        assert refused.returncode == 2, refused.stderr
        assert "incomplete set: rejected.jsonl is from run " in refused.stderr
        assert refused.stderr.count("\n") == 1


# ---------------------------------------------------------------- generate


def test_two_generate_runs_into_one_folder(tmp_path: Path) -> None:
    """The first run waits on a teacher that does not answer yet; the second is refused naming it."""
    import json
    import signal
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    release, got_request = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got_request.set()
            release.wait(60)
            self._send(500, {"error": {"message": "down for the test", "type": "x", "code": None}})

        def _send(self, code, payload):
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    out = tmp_path / "gen" / "generated.jsonl"
    args = [sys.executable, "-m", "curate", "generate", "--base-url", url, "--teacher", "m", "-n", "4",
            "--max-retries", "0", "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": "sk-test-0000000000000000"}
    first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert got_request.wait(60), "the first run never reached the teacher"
        started = time.monotonic()
        second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"is in use by pid {first.pid} on " in second.stderr and "(curate generate)" in second.stderr
        assert time.monotonic() - started < 60
        os.kill(first.pid, signal.SIGKILL)  # the holder dies without releasing its lock
        first.wait()
        release.set()
        third = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert "took over a stale lock" in third.stderr and f"pid {first.pid}" in third.stderr
        assert "Traceback" not in third.stderr
        ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
        assert len(ids) == len(set(ids))  # never two writers: no duplicated rows
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        release.set()
        httpd.shutdown()
        httpd.server_close()


# ---------------------------------------------------------------- select


@pytest.mark.slow
def test_select_kill_at_every_commit_step(tmp_path: Path) -> None:
    import json

    from curate.runs.commit import journal_members, read_set

    src = tmp_path / "scored.jsonl"
    write_jsonl(src, records(10, "in"))
    chosen = tmp_path / "o" / "chosen.jsonl"

    def state() -> tuple[int, int]:
        read_set(journal_members(chosen))  # what every reader does first
        kept = len(chosen.read_text().splitlines())
        dropped = len(chosen.with_name("unselected.jsonl").read_text().splitlines())
        report = json.loads(chosen.with_name("select_report.json").read_text())
        assert (report["in"], report["chosen"], report["unselected"]) == (10, kept, dropped)  # report agrees
        return kept, dropped

    for k in range(1, 30):
        assert curate("select", str(src), "--out", str(chosen), "--random", "3").returncode == 0
        done = curate("select", str(src), "--out", str(chosen), "--random", "6", "--seed", "1", kill_at=k)
        assert state() in ((3, 7), (6, 4)), f"kill at {k}: {state()}"
        if done.returncode == 0:
            break
        assert done.returncode == -9, done.stderr
    else:
        pytest.fail("select never completed")
    assert k >= 7 and state() == (6, 4)


# ---------------------------------------------------------------- score


@pytest.mark.slow
def test_score_killed_inside_its_commit_reads_as_the_new_set(tmp_path: Path) -> None:
    """One chunk (step 1), staged (2), journal (3), first rename (4): killed at 4, in the commit window."""
    import json

    from curate.runs.commit import journal_members, read_set, verify_set

    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    write_jsonl(old, records(4, "old"))
    write_jsonl(new, records(7, "new"))
    scored = tmp_path / "o" / "scored.jsonl"
    assert curate("score", str(old), "--out", str(scored), "--scorer", "length").returncode == 0
    done = curate("score", str(new), "--out", str(scored), "--scorer", "length", kill_at=4)
    assert done.returncode == -9, done.stderr
    members = journal_members(scored)
    assert verify_set(members).state == "committing"  # the kill did land between journal and last rename
    assert read_set(members).state == "complete"
    rows = [json.loads(line) for line in scored.read_text().splitlines()]
    report = json.loads(scored.with_name("score_report.json").read_text())
    assert {r["meta"]["source"] for r in rows} == {"new"} and len(rows) == 7
    assert (Path(report["source"]).name, report["in"], report["scored"]) == ("new.jsonl", 7, 7)
