"""`curate score --executor ray` on a real local Ray cluster (127.0.0.1, 2 CPUs): byte for byte the local output.

The scorers are the real ones (a tiny random Llama built from a config, and its tokenizer); the
Ray run builds one scorer per actor and gets the same chunks as the local run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scoring_fixtures import make_records, write_jsonl

from curate.scoring.ifd import LMConfig
from curate.scoring.length import LengthConfig
from curate.scoring.run import ScoreConfig, run_score

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_scores_equal_local(cluster, tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = make_records(22)
    src = write_jsonl(tmp_path / "in.jsonl", rows + rows[:3])  # repeated ids are scored once, as locally
    cfg = ScoreConfig(scorers=["ifd", "length"], chunk_size=4, lm=LMConfig(model=str(tiny_model_dir)),
                      length=LengthConfig(tokenizer=str(tiny_model_dir)))
    for executor in ("local", "ray"):
        (tmp_path / executor).mkdir()
        run_score(src, tmp_path / executor / "scored.jsonl", cfg, progress=False, executor=executor)
    for name in ("scored.jsonl", "score_errors.jsonl"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    report = json.loads((tmp_path / "ray" / "score_report.json").read_text())
    assert report["scored"] + report["errors"] == 25 and report["groups"]["lm"]["computed"] == 22

    again = run_score(src, tmp_path / "ray" / "scored.jsonl", cfg, progress=False, executor="ray")
    assert again.report["groups"]["lm"]["computed"] == 0  # the Ray run filled the same cache: a rerun resumes
