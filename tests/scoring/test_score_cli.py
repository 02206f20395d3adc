"""`curate score` end to end on a tiny random model: outputs, reconciliation, cache, errors, flags."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from scoring_fixtures import make_records, write_jsonl

from curate.cli import cli
from curate.commands.score import APPLIES, SCORERS
from curate.records import make_record
from curate.scoring.base import SCORE_NAMES


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def score(args):
    result = CliRunner().invoke(cli, ["score", *map(str, args), "--no-progress"])
    return result


def test_names_written_out_in_the_command_match_the_library():
    assert set(SCORERS) == set(SCORE_NAMES)
    for _flag, (_path, scorers) in APPLIES.items():
        assert set(scorers) <= set(SCORE_NAMES)


def test_score_writes_scores_provenance_report_and_reconciles(tmp_path, tiny_model_dir):
    rows = make_records(10)
    rows.append(make_record([{"role": "user", "content": "the cat " * 150}, {"role": "assistant", "content": "no"}],
                            meta={"source": "long"}))
    src = write_jsonl(tmp_path / "curated.jsonl", rows + rows[:2])  # two duplicate ids too
    out = tmp_path / "scored.jsonl"
    result = score([src, "--out", out, "--scorer", "ifd,perplexity,length", "--model", tiny_model_dir,
                    "--tokenizer", tiny_model_dir, "--max-length", 200, "--chunk-size", 4])
    assert result.exit_code == 0, result.output
    scored, errors = read(out), read(tmp_path / "score_errors.jsonl")
    assert len(scored) + len(errors) == len(rows) + 2
    assert len(errors) == 1 and errors[0]["error"]["scorer"] == "lm"
    assert "max_length 200" in errors[0]["error"]["reason"] and errors[0]["id"] == rows[-1]["id"]
    by_id = {r["id"]: r for r in rows}
    for row in scored:
        original = by_id[row["id"]]
        assert set(row["scores"]) == {"ifd", "ifd_ppl", "perplexity", "length"}
        assert row["messages"] == original["messages"] and row["id"] == original["id"]
        assert {k: v for k, v in row["meta"].items() if k != "scoring"} == original["meta"]
        assert set(row["meta"]["scoring"]) == {"ifd", "perplexity", "length"}
        assert row["meta"]["scoring"]["ifd"]["template"]
    report = json.loads((tmp_path / "score_report.json").read_text())
    assert report["in"] == 13 and report["scored"] == 12 and report["errors"] == 1
    assert report["groups"]["lm"]["computed"] == 11 and report["groups"]["lm"]["from_cache"] == 0
    assert report["distributions"]["ifd"]["summary"]["count"] == 12
    assert "lm" in (tmp_path / "score_config.yaml").read_text()
    # rerun: everything from the cache, same output
    before = out.read_bytes()
    again = score([src, "--out", out, "--scorer", "ifd,perplexity,length", "--model", tiny_model_dir,
                   "--tokenizer", tiny_model_dir, "--max-length", 200, "--chunk-size", 4])
    assert again.exit_code == 0, again.output
    report = json.loads((tmp_path / "score_report.json").read_text())
    assert report["groups"]["lm"]["computed"] == 0 and report["groups"]["lm"]["from_cache"] == 11
    assert out.read_bytes() == before


def test_a_torn_cache_line_is_cut_and_its_chunk_recomputed(tmp_path, tiny_model_dir):
    src = write_jsonl(tmp_path / "in.jsonl", make_records(9))
    out = tmp_path / "scored.jsonl"
    args = [src, "--out", out, "--scorer", "length", "--tokenizer", tiny_model_dir, "--chunk-size", 4]
    assert score(args).exit_code == 0
    first = out.read_bytes()
    cache = next((tmp_path / "score_cache").glob("length-*.jsonl"))
    lines = cache.read_text().splitlines(keepends=True)
    cache.write_text("".join(lines[:1]) + lines[1][: len(lines[1]) // 2])  # kill -9 mid-write
    assert score(args).exit_code == 0
    assert out.read_bytes() == first
    report = json.loads((tmp_path / "score_report.json").read_text())
    assert report["groups"]["length"]["computed"] == 5 and report["groups"]["length"]["from_cache"] == 4
    assert len(cache.read_text().splitlines()) == 3


def test_length_counts_tokens_of_the_named_tokenizer(tmp_path, tiny_model_dir, tiny_tokenizer):
    rows = make_records(4)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "s.jsonl"
    assert score([src, "--out", out, "--scorer", "length", "--tokenizer", tiny_model_dir]).exit_code == 0
    for row in read(out):
        expected = sum(len(tiny_tokenizer(m["content"], add_special_tokens=False)["input_ids"])
                       for m in row["messages"] if m["role"] == "assistant")
        assert row["scores"]["length"] == expected
    assert (tmp_path / "s.score_report.json").exists() and (tmp_path / "s.score_errors.jsonl").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--scorer", "length", "--model", "x"], "--model applies to --scorer ifd or perplexity"),
    (["--scorer", "ifd", "--engine", "openai"], "--engine applies to --scorer judge"),
    (["--scorer", "bogus"], "unknown scorer"),
    (["--scorer", "length", "--set", "lm.nope=1"], "unknown key 'lm.nope'"),
])
def test_options_that_do_not_apply_are_errors(tmp_path, args, message):
    src = write_jsonl(tmp_path / "in.jsonl", make_records(2))
    result = score([src, "--out", tmp_path / "o.jsonl", *args])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_out_equal_to_input_is_refused(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", make_records(2))
    result = score([src, "--out", src, "--scorer", "length"])
    assert result.exit_code == 2 and "is the input file" in result.output
