"""`curate filter --executor ray` on a real local Ray cluster (127.0.0.1, 2 CPUs): the local executor's results.

One cluster for the module (started by the fixture, stopped after). Each case runs the local
executor and the Ray executor on the same few thousand synthetic rows (quality rejects, exact
copies, near copies, rows contaminated by an eval set, scores for best-score) and compares
kept ids, rejected ids, reasons, details and the report's counts row for row.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path

import pytest
from filter_data import edit, record, sentence, write_jsonl

from curate.errors import CurateError
from curate.filtering.pipeline import load_config, run_filter

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


def _rows(n: int = 2000, seed: int = 7) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    rows, evals = [], []
    passages = [sentence(rng, 40) for _ in range(30)]
    for i in range(n):
        kind = i % 10
        if kind == 0 and rows:  # exact copy of an earlier row
            rows.append(json.loads(json.dumps(rows[rng.randrange(len(rows))])))
            continue
        if kind in (1, 2) and rows:  # near copy of an earlier row
            src = rows[rng.randrange(len(rows))]
            prompt = edit(src["messages"][0]["content"], rng, 1)
            response = edit(src["messages"][1]["content"], rng, 1)
        elif kind == 3:  # a shared passage with a new question (pair mode keeps these)
            prompt = rng.choice(passages) + " " + sentence(rng, 8)
            response = sentence(rng, 30)
        elif kind == 4:  # too short: a quality reject
            prompt, response = sentence(rng, 2), "ok"
        else:
            prompt, response = sentence(rng, 25), sentence(rng, 40)
        rows.append(record(prompt, response, scores={"q": round(rng.random(), 3)}))
    for i in range(0, n, 97):  # contaminated rows: the eval set holds their prompts
        evals.append(record(rows[i]["messages"][0]["content"], "x"))
    return rows, evals


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ray_data")
    rows, evals = _rows()
    return write_jsonl(folder / "pool.jsonl", rows), write_jsonl(folder / "eval.jsonl", evals)


def _outcome(out: Path) -> tuple[list[str], list[tuple], dict]:
    kept = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    rejected = [(r["id"], r["reject"]["stage"], r["reject"]["reason"], r["reject"]["detail"],
                 r["reject"].get("dup_of"), r["reject"].get("cluster_id"))
                for r in map(json.loads, (out.parent / "rejected.jsonl").read_text().splitlines())]
    report = json.loads((out.parent / "filter_report.json").read_text())
    for key in ("seconds", "outputs", "stages"):
        report.pop(key)
    return kept, rejected, report


def _both(tmp_path: Path, data: tuple[Path, Path], flags: dict, chunk_rows: int = 700) -> tuple:
    pool, evals = data
    results = []
    for executor in ("local", "ray"):
        cfg = load_config(None, {"decontaminate": [str(evals)], **flags})
        cfg.chunk_rows = chunk_rows
        out = tmp_path / executor / "curated.jsonl"
        out.parent.mkdir(parents=True)
        run_filter(pool, out, cfg, executor=executor)
        results.append(_outcome(out))
    return results


@pytest.mark.parametrize("flags", [
    {"keep": "first"},
    {"keep": "longest"},
    {"keep": "best-score", "score_key": "q"},
    {"dedup_on": "prompt"},
    {"dedup_on": "response", "clustering": "components"},
    {"dedup_on": "both", "verify": "exact", "keep": "longest"},
], ids=lambda f: "-".join(str(v) for v in f.values()))
def test_ray_matches_local(cluster, tmp_path: Path, data: tuple[Path, Path], flags: dict) -> None:
    local, on_ray = _both(tmp_path, data, flags)
    assert on_ray[0] == local[0]
    assert on_ray[1] == local[1]
    assert on_ray[2] == local[2]
    reasons = {r[2] for r in local[1]}
    assert {"exact_duplicate", "near_duplicate", "contamination"} <= reasons  # every stage dropped something


def test_batch_size_does_not_change_the_result(cluster, tmp_path: Path, data: tuple[Path, Path]) -> None:
    small = _both(tmp_path / "small", data, {}, chunk_rows=300)
    assert small[1] == small[0]
    large = _both(tmp_path / "large", data, {}, chunk_rows=5000)
    assert large[1][:2] == small[1][:2]


def _kill_a_busy_worker(deadline: float) -> int | None:
    """SIGKILL the first worker of this test's cluster seen running a stage task (workers are our descendants)."""
    import psutil

    me = psutil.Process()
    while time.monotonic() < deadline:
        for proc in me.children(recursive=True):
            try:
                title = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if title.startswith(("ray::MapBatches", "ray::_partition", "ray::_chain_edges")):
                proc.send_signal(signal.SIGKILL)
                return proc.pid
        time.sleep(0.005)
    return None


def test_killed_worker_completes_or_fails_cleanly(cluster, tmp_path: Path) -> None:
    rows, evals = _rows(6000, seed=11)
    pool = write_jsonl(tmp_path / "pool.jsonl", rows)
    local_out = tmp_path / "local" / "curated.jsonl"
    local_out.parent.mkdir()
    cfg = load_config(None, {})
    cfg.chunk_rows = 200
    run_filter(pool, local_out, cfg, executor="local")
    out = tmp_path / "ray" / "curated.jsonl"
    out.parent.mkdir()
    outcome: dict = {}

    def go() -> None:
        try:
            run_filter(pool, out, cfg, executor="ray")
            outcome["ok"] = True
        except CurateError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=go)
    thread.start()
    killed = _kill_a_busy_worker(time.monotonic() + 60)
    thread.join(timeout=300)
    print(f"killed worker {killed}: {outcome}")
    assert killed is not None, "no worker was caught running a task"
    assert not thread.is_alive()
    if outcome.get("ok"):
        assert _outcome(out) == _outcome(local_out)
    else:
        assert outcome["error"].startswith("ray: the run failed"), outcome
        assert list(out.parent.iterdir()) == []  # nothing written, not even a partial file


@pytest.mark.parametrize("dedup_on", ["pair", "both"])
def test_every_row_rejected_before_dedup(cluster, tmp_path: Path, dedup_on: str) -> None:
    rng = random.Random(3)  # answers that repeat their prompts: all rejected by the rules
    pool = write_jsonl(tmp_path / "echo.jsonl", [record(text, text) for text in (sentence(rng, 12) for _ in range(50))])
    results = []
    for executor in ("local", "ray"):
        out = tmp_path / executor / "curated.jsonl"
        out.parent.mkdir()
        run_filter(pool, out, load_config(None, {"dedup_on": dedup_on}), executor=executor)
        results.append(_outcome(out))
    assert results[1] == results[0]
    assert results[0][0] == []  # nothing kept: the dedup stage had no row
