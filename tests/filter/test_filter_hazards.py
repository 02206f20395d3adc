"""What breaks training: special-token text, roles out of order, PII, non-UTF-8 rows under --skip-invalid."""

from __future__ import annotations

import json

from click.testing import CliRunner
from filter_data import read_jsonl, record, write_jsonl

from curate.cli import cli
from curate.filtering import hazards
from curate.records import make_record, record_id


def run(args):
    return CliRunner().invoke(cli, ["filter", *map(str, args)], catch_exceptions=False)


def chat(*turns):
    return make_record([{"role": r, "content": c} for r, c in turns], meta={"source": "test"})


def test_special_token_text_rejected_or_stripped(tmp_path):
    rows = [record("What is the capital of France, please tell me?", "Paris is the capital.<|endoftext|>"),
            record("Name a colour that the sky often has?", "Blue, mostly <|im_end|> on clear days."),
            record("Give me one prime number under ten?", "Seven is a prime number.")]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    assert run([path, "--out", tmp_path / "a.jsonl", "--no-dedup"]).exit_code == 0
    report = json.loads((tmp_path / "a.filter_report.json").read_text())
    assert report["rejected_by_reason"] == {"special_token_text": 2}
    rejected = read_jsonl(tmp_path / "a.rejected.jsonl")
    assert rejected[0]["reject"]["detail"] == "contains '<|endoftext|>'"
    result = run([path, "--out", tmp_path / "b.jsonl", "--no-dedup", "--strip-special-tokens"])
    assert result.exit_code == 0, result.output
    kept = read_jsonl(tmp_path / "b.jsonl")
    assert [r["messages"][1]["content"] for r in kept] == ["Paris is the capital.", "Seven is a prime number."]
    assert kept[0]["id"] == record_id(kept[0]["messages"]) != rows[0]["id"]  # a changed row gets its new id
    assert kept[1] == rows[2]  # unchanged rows pass through as they were
    report = json.loads((tmp_path / "b.filter_report.json").read_text())
    assert report["rejected_by_reason"] == {"special_token_text": 1}  # mid-answer token: still rejected
    assert report["changed"]["special_token_stripped"] == 1


def test_role_order():
    good = ["ua", "sua", "uaua", "uata", "suatata"]
    bad = ["au", "uau", "uua", "suaa", "us", "sa", "ut"]
    import re

    assert all(re.match(hazards.ROLE_ORDER, r) for r in good)
    assert not any(re.match(hazards.ROLE_ORDER, r) for r in bad)


def test_role_order_rule_in_the_sft_preset(tmp_path):
    rows = [chat(("user", "Hello there, how are you today?"), ("assistant", "Fine, thank you for asking.")),
            chat(("assistant", "I start the talk here, oddly."), ("user", "And then I ask something?"),
                 ("assistant", "And I answer it.")),
            chat(("user", "First question for you here?"), ("user", "Second question right after it?"),
                 ("assistant", "One answer to both.")),
            chat(("user", "A question with an answer?"), ("assistant", "An answer."), ("user", "A dangling turn?"))]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    assert run([path, "--out", tmp_path / "c.jsonl", "--no-dedup"]).exit_code == 0
    rejected = read_jsonl(tmp_path / "c.rejected.jsonl")
    assert [r["reject"]["reason"] for r in rejected] == ["role_order"] * 3
    assert rejected[0]["reject"]["detail"].startswith("role sequence aua")


def test_pii_reject_and_mask_with_counts(tmp_path):
    rows = [record("Write to me at jane.doe@example.org about the plan?", "Sure, I will write to you soon."),
            record("Which server is failing right now in the rack?", "The one at 10.0.0.12 is down, call 415-555-0199."),
            record("What is two plus two, in plain words?", "Two plus two is four.")]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    assert run([path, "--out", tmp_path / "r.jsonl", "--no-dedup", "--pii", "reject"]).exit_code == 0
    report = json.loads((tmp_path / "r.filter_report.json").read_text())
    assert report["rejected_by_reason"] == {"pii": 2}
    assert report["pii"]["rows_by_kind"] == {"email": 1, "ip_address": 1, "phone": 1}
    assert run([path, "--out", tmp_path / "m.jsonl", "--no-dedup", "--pii", "mask"]).exit_code == 0
    kept = read_jsonl(tmp_path / "m.jsonl")
    assert len(kept) == 3
    assert kept[0]["messages"][0]["content"] == "Write to me at [EMAIL] about the plan?"
    assert kept[1]["messages"][1]["content"] == "The one at [IP_ADDRESS] is down, call [PHONE]."
    assert kept[0]["id"] == record_id(kept[0]["messages"])
    report = json.loads((tmp_path / "m.filter_report.json").read_text())
    assert report["changed"]["pii_masked"] == 2 and report["pii"]["rows"] == 2


def test_skip_invalid_quarantines_a_non_utf8_row(tmp_path):
    rows = [record(f"Question number {i} about something?", f"Answer number {i} to it.") for i in range(4)]
    lines = [json.dumps(r).encode() for r in rows]
    lines[2] = lines[2].replace(b"Answer", b"Answ\xff\xfer")
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = run([path, "--out", tmp_path / "curated.jsonl", "--skip-invalid", "--no-dedup"])
    assert result.exit_code == 0, result.output
    quarantined = read_jsonl(tmp_path / "curated.invalid.jsonl")
    assert [q["line"] for q in quarantined] == [3] and "UTF-8" in quarantined[0]["reason"]
    assert len(read_jsonl(tmp_path / "curated.jsonl")) == 3
    without = CliRunner().invoke(cli, ["filter", str(path), "--out", str(tmp_path / "x.jsonl")])
    assert without.exit_code == 2 and f"{path}:3" in without.output
