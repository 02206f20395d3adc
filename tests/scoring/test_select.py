"""`curate select`: top-N, fractions, thresholds, random, ties, the diversity gate, every row accounted for."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from scoring_fixtures import write_jsonl

from curate.cli import cli
from curate.records import make_record
from curate.selection import SelectConfig, select_rows

TOPICS = ["rivers and lakes of northern europe", "baking sourdough bread at home", "the rules of chess openings",
          "how vaccines train the immune system", "writing a cover letter for a job", "the history of the printing press",
          "saving money on groceries each week", "how solar panels make electricity", "learning to play the guitar",
          "the life cycle of a butterfly"]


def pool(scores, length=None):
    rows = []
    for i, score in enumerate(scores):
        topic = TOPICS[i % len(TOPICS)]
        answer = f"Here is a short note number {i} about {topic}. " + "It covers the basics in plain words. " * (i % 4 + 1)
        row = make_record([{"role": "user", "content": f"Tell me about {topic} (request {i})."},
                           {"role": "assistant", "content": answer}], meta={"n": i})
        row["scores"] = {"ifd": score} if score is not None else {}
        if length is not None:
            row["scores"]["length"] = length[i]
        rows.append(row)
    return rows


def ids(rows):
    return [r["meta"]["n"] for r in rows]


def accounted(rows, chosen, unselected):
    assert len(chosen) + len(unselected) == len(rows)
    assert sorted(r["id"] for r in chosen + unselected) == sorted(r["id"] for r in rows)
    assert all(r["reject"]["stage"] == "select" and r["reject"]["reason"] for r in unselected)


def test_top_n_keeps_input_order_and_reports():
    rows = pool([0.5, 0.9, 0.1, 0.7, 0.3])
    chosen, unselected, report = select_rows(rows, SelectConfig(by="ifd", top=2))
    assert ids(chosen) == [1, 3]
    accounted(rows, chosen, unselected)
    assert {r["reject"]["reason"] for r in unselected} == {"not_in_top"}
    assert report["subset"]["mean_score"] == pytest.approx(0.8)
    assert report["chosen"] == 2 and report["unselected"] == 3


def test_top_fraction_and_ascending():
    rows = pool([0.5, 0.9, 0.1, 0.7, 0.3, 0.2, 0.8, 0.6, 0.4, 0.0])
    chosen, _, _ = select_rows(rows, SelectConfig(by="ifd", top_fraction=0.3))
    assert ids(chosen) == [1, 3, 6]
    chosen, _, _ = select_rows(rows, SelectConfig(by="ifd", top_fraction=0.2, ascending=True))
    assert ids(chosen) == [2, 9]


def test_thresholds_and_missing_scores():
    rows = pool([0.5, None, 0.1, 0.7, 1.3])
    chosen, unselected, report = select_rows(rows, SelectConfig(by="ifd", min=0.2, max=1.0))
    assert ids(chosen) == [0, 3]
    reasons = {r["meta"]["n"]: r["reject"]["reason"] for r in unselected}
    assert reasons == {1: "no_score", 2: "below_min", 4: "above_max"}
    assert report["unselected_by_reason"] == {"no_score": 1, "below_min": 1, "above_max": 1}


def test_ties_are_broken_by_id_whatever_the_input_order():
    rows = pool([0.5] * 6)
    first, _, _ = select_rows(rows, SelectConfig(by="ifd", top=3))
    second, _, _ = select_rows(list(reversed(rows)), SelectConfig(by="ifd", top=3))
    assert sorted(r["id"] for r in first) == sorted(r["id"] for r in second) == sorted(r["id"] for r in rows)[:3]


def test_random_is_seeded_and_ignores_scores():
    rows = pool([None] * 20)
    a, ua, _ = select_rows(rows, SelectConfig(random=5, seed=3))
    b, _, _ = select_rows(rows, SelectConfig(random=5, seed=3))
    c, _, _ = select_rows(rows, SelectConfig(random=5, seed=4))
    assert ids(a) == ids(b) and ids(a) != ids(c) and len(a) == 5
    accounted(rows, a, ua)
    assert {r["reject"]["reason"] for r in ua} == {"not_sampled"}


def test_diversity_gate_drops_planted_near_duplicates():
    rows = pool([1.0 - i / 100 for i in range(10)])
    # plant near-duplicates of rows 0 and 3 (one word changed), scored just below them
    for n, source in ((10, 0), (11, 3)):
        messages = [dict(m) for m in rows[source]["messages"]]
        messages[1]["content"] = messages[1]["content"].replace("short", "brief")
        dup = make_record(messages, meta={"n": n})
        dup["scores"] = {"ifd": rows[source]["scores"]["ifd"] - 0.001}
        rows.append(dup)
    chosen, unselected, _ = select_rows(rows, SelectConfig(by="ifd", top=10, diversity=0.5))
    assert sorted(ids(chosen)) == list(range(10))
    similar = {r["meta"]["n"]: r["reject"] for r in unselected if r["reject"]["reason"] == "too_similar"}
    assert set(similar) == {10, 11}
    assert similar[10]["detail"]["similar_to"] == rows[0]["id"] and similar[10]["detail"]["similarity"] >= 0.5
    # without the gate the duplicates crowd out rows 8 and 9
    plain, _, _ = select_rows(rows, SelectConfig(by="ifd", top=10))
    assert {10, 11} <= set(ids(plain))


def test_overlap_with_longest_uses_length_scores():
    rows = pool([0.1, 0.2, 0.3, 0.4], length=[100, 10, 20, 90])
    _, _, report = select_rows(rows, SelectConfig(by="ifd", top=2))
    assert report["overlap_with_longest"]["rows"] == 1  # chosen {2, 3}, longest {0, 3}
    assert report["response_length_unit"] == "tokens (scores.length)"
    assert report["subset"]["mean_response_length"] == pytest.approx(55)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"top": 2}, "--by SCORE is needed"),
    ({"by": "ifd", "top": 2, "top_fraction": 0.1}, "not both"),
    ({"random": 3, "by": "ifd"}, "--by does not apply with --random"),
    ({"by": "ifd", "diversity": 1.5}, "--diversity must be in"),
])
def test_bad_configs(kwargs, message):
    from curate.errors import CurateError

    with pytest.raises(CurateError, match=message):
        SelectConfig(**kwargs)


def test_select_cli_writes_the_set_and_accounts_for_every_row(tmp_path):
    rows = pool([0.5, 0.9, 0.1, 0.7, 0.3, 0.2])
    src = write_jsonl(tmp_path / "scored.jsonl", rows)
    out = tmp_path / "chosen.jsonl"
    result = CliRunner().invoke(cli, ["select", str(src), "--out", str(out), "--by", "ifd", "--top-fraction", "0.5"])
    assert result.exit_code == 0, result.output
    chosen = [json.loads(x) for x in out.read_text().splitlines()]
    unselected = [json.loads(x) for x in (tmp_path / "unselected.jsonl").read_text().splitlines()]
    accounted(rows, chosen, unselected)
    assert ids(chosen) == [0, 1, 3]
    report = json.loads((tmp_path / "select_report.json").read_text())
    assert report["chosen"] == 3 and report["config"]["top_fraction"] == 0.5
    assert (tmp_path / "select_config.yaml").exists()
    for args, message in ((["--by", "judge", "--top", "2"], "no row of"), (["--by", "ifd", "--seed", "1"], "--seed applies"),
                          (["--random", "2", "--top", "1"], "--top does not apply")):
        bad = CliRunner().invoke(cli, ["select", str(src), "--out", str(tmp_path / "x.jsonl"), *args])
        assert bad.exit_code == 2 and message in bad.output, bad.output


def test_embedding_similarity_gate_runs_on_a_local_model(tiny_model_dir):
    rows = pool([1.0 - i / 100 for i in range(6)])
    dup = make_record(rows[0]["messages"][:1] + [{"role": "assistant", "content": rows[0]["messages"][1]["content"] + " "}],
                      meta={"n": 6})
    dup["scores"] = {"ifd": 0.995}
    rows.append(dup)
    chosen, unselected, _ = select_rows(rows, SelectConfig(by="ifd", diversity=0.999, similarity="embedding",
                                                           embed_model=str(tiny_model_dir)))
    assert [r["meta"]["n"] for r in unselected] == [6]
    assert unselected[0]["reject"]["detail"]["similar_to"] == rows[0]["id"]
