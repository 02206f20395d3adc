"""`--dedup-on pair` end to end, and the report's cluster sanity check."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner
from filter_data import edit, read_jsonl, record, sentence, write_jsonl

from curate.cli import cli


def run(args):
    return CliRunner().invoke(cli, ["filter", *map(str, args)], catch_exceptions=False)


def passage_rows():
    rng = random.Random(21)
    passage = sentence(rng, 200)
    answers = [sentence(rng, 12) for _ in range(5)]
    rows = [record(f"{passage}\n\nQuestion {i}: {sentence(rng, 6)}", answers[i]) for i in range(5)]
    rows.append(record(rows[0]["messages"][0]["content"], edit(answers[0], rng, 1)))  # task 0 answered again
    return rows


def test_pair_keeps_every_task_on_a_shared_passage(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", passage_rows())
    result = run([path, "--out", tmp_path / "pair.jsonl", "--preset", "none", "--dedup-on", "pair",
                  "--threshold", "0.5"])
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(tmp_path / "pair.jsonl")) == 5  # five tasks kept, the repeated answer dropped
    report = json.loads((tmp_path / "pair.filter_report.json").read_text())
    assert report["near_dedup"]["dedup_on"] == "pair" and report["rejected_by_reason"] == {"near_duplicate": 1}
    assert report["near_dedup"]["cluster_sanity"]["flagged_clusters"] == 0


def test_cluster_sanity_flags_clusters_whose_responses_disagree(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", passage_rows())
    assert run([path, "--out", tmp_path / "both.jsonl", "--preset", "none", "--dedup-on", "both",
                "--threshold", "0.5"]).exit_code == 0
    sanity = json.loads((tmp_path / "both.filter_report.json").read_text())["near_dedup"]["cluster_sanity"]
    assert sanity["flagged_clusters"] == 1 and sanity["flagged_rows"] == 4  # the passage merged 5 distinct tasks
    example = sanity["examples"][0]
    assert example["word_overlap"] < 0.5 and example["kept_response"] != example["dropped_response"]
