"""The real public files in ../shared/data import and convert back without loss.

Read in place (never copied into the repository); skipped where shared/ is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.records.convert import export_file, import_file
from curate.records.jsonl import iter_json_rows

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CASES = [
    ("self_instruct_seed_tasks.jsonl", "self-instruct", ".jsonl"),
    ("user_oriented_instructions.jsonl", "self-instruct", ".jsonl"),
    ("gsm8k_train_alpaca.json", "alpaca", ".json"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fmt", "suffix"), CASES)
def test_shared_file_round_trips_without_loss(tmp_path, name, fmt, suffix):
    source = SHARED / name
    if not source.exists():
        pytest.skip(f"{source} not present")
    rows = [row for _, row in iter_json_rows(source)]
    summary = import_file(source, tmp_path / "r.jsonl")
    assert (summary.format, summary.records) == (fmt, len(rows))
    export_file(tmp_path / "r.jsonl", tmp_path / f"back{suffix}", fmt)
    back = [row for _, row in iter_json_rows(tmp_path / f"back{suffix}")]
    # every source row comes back field for field (Alpaca rows gain only an empty "input")
    assert [{k: v for k, v in r.items() if v != "" or k in s} for r, s in zip(back, rows, strict=True)] == rows
    # meta.source names where rows came from (the file), so the second import is told the first's name
    import_file(tmp_path / f"back{suffix}", tmp_path / "again.jsonl", fmt, source_name=Path(name).name.split(".")[0])
    assert (tmp_path / "r.jsonl").read_bytes() == (tmp_path / "again.jsonl").read_bytes()


@pytest.mark.slow
def test_t0_prompt_completion_imports_every_row(tmp_path):
    source = SHARED / "t0_prompt_completion.jsonl.gz"
    if not source.exists():
        pytest.skip(f"{source} not present")
    summary = import_file(source, tmp_path / "r.jsonl")
    assert summary.format == "prompt-completion"
    assert summary.records == sum(1 for _ in iter_json_rows(source)) == 55185
    first = json.loads((tmp_path / "r.jsonl").open().readline())
    assert (first["meta"]["source"], first["meta"]["format"]) == ("t0_prompt_completion", "prompt-completion")
