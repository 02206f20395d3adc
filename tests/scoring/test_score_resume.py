"""kill -9 in the middle of `curate score`, then the same command again: identical output, no row scored twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from scoring_fixtures import make_records, write_jsonl

from curate.scoring.ifd import LMConfig
from curate.scoring.length import LengthConfig
from curate.scoring.run import ScoreConfig
from curate.scoring.run import run_score as score_in_process


def run_score(src, out, model_dir, kill_at=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("CURATE_TEST_KILL_AT_STEP", None)
    if kill_at is not None:
        env["CURATE_TEST_KILL_AT_STEP"] = str(kill_at)
    return subprocess.run([sys.executable, "-m", "curate", "score", str(src), "--out", str(out), "--scorer",
                           "ifd,length", "--model", str(model_dir), "--tokenizer", str(model_dir), "--chunk-size", "4",
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_output(tmp_path, tiny_model_dir):
    rows = make_records(22)
    src = write_jsonl(tmp_path / "in.jsonl", rows + rows[:3])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cfg = ScoreConfig(scorers=["ifd", "length"], chunk_size=4, lm=LMConfig(model=str(tiny_model_dir)),
                      length=LengthConfig(tokenizer=str(tiny_model_dir)))
    score_in_process(src, tmp_path / "a" / "scored.jsonl", cfg, progress=False)

    killed = run_score(src, tmp_path / "b" / "scored.jsonl", tiny_model_dir, kill_at=3)  # after the third chunk
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "b" / "scored.jsonl").exists()
    score_in_process(src, tmp_path / "b" / "scored.jsonl", cfg, progress=False)  # the same run, resumed

    for name in ("scored.jsonl", "score_errors.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    report = json.loads((tmp_path / "b" / "score_report.json").read_text())
    assert report["groups"]["lm"]["from_cache"] == 12 and report["groups"]["lm"]["computed"] == 10
    for cache in (tmp_path / "b" / "score_cache").glob("*.jsonl"):
        scored_ids = [i for line in cache.read_text().splitlines() for i in json.loads(line)["results"]]
        assert sorted(scored_ids) == sorted({r["id"] for r in rows})  # each unique row exactly once
