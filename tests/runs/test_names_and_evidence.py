"""One stem rule, and typed evidence readers that agree with the real writers (generate, filter)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from click.testing import CliRunner

from curate.cli import cli
from curate.runs import names
from curate.runs.evidence import compute_funnel, find_run_files
from generators.config import build_config
from generators.engines.fake import FakeEngine
from generators.run import generate
from generators.seeds import default_seeds_path


def test_stem_rule_and_sibling_names() -> None:
    assert [names.stem(p) for p in ("a/curated.jsonl.gz", "mix.json", "x.parquet", "notes.txt")] == [
        "curated", "mix", "x", "notes.txt"]
    assert names.filter_paths("d/curated.jsonl").report == Path("d/filter_report.json")
    assert names.filter_paths("d/mix.jsonl").rejected == Path("d/mix.rejected.jsonl")
    assert names.quarantine_path("d/records.jsonl.gz") == Path("d/records.invalid.jsonl")
    assert names.curated_for_report("d/mix.filter_report.json") == Path("d/mix.jsonl")
    assert names.generate_paths("g/out.jsonl").manifest == Path("g/manifest.json")


def _teacher(request) -> str:
    """Novel numbered instructions, and answers for the classification and instance prompts."""
    if request.prompt.endswith("Is it classification?"):
        return " No"
    if request.id.split("-")[1] == "instances":
        return "Example 1\nInput: one\nOutput: done\nExample 2\nInput: two\nOutput: ok"
    rng = random.Random(request.seed)
    items = [" ".join(f"w{rng.randrange(100000)}" for _ in range(6)) for _ in range(3)]
    return " Describe " + items[0] + "\n10. Describe " + items[1] + "\n11. Describe " + items[2]


def test_readers_agree_with_the_real_generate_and_filter_writers(tmp_path: Path) -> None:
    run = tmp_path / "run"
    generate(build_config(num_instructions=4, request_batch_size=2), default_seeds_path(), run / "generated.jsonl",
             FakeEngine(default=_teacher), progress=False)
    result = CliRunner().invoke(cli, ["filter", str(run / "generated.jsonl"), "--out", str(run / "mix.jsonl"),
                                      "--preset", "none"])
    assert result.exit_code == 0, result.output

    files = find_run_files(run)  # finds mix.jsonl through mix.filter_report.json: the stem rule read back
    assert files.curated == run / "mix.jsonl" and files.rejected == run / "mix.rejected.jsonl"
    manifest = files.manifest
    assert manifest is not None and manifest.teacher == "fake-teacher" and manifest.engine == "fake"
    assert manifest.seeds_path and Path(manifest.seeds_path) == default_seeds_path()
    assert manifest.seeds_count and manifest.preset == "self-instruct" and manifest.totals["rows"] > 0
    report = files.filter_report
    assert report is not None and report.rows_in == manifest.totals["rows"]
    assert report.kept == sum(1 for _ in (run / "mix.jsonl").open()) and report.input
    assert report.active_stages[:1] == ["exact_dedup"] or "near_dedup" in report.active_stages
    settings = files.filter_config
    assert settings is not None and settings.preset == "none" and settings.dedup is not None
    funnel = compute_funnel(files)
    assert funnel is not None and funnel.generated == report.rows_in and funnel.kept == report.kept
    raw = json.loads((run / "manifest.json").read_text())
    assert raw["seeds"]["sha256"] == manifest.seeds_sha256
