"""`curate report`: the HTML page's content, and that it renders in headless Chromium.

The rendering test saves a full-page screenshot for review to
``build/test-artifacts/report.png`` (or ``$CURATE_TEST_ARTIFACTS/report.png``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hub_fixtures import write_run, write_train_run

from curate.cli import cli
from curate.errors import CurateError
from curate.reporting.page import collect, write_report

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
# Appended to a copy of the page: after load, record every figure and whether its image decoded.
PROBE = """<script>
window.addEventListener("load", () => {
  const figures = [...document.querySelectorAll("figure")];
  const report = figures.map(f => {
    const img = f.querySelector("img");
    return {key: f.dataset.figure || "", ok: !!img && img.complete && img.naturalWidth > 0,
            width: img ? img.naturalWidth : 0, shown: img ? img.getBoundingClientRect().width : 0};
  });
  const out = document.createElement("pre");
  out.id = "curate-probe";
  out.textContent = JSON.stringify({figures: report, height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
});
</script>"""


def test_report_collects_everything_the_run_left(run_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(run_dir), "--out", str(tmp_path / "report.html")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    # self-contained: no external resource of any kind
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    figures = re.findall(r'<figure data-figure="([^"]+)"><img src="data:image/png;base64,', html)
    assert figures == ["funnel", "generation", "rouge", "reasons", "lengths", "scores", "compare-0-0"]
    # funnel and reasons counted from rejected.jsonl; examples shown with their detail
    data = collect(run_dir)
    assert data.funnel is not None and [(s.stage, s.rejected) for s in data.funnel.steps] == [
        ("filter", 14), ("decontaminate", 0), ("exact_dedup", 0), ("near_dedup", 10)]
    assert {(b.reason, b.count) for b in data.reasons} == {("near_duplicate", 10), ("refusal", 8), ("too_short", 6)}
    assert all(len(b.examples) == 3 for b in data.reasons)
    assert "As an AI language model, I cannot do that." in html and "{&#34;words&#34;: 2, &#34;min&#34;: 3}" in html
    # near-dup clusters: 3 clusters, each with its kept representative and members
    assert data.cluster_count == 3
    assert all(c.representative is not None and c.size in (3, 4) for c in data.clusters)
    assert "Because adding the same number twice doubles it." in html
    # errors, generation rejects, compare table, provenance
    assert "request timed out after 60 s" in html and "rouge_novelty" in html
    assert "<th>eval_loss</th>" in html and "manifest.json" in html


def test_report_without_optional_files(tmp_path: Path) -> None:
    run = write_run(tmp_path / "bare", with_manifests=False)
    (run / "rejected.jsonl").unlink()
    html = write_report(run, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No rejected.jsonl rows" in html and 'id="compare"' not in html  # no section for what did not run
    assert re.findall(r'<figure data-figure="([^"]+)"', html) == ["funnel", "rouge", "lengths", "scores"]
    with pytest.raises(CurateError, match="not a folder"):
        write_report(tmp_path / "missing", tmp_path / "x.html")


def test_training_metrics_and_curves_are_shown(run_dir: Path, tmp_path: Path) -> None:
    train = run_dir / "runs" / "sft-demo"
    train.mkdir(parents=True)
    losses = [{"step": s, "loss": 2.0 - s / 20, "learning_rate": 2e-4 * (1 - s / 20)} for s in range(1, 21)]
    (train / "metrics.json").write_text(json.dumps({"train_loss": losses, "eval_loss": [{"step": 20, "loss": 1.5}],
                                                    "final_eval_loss": 1.5, "steps": 20}))
    (train / "config.yaml").write_text("model: bundled\nquantization: none\nlora: {r: 16}\nsft: {max_length: 512}\n"
                                       "run: {base_model: /x/SmolLM2-135M-Instruct, data: /x/curated.jsonl}\n")
    (train / "loss_curve.png").write_bytes((run_dir / "compare" / "lima" / "curve.png").read_bytes())
    html = write_report(run_dir, tmp_path / "r.html").read_text(encoding="utf-8")
    assert re.findall(r'<figure data-figure="(compare-[^"]+)"', html) == ["compare-0-0", "compare-1-curve",
                                                                          "compare-1-0"]
    assert "SmolLM2-135M-Instruct, LoRA, on curated.jsonl, 20 steps" in html
    assert "runs/sft-demo/loss_curve.png, as the stage drew it." in html
    assert "<td>final_eval_loss</td><td>1.5</td>" in html


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def _probe(page: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    """(probe result, console messages) of a page loaded in headless Chromium."""
    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    # the same width as the screenshot, so the measured page height fits it
    run = _chromium(["--window-size=1280,1000", "--enable-logging=stderr", "--v=0", "--dump-dom", probe.as_uri()],
                    tmp_path / "profile")
    match = re.search(r'<pre id="curate-probe">(.*?)</pre>', run.stdout, re.S)
    assert match, f"page did not finish loading: {run.stderr[-2000:]}"
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(match.group(1).replace("&quot;", '"')), console


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make system-deps` installs it)")
def test_report_renders_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    # the probe itself must catch a broken figure and a console message, or it proves nothing
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><body><figure data-figure="x"><img src="data:image/png;base64,AAAA">'
                      '</figure><script>console.error("boom")</script></body></html>')
    result, console = _probe(broken, tmp_path)
    assert result["figures"][0]["ok"] is False and any('"boom"' in line for line in console)

    write_train_run(run_dir / "runs" / "sft-demo")
    report = write_report(run_dir, tmp_path / "report.html")
    result, console = _probe(report, tmp_path)
    assert console == []
    keys = [f["key"] for f in result["figures"]]
    assert keys == ["funnel", "generation", "rouge", "reasons", "tokens", "lengths", "scores", "compare-0-0",
                    "compare-1-curve"]
    for figure in result["figures"]:
        assert figure["ok"] and figure["width"] > 100 and figure["shown"] > 100, figure

    artifacts = Path(os.environ.get("CURATE_TEST_ARTIFACTS", REPO / "build" / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report.png"
    height = min(int(result["height"]) + 40, 16000)
    run = _chromium([f"--window-size=1280,{height}", f"--screenshot={shot}", report.as_uri()], tmp_path / "profile")
    assert run.returncode == 0, run.stderr[-2000:]
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(header[16:20], "big") == 1280 and int.from_bytes(header[20:24], "big") == height
    shutil.copyfile(report, artifacts / "report.html")


@pytest.mark.slow
def test_real_filter_output_exports_and_reports(tmp_path: Path) -> None:
    """generate-shaped rows -> the real `curate filter` -> export -> load_dataset -> report."""
    from datasets import load_dataset

    from curate.records.jsonl import read_records
    from curate.records.shards import read_export

    source = write_run(tmp_path / "gen")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("generated.jsonl", "manifest.json", "errors.jsonl"):
        (run / name).write_bytes((source / name).read_bytes())
    runner = CliRunner()
    result = runner.invoke(cli, ["filter", str(run / "generated.jsonl"), "--out", str(run / "curated.jsonl")])
    assert result.exit_code == 0, result.output
    kept = list(read_records(run / "curated.jsonl"))
    rejected = (run / "rejected.jsonl").read_text().count("\n")
    assert kept and rejected

    result = runner.invoke(cli, ["export", str(run / "curated.jsonl"), "--out", str(tmp_path / "ds"),
                                 "--split-eval", "0.1"])
    assert result.exit_code == 0, result.output
    ds = load_dataset(str(tmp_path / "ds"), cache_dir=str(tmp_path / "cache"))
    assert sum(len(split) for split in ds.values()) == len(kept) and set(ds) == {"train", "test"}
    assert sorted(read_export(tmp_path / "ds"), key=lambda r: r["id"]) == sorted(kept, key=lambda r: r["id"])
    card = (tmp_path / "ds" / "README.md").read_text()
    assert f"| generated | {len(kept) + rejected} |" in card and f"| **kept** | **{len(kept)}** |" in card
    assert "| preset | sft |" in card and "near_dedup" in card

    data = collect(run)
    assert data.funnel is not None and data.funnel.kept == len(kept)
    assert sum(block.count for block in data.reasons) == rejected
    assert data.clusters and all(c.representative is not None for c in data.clusters)
