"""`curate filter` as a real process: a kill -9 while writing leaves the previous outputs whole."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filter_data import edit, record, sentence

CURATE = [str(Path(sys.executable).parent / "curate")]


@pytest.mark.slow
def test_kill_9_while_writing_leaves_previous_outputs(tmp_path):
    rng = random.Random(0)
    rows = []
    for _ in range(6000):
        base = record(sentence(rng, 120), sentence(rng, 150))
        rows.append(base)
        if rng.random() < 0.3:
            rows.append(record(edit(base["messages"][0]["content"], rng), edit(base["messages"][1]["content"], rng)))
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out_dir = tmp_path / "out"
    out = out_dir / "curated.jsonl"
    first = subprocess.run([*CURATE, "filter", str(source), "--out", str(out)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    report = json.loads((out_dir / "filter_report.json").read_text())
    assert report["in"] == len(rows) == report["kept"] + report["rejected"]
    def outputs():
        return {p.name: p.read_bytes() for p in out_dir.iterdir() if not p.name.startswith(".")}

    before = outputs()
    assert sorted(before) == ["curated.jsonl", "filter_config.yaml", "filter_report.json", "rejected.jsonl"]

    proc = subprocess.Popen([*CURATE, "filter", str(source), "--out", str(out), "--threshold", "0.2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any(p.name.endswith(".staged") for p in out_dir.iterdir()):  # the new set is being written
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the run finished before it could be killed mid-write")
    assert outputs() == before  # the outputs are the previous run's, byte for byte

    again = subprocess.run([*CURATE, "filter", str(source), "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert not [p for p in out_dir.iterdir() if p.name.endswith((".staged", ".tmp", ".lock"))]  # cleaned up
    assert (out_dir / "curated.jsonl").read_bytes() == before["curated.jsonl"]
    from curate.runs.commit import verify_set

    assert verify_set([out_dir / n for n in ("curated.jsonl", "rejected.jsonl", "filter_report.json",
                                             "filter_config.yaml")]).ok
