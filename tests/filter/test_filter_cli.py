"""`curate filter` end to end through the CLI: outputs, reconciliation, bad input, atomicity, --against."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from click.testing import CliRunner
from filter_data import read_jsonl, record, sentence, write_jsonl

from curate.cli import cli


def run(args):
    result = CliRunner().invoke(cli, ["filter", *map(str, args)])
    return result


@pytest.fixture
def data(tmp_path, dup_records):
    rows, cluster_of = dup_records
    rows = rows + [
        record("Tell me a joke about the sea and its waves please.", "As an AI language model, I can't joke."),
        record("Summarize the water cycle for a child in short words.", "   "),
        rows[0],  # an exact copy
        record(rows[1]["messages"][0]["content"].upper(), rows[1]["messages"][1]["content"] + " !!"),  # exact
    ]
    return write_jsonl(tmp_path / "in.jsonl", rows), rows, cluster_of


def test_outputs_reconcile_and_explain_every_drop(tmp_path, data):
    path, rows, cluster_of = data
    out = tmp_path / "out" / "curated.jsonl"
    result = run([path, "--out", out, "--threshold", "0.5", "--ngram", "3"])
    assert result.exit_code == 0, result.output
    kept = read_jsonl(out)
    rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    report = json.loads((tmp_path / "out" / "filter_report.json").read_text())
    assert report["in"] == len(rows) == len(kept) + len(rejected) == report["kept"] + report["rejected"]
    assert report["reconciles"] is True
    by_reason = {}
    for row in rejected:
        by_reason.setdefault(row["reject"]["reason"], []).append(row)
        assert set(row) >= {"id", "messages", "meta", "reject"}  # the whole row
    assert sorted(by_reason) == ["boilerplate", "empty_turn", "exact_duplicate", "near_duplicate"]
    assert len(by_reason["near_duplicate"]) == 10
    assert len(by_reason["exact_duplicate"]) == 2
    assert report["rejected_by_reason"] == {k: len(v) for k, v in by_reason.items()}
    kept_ids = {r["id"] for r in kept}
    for row in by_reason["near_duplicate"]:
        reject = row["reject"]
        assert reject["stage"] == "near_dedup" and reject["dup_of"] in kept_ids
        assert cluster_of[reject["dup_of"]] == cluster_of[row["id"]]
        assert reject["cluster_id"].startswith("near-")
    assert len({cluster_of[r["id"]] for r in kept if r["id"] in cluster_of}) == 20  # one per cluster
    assert set(report["near_dedup"]["s_curve"]) >= {"0.50", "0.95"}
    assert "kept" in result.output


def test_resolved_config_reproduces_the_run(tmp_path, data):
    path, _, _ = data
    first = tmp_path / "a" / "curated.jsonl"
    assert run([path, "--out", first, "--threshold", "0.5", "--keep", "longest"]).exit_code == 0
    config = tmp_path / "a" / "filter_config.yaml"
    resolved = yaml.safe_load(config.read_text())
    assert resolved["dedup"]["keep"] == "longest" and resolved["dedup"]["threshold"] == 0.5
    second = tmp_path / "b" / "curated.jsonl"
    assert run([path, "--out", second, "--config", config]).exit_code == 0
    assert first.read_text() == second.read_text()


def test_yaml_overrides_and_flags_override_yaml(tmp_path, data):
    path, _, _ = data
    config = tmp_path / "f.yaml"
    config.write_text("preset: none\nthresholds: {max_response_words: 5}\ndedup: {threshold: 0.9}\n")
    out = tmp_path / "x.jsonl"
    assert run([path, "--out", out, "--config", config, "--threshold", "0.5"]).exit_code == 0
    resolved = yaml.safe_load((tmp_path / "x.filter_config.yaml").read_text())
    assert resolved["preset"] == "none" and resolved["filters"] == []
    assert resolved["thresholds"]["max_response_words"] == 5
    assert resolved["dedup"]["threshold"] == 0.5
    report = json.loads((tmp_path / "x.filter_report.json").read_text())
    assert "boilerplate" not in report["rejected_by_reason"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds: {nope: 1}\n")
    result = run([path, "--out", tmp_path / "y.jsonl", "--config", bad])
    assert result.exit_code == 2
    assert "error:" in result.output and "unknown threshold 'nope'" in result.output


def test_no_dedup_and_preset_none(tmp_path, data):
    path, rows, _ = data
    out = tmp_path / "curated.jsonl"
    assert run([path, "--out", out, "--preset", "none", "--no-dedup"]).exit_code == 0
    report = json.loads((tmp_path / "filter_report.json").read_text())
    assert report["rejected_by_reason"] == {"exact_duplicate": 2}
    assert "near_dedup" not in report


def test_dedup_on_prompt_only_sees_prompts(tmp_path):
    prompt = sentence(__import__("random").Random(2), 40)
    rows = [record(prompt, "First answer, quite different from the second one in every way."),
            record(prompt, "Second answer: an entirely separate text with other words.")]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    assert run([path, "--out", tmp_path / "p.jsonl", "--dedup-on", "prompt"]).exit_code == 0
    assert run([path, "--out", tmp_path / "r.jsonl", "--dedup-on", "response"]).exit_code == 0
    assert len(read_jsonl(tmp_path / "p.jsonl")) == 1
    assert len(read_jsonl(tmp_path / "r.jsonl")) == 2


def test_multi_turn_first_user(tmp_path):
    from curate.records import make_record

    first = "Plan a three day trip to the mountains with hiking and a lake."
    def convo(follow):
        return make_record([{"role": "user", "content": first}, {"role": "assistant", "content": "Day one: hike."},
                            {"role": "user", "content": follow}, {"role": "assistant", "content": follow + " ok"}],
                           meta={})
    rows = [convo("Now make it cheaper please, with tents and campfires."),
            convo("What should I pack for rain and cold nights in October?")]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    assert run([path, "--out", tmp_path / "a.jsonl", "--multi-turn", "all", "--preset", "none"]).exit_code == 0
    assert run([path, "--out", tmp_path / "f.jsonl", "--multi-turn", "first-user", "--preset", "none"]).exit_code == 0
    assert len(read_jsonl(tmp_path / "a.jsonl")) == 2
    assert len(read_jsonl(tmp_path / "f.jsonl")) == 1
    assert read_jsonl(tmp_path / "rejected.jsonl" if False else tmp_path / "f.rejected.jsonl")[0]["reject"][
        "reason"] == "exact_duplicate"


def test_against_drops_rows_already_in_an_earlier_set(tmp_path, dup_records):
    rows, _ = dup_records
    old = write_jsonl(tmp_path / "old.jsonl", rows[:3])  # cluster 0: base + 2 copies
    before = old.read_text()
    new_rows = [rows[0], rows[3], rows[4], rows[5]] + rows[-2:]
    path = write_jsonl(tmp_path / "new.jsonl", new_rows)
    out = tmp_path / "curated.jsonl"
    assert run([path, "--out", out, "--against", old, "--threshold", "0.5", "--ngram", "3"]).exit_code == 0
    assert old.read_text() == before
    rejected = {r["id"]: r["reject"] for r in read_jsonl(tmp_path / "rejected.jsonl")}
    assert rejected[rows[0]["id"]]["reason"] == "exact_duplicate_of_existing"
    assert rejected[rows[0]["id"]]["dup_of"] == rows[0]["id"]
    kept = [r["id"] for r in read_jsonl(out)]
    assert rows[3]["id"] in kept  # cluster 1 base survives; its copies go as ordinary near-duplicates
    assert {rejected[r["id"]]["reason"] for r in (rows[4], rows[5])} == {"near_duplicate"}


def test_decontaminate_flag(tmp_path, data):
    path, rows, _ = data
    eval_path = write_jsonl(tmp_path / "eval.jsonl", [rows[16]])  # an eval set holding one of our rows
    out = tmp_path / "curated.jsonl"
    assert run([path, "--out", out, "--decontaminate", eval_path]).exit_code == 0
    rejected = [r for r in read_jsonl(tmp_path / "rejected.jsonl") if r["reject"]["reason"] == "contamination"]
    assert [r["id"] for r in rejected] == [rows[16]["id"]]
    assert rejected[0]["reject"]["eval_id"] == rows[16]["id"]


def test_malformed_row_names_file_and_line_and_keeps_old_outputs(tmp_path, data):
    path, _, _ = data
    out = tmp_path / "curated.jsonl"
    assert run([path, "--out", out]).exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != path.name}
    broken = tmp_path / "broken.jsonl"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace('"messages"', '"messagez"')
    broken.write_text("\n".join(lines) + "\n{not json\n")
    result = run([broken, "--out", out])
    assert result.exit_code == 2
    assert f"error: {broken}:4: field 'messagez'" in result.output
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name not in (path.name, broken.name)}
    assert after == before  # previous outputs untouched, no temp files left


def test_skip_invalid_quarantines_bad_rows(tmp_path, data):
    path, rows, _ = data
    lines = path.read_text().splitlines()
    lines.insert(2, "{not json")
    lines.insert(5, json.dumps({"id": "x", "messages": [{"role": "user", "content": "hi"}], "meta": {}}))
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    out = tmp_path / "curated.jsonl"
    result = run([broken, "--out", out, "--skip-invalid"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "filter_report.json").read_text())
    assert report["invalid"] == 2 and report["in"] == len(rows)
    assert report["in"] == report["kept"] + report["rejected"]
    quarantined = read_jsonl(tmp_path / "curated.invalid.jsonl")
    assert [q["line"] for q in quarantined] == [3, 6]


def test_interrupted_write_leaves_previous_outputs(tmp_path, data, monkeypatch):
    path, _, _ = data
    out = tmp_path / "curated.jsonl"
    assert run([path, "--out", out]).exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    import curate.filtering.outputs as fp

    real = fp.source_rows

    def dying(source):
        for n, row in enumerate(real(source)):
            if n == 5:
                raise KeyboardInterrupt  # Ctrl-C halfway through writing the outputs
            yield row

    monkeypatch.setattr(fp, "source_rows", dying)
    result = run([path, "--out", out, "--threshold", "0.3"])
    assert isinstance(result.exception, KeyboardInterrupt) or result.exit_code != 0
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_edited_id_is_a_line_error(tmp_path, dup_records):
    rows, _ = dup_records
    rows = [dict(r) for r in rows[:3]]
    rows[1]["messages"] = [{"role": "user", "content": "changed"}, {"role": "assistant", "content": "by hand"}]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    result = run([path, "--out", tmp_path / "c.jsonl"])
    assert result.exit_code == 2 and f"{path}:2: field 'id': does not match" in result.output
    assert run([path, "--out", tmp_path / "c.jsonl", "--trust-ids"]).exit_code == 0


def test_keep_best_score_uses_the_named_score(tmp_path):
    rng = __import__("random").Random(4)
    prompt, response = sentence(rng, 40), sentence(rng, 60)
    rows = [record(prompt, response, scores={"judge": 2.0, "ifd": 0.9}),
            record(prompt + " Please.", response, scores={"judge": 9.0, "ifd": 0.1})]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    for key, winner in (("judge", 1), ("ifd", 0)):
        out = tmp_path / f"{key}.jsonl"
        result = run([path, "--out", out, "--keep", "best-score", "--score-key", key, "--threshold", "0.5"])
        assert result.exit_code == 0, result.output
        assert [r["id"] for r in read_jsonl(out)] == [rows[winner]["id"]]


def test_command_choices_match_the_library():
    from curate.commands import filter as command
    from curate.filtering import rules as filters
    from curate.filtering.dedup import config as dedup

    assert tuple(filters.PRESETS) == command.PRESETS
    assert command.DEDUP_ON == dedup.DEDUP_ON
    assert command.ENGINES == dedup.ENGINES
    assert command.KEEP_POLICIES == dedup.KEEP_POLICIES
    assert command.VERIFY_MODES == dedup.VERIFY_MODES


def test_native_read_gives_the_python_paths_frames(tmp_path, dup_records):
    import polars as pl

    from curate.filtering.extract import Columns, chunks
    from curate.filtering.native_read import read_chunks
    from curate.filtering.settings import load_config

    rows, _ = dup_records
    rows = rows + [record("Say hi to me in one word please?", "Hi!<|endoftext|>", language="en", tokens_out=3)]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    for strip in (None, True):
        cfg = load_config(None, {"native_read": True, "strip_special_tokens": strip, "chunk_rows": 7})
        python = pl.concat(list(chunks(path, cfg, Columns(cfg), None)))
        native = pl.concat(list(read_chunks(path, cfg, Columns(cfg), None)))
        assert native.equals(python)
    import io

    from curate.filtering import native_read

    numbers, raw = next(native_read._blocks(path, 7))
    block = pl.read_ndjson(io.BytesIO(b"".join(raw)), schema=native_read._RECORD)
    assert native_read._clean(block, raw, check_ids=True)  # the native path really read the clean blocks
    edited = [dict(r) for r in rows]
    edited[9]["id"] = "0" * 32  # a bad id in the second block: the Python path takes over and names the line
    path = write_jsonl(tmp_path / "bad.jsonl", edited)
    result = run([path, "--out", tmp_path / "o.jsonl", "--native-read"])
    assert result.exit_code == 2 and f"{path}:10: field 'id'" in result.output


def test_a_run_that_keeps_nothing_exits_non_zero_and_keeps_its_explanations(tmp_path):
    rows = [record(f"Question number {i} about the sea?", f"Answer {i} about the sea.<|endoftext|>") for i in range(4)]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    result = run([path, "--out", tmp_path / "curated.jsonl"])
    assert result.exit_code == 1
    assert "no row kept" in result.output
    assert read_jsonl(tmp_path / "curated.jsonl") == []
    assert {r["reject"]["reason"] for r in read_jsonl(tmp_path / "rejected.jsonl")} == {"special_token_text"}
