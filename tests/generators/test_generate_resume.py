"""Resume after Ctrl-C or kill -9: no duplicated rows, no lost rows, pool rebuilt; manifest totals."""

from __future__ import annotations

import hashlib
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
from generators.config import build_config
from generators.engines.fake import FakeEngine
from generators.run import generate


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Teacher:
    """Distinct, novel instructions (random words from a large made-up vocabulary), plus
    answers for the classification and instance prompts. Deterministic per request seed."""

    def __init__(self, first_reply: str | None = None):
        self.first_reply = first_reply

    def __call__(self, request) -> str:
        import random

        if request.prompt.endswith("Is it classification?"):
            return " No"
        if request.id.split("-")[1] == "instances":
            task = request.prompt.rsplit("Task: ", 1)[-1]
            return f"Example 1\nInput: {task[:20]}\nOutput: done {len(task)}\nExample 2\nInput: again\nOutput: ok"
        if self.first_reply is not None:
            reply, self.first_reply = self.first_reply, None
            return reply
        rng = random.Random(request.seed)
        items = [" ".join(f"w{rng.randrange(100000)}" for _ in range(6)) for _ in range(3)]
        return " Describe " + items[0] + "\n10. Describe " + items[1] + "\n11. Describe " + items[2]


def config(**overrides):
    return build_config(**{"num_instructions": 12, "request_batch_size": 2, **overrides})


def test_ctrl_c_then_resume_loses_and_duplicates_nothing(seeds_file, tmp_path):
    out = tmp_path / "run" / "generated.jsonl"
    engine = FakeEngine(default=Teacher())
    engine.interrupt_after = 14  # mid-batch, after some batches were written
    with pytest.raises(KeyboardInterrupt):
        generate(config(), seeds_file, out, engine, progress=False)
    before = rows(out)
    assert before, "some batches were committed before the interrupt"
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["totals"]["rows"] == len(before)

    accepted_before = before[0]["meta"]["instruction"]
    summary = generate(config(), seeds_file, out, FakeEngine(default=Teacher(first_reply=" " + accepted_before)),
                       progress=False)
    after = rows(out)
    assert after[: len(before)] == before  # nothing lost, nothing rewritten
    assert len({r["id"] for r in after}) == len(after)  # nothing duplicated
    assert len({r["meta"]["instruction"] for r in after}) == 12 == summary.totals.instructions_accepted
    assert summary.resumed_rows == len(before)
    # the pool was rebuilt from the accepted rows: a repeat of an earlier instruction is not novel
    rejected = rows(out.parent / "rejected_candidates.jsonl")
    assert any(r["reason"] == "too_similar" and r["instruction"] == accepted_before for r in rejected)
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["sessions"]) == 2
    assert manifest["run_id"] == before[0]["meta"]["run_id"] == after[-1]["meta"]["run_id"]
    assert manifest["totals"]["rows"] == len(after)
    assert manifest["totals"]["rejected_total"] == len(rejected)


def test_torn_last_line_and_uncommitted_logs_are_repaired(seeds_file, tmp_path):
    out = tmp_path / "generated.jsonl"
    generate(config(num_instructions=4), seeds_file, out, FakeEngine(default=Teacher()), progress=False)
    committed = rows(out)
    last_batch = json.loads((tmp_path / "manifest.json").read_text())["batches_done"] - 1
    # a kill -9 in the middle of the next batch's writes: its log rows went out, the records were torn
    with (tmp_path / "rejected_candidates.jsonl").open("a") as log:
        log.write(json.dumps({"batch": last_batch + 1, "stage": "instruction", "reason": "too_short",
                              "instruction": "x"}) + "\n")
    with (tmp_path / "errors.jsonl").open("a") as log:
        log.write(json.dumps({"batch": last_batch + 1, "stage": "instructions", "error": "boom"}) + "\n")
    with out.open("a") as handle:
        handle.write('{"id": "torn", "messages": [{"role": "us')
    summary = generate(config(num_instructions=8), seeds_file, out, FakeEngine(default=Teacher()), progress=False)
    after = rows(out)
    assert after[: len(committed)] == committed
    assert all(r["id"] != "torn" for r in after)
    assert len({r["meta"]["instruction"] for r in after}) == 8
    assert all(r.get("error") != "boom" for r in rows(tmp_path / "errors.jsonl"))
    rejected = rows(tmp_path / "rejected_candidates.jsonl")
    assert not any(r["instruction"] == "x" for r in rejected)
    assert sum(summary.totals.rejected.values()) == len(rejected)
    assert summary.totals.errors == len(rows(tmp_path / "errors.jsonl"))


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    from test_generate_resume import Teacher, config
    from generators.engines.fake import FakeEngine
    from generators.run import generate
    teacher = Teacher()
    def slow(request):
        time.sleep(0.02)
        return teacher(request)
    generate(config(num_instructions=400, stall_batches=1000), {seeds!r}, {out!r}, FakeEngine(default=slow), progress=False)
""")


def test_kill_9_mid_run_then_resume(seeds_file, tmp_path):
    out = tmp_path / "generated.jsonl"
    root = str(Path(__file__).resolve().parents[2])
    script = KILL_SCRIPT.format(root=root, tests=str(Path(__file__).parent), seeds=str(seeds_file), out=str(out))
    process = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": root})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 6):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    before_text = out.read_text()
    before = [json.loads(line) for line in before_text.splitlines(keepends=True) if line.endswith("\n")]
    assert len(before) >= 6
    target = len({r["meta"]["instruction"] for r in before}) + 5
    generate(config(num_instructions=target), seeds_file, out, FakeEngine(default=Teacher()), progress=False)
    after = rows(out)
    assert after[: len(before)] == before
    assert len({r["id"] for r in after}) == len(after)
    assert len({r["meta"]["instruction"] for r in after}) == target


def test_resume_refuses_another_preset_or_other_seeds(seeds_file, make_seeds, tmp_path):
    out = tmp_path / "generated.jsonl"
    generate(config(num_instructions=2), seeds_file, out, FakeEngine(default=Teacher()), progress=False)
    with pytest.raises(CurateError, match="--preset self-instruct"):
        generate(config(num_instructions=3, preset="alpaca"), seeds_file, out, FakeEngine(), progress=False)
    with pytest.raises(CurateError, match="one run per folder"):
        generate(config(num_instructions=3), seeds_file, tmp_path / "second.jsonl", FakeEngine(), progress=False)
    other = make_seeds(tmp_path / "other.jsonl", count=10)
    with pytest.raises(CurateError, match="other seed tasks"):
        generate(config(num_instructions=3), other, out, FakeEngine(), progress=False)


def test_token_budget_stops_and_the_same_command_continues(seeds_file, tmp_path):
    out = tmp_path / "generated.jsonl"
    first = generate(config(max_tokens_total=1), seeds_file, out, FakeEngine(default=Teacher()), progress=False)
    assert first.status == "budget" and first.totals.batches == 1
    n_first = len(rows(out))
    second = generate(config(), seeds_file, out, FakeEngine(default=Teacher()), progress=False)
    assert second.status == "complete" and len(rows(out)) > n_first


def test_manifest_records_config_engine_seeds_and_cost(seeds_file, tmp_path):
    out = tmp_path / "generated.jsonl"
    engine = FakeEngine(default=Teacher())
    engine.enqueue_error("HTTP 500")
    summary = generate(config(num_instructions=3, price_in=2.0, price_out=10.0), seeds_file, out, engine,
                       progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["num_instructions"] == 3 and manifest["config"]["novelty_threshold"] == 0.7
    assert manifest["engine"] == {"name": "fake", "model": "fake-teacher"} and manifest["teacher"] == "fake-teacher"
    assert manifest["seeds"]["sha256"] == hashlib.sha256(b"seed_tasks.jsonl\0" + seeds_file.read_bytes()).hexdigest()
    assert manifest["seeds"]["count"] == 12
    assert set(manifest["prompt_templates"]) == {"instructions", "classification", "instances_classification",
                                                 "instances_generation"}
    totals = manifest["totals"]
    assert totals["rows"] == len(rows(out)) and totals["instructions_accepted"] == 3
    assert totals["errors"] == totals["failed_requests"] == 1 == len(rows(tmp_path / "errors.jsonl"))
    assert totals["tokens_in"] == summary.totals.tokens_in > 0
    expected = round(totals["tokens_in"] / 1e6 * 2.0 + totals["tokens_out"] / 1e6 * 10.0, 6)
    assert totals["cost"] == expected
    assert totals["wall_time_s"] > 0


LEDGER_TOTALS = ("requests", "failed_requests", "tokens_in", "tokens_out", "candidates", "rows")


def test_totals_after_interrupts_and_resume_equal_an_uninterrupted_run(seeds_file, tmp_path):
    straight = generate(config(), seeds_file, tmp_path / "a" / "generated.jsonl", FakeEngine(default=Teacher()),
                        progress=False)
    out = tmp_path / "b" / "generated.jsonl"
    for stop_after in (5, 17):  # two interrupts mid-batch, each leaving a batch half done
        engine = FakeEngine(default=Teacher())
        engine.interrupt_after = stop_after
        with pytest.raises(KeyboardInterrupt):
            generate(config(), seeds_file, out, engine, progress=False)
    resumed = generate(config(), seeds_file, out, FakeEngine(default=Teacher()), progress=False)
    for key in LEDGER_TOTALS:
        assert getattr(resumed.totals, key) == getattr(straight.totals, key), key
    assert resumed.totals.rejected == straight.totals.rejected
    manifest = json.loads((out.parent / "manifest.json").read_text())
    ledger = rows(out.parent / "batches.jsonl")
    for key in LEDGER_TOTALS:
        assert manifest["totals"][key] == sum(row[key] for row in ledger), key
    assert manifest["totals"]["rows"] == len(rows(out))
    assert manifest["totals"]["rejected_total"] == len(rows(out.parent / "rejected_candidates.jsonl"))
    assert [s["status"] for s in manifest["sessions"]] == ["interrupted", "interrupted", "complete"]


def test_a_session_killed_with_9_is_marked_interrupted_and_its_half_batch_redone(seeds_file, tmp_path):
    out = tmp_path / "generated.jsonl"
    generate(config(num_instructions=4), seeds_file, out, FakeEngine(default=Teacher()), progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    # what kill -9 after the ledger row and before the records leaves: a running session, a ledger row
    # whose records never landed, and its log rows
    manifest["sessions"][-1]["status"] = "running"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    batch = manifest["batches_done"]
    with (tmp_path / "batches.jsonl").open("a") as ledger:
        ledger.write(json.dumps({"batch": batch, **dict.fromkeys(LEDGER_TOTALS, 3), "wall_time_s": 1.0}) + "\n")
    with (tmp_path / "errors.jsonl").open("a") as log:
        log.write(json.dumps({"batch": batch, "stage": "instructions", "error": "lost"}) + "\n")
    summary = generate(config(num_instructions=6), seeds_file, out, FakeEngine(default=Teacher()), progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [s["status"] for s in manifest["sessions"]] == ["interrupted", "complete"]
    ledger = rows(tmp_path / "batches.jsonl")
    assert [row["batch"] for row in ledger] == list(range(len(ledger)))  # the dangling row was dropped, redone
    assert summary.totals.requests == sum(row["requests"] for row in ledger) == manifest["totals"]["requests"]
    assert not any(row.get("error") == "lost" for row in rows(tmp_path / "errors.jsonl"))


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_holds_it(seeds_file, tmp_path):
    from curate.runs.lock import output_lock

    out = tmp_path / "generated.jsonl"
    with output_lock(tmp_path / "manifest.json", "curate generate (the first run)"), \
            pytest.raises(CurateError, match="in use by pid"):
        generate(config(num_instructions=2), seeds_file, out, FakeEngine(default=Teacher()), progress=False)
    assert not out.exists()


def test_progress_shows_generated_tokens_per_second_in_flight_and_spend(seeds_file):
    from generators.run import Totals, _Progress

    engine = FakeEngine()
    engine.in_flight = 3
    bar = _Progress(config(price_in=1.0, price_out=2.0), 0, Totals(tokens_in=10**6, tokens_out=100), engine,
                    enabled=True)
    try:
        bar.update(Totals(tokens_in=10**7, tokens_out=100 + 500, rows=2, instructions_accepted=1))
        bar._start -= 10  # as if the 500 tokens took ten seconds
        stats = bar.stats()
    finally:
        bar.close()
    assert "rows 2" in stats and "3 in flight" in stats and "$10.0012 spent" in stats
    rate = float(stats.split(" gen tok/s")[0].rsplit("· ", 1)[1].replace(",", ""))
    assert 45 <= rate <= 50  # 500 generated tokens in ~10 s: the 9M prompt tokens are not counted


def test_requests_in_flight_for_an_engine_without_its_own_counter():
    from generators.engines.base import Request
    from generators.run import _KindTally

    seen = []
    tally = _KindTally(FakeEngine(default=lambda request: seen.append(tally.in_flight) or "reply"))
    tally.engine.enqueue_error("HTTP 500")
    results = tally.generate([Request(prompt="p", max_tokens=5, id=f"r{i}") for i in range(3)])
    assert seen == [3, 3] and tally.in_flight == 0  # the batch handed over, then none
    assert tally.kinds == {"r0": "engine"} and [r.ok for r in results] == [False, True, True]
