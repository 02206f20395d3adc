"""The HTML report's scores section: a histogram per score and the top and bottom rows of each."""

from __future__ import annotations

from scoring_fixtures import make_records, write_jsonl

from curate.reporting.page import write_report
from curate.scoring.length import LengthConfig
from curate.scoring.run import ScoreConfig, run_score


def test_report_shows_scores_with_top_and_bottom_rows(tmp_path, tiny_model_dir):
    rows = make_records(12, multi_turn_every=0)
    src = write_jsonl(tmp_path / "curated.jsonl", rows)
    run_score(src, tmp_path / "scored.jsonl", ScoreConfig(scorers=["length"], length=LengthConfig(str(tiny_model_dir))),
              progress=False)
    html = write_report(tmp_path, tmp_path / "report.html").read_text()
    assert 'id="scoring"' in html and 'data-figure="scored"' in html
    longest = max(rows, key=lambda r: len(r["messages"][1]["content"]))["messages"][1]["content"]
    start = html.index('id="scoring"')
    section = html[start:html.index("</section>", start)]
    assert section.count("· top") == 3 and section.count("· bottom") == 3
    assert longest in section
