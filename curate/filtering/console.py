"""What `curate filter` shows on the terminal: a progress bar while reading and the funnel table at the end."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def progress(enabled: bool, source: str | os.PathLike[str]) -> Iterator[Any]:
    """A rich progress bar over the input's lines (counted first for plain files under 4 GiB)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    total = None
    path = Path(source)
    if path.suffix != ".gz" and path.stat().st_size < 4 << 30:
        with path.open("rb") as handle:
            total = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 24), b""))
    with Progress(SpinnerColumn(), TextColumn("filtering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task("rows", total=total)
        yield lambda n: bar.advance(task, n)


def stage_of(reason: str) -> str:
    if reason == "contamination":
        return "decontaminate"
    if reason.startswith("exact_duplicate"):
        return "exact_dedup"
    if reason.startswith("near_duplicate"):
        return "near_dedup"
    return "filter"


def summary_table(report: dict[str, Any]) -> Any:
    """A rich Table: the funnel per stage and the reasons, one screen."""
    from rich.table import Table

    table = Table(title=f"curate filter: {report['in']} in, {report['kept']} kept, {report['rejected']} rejected"
                        + (f", {report['invalid']} invalid (quarantined)" if report["invalid"] else ""))
    for name, justify in (("stage", "left"), ("reason", "left"), ("rows", "right"), ("% of in", "right"),
                          ("seconds", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    reasons_by_stage: dict[str, list[str]] = {}
    for reason in report["rejected_by_reason"]:
        reasons_by_stage.setdefault(stage_of(reason), []).append(reason)
    total = max(report["in"], 1)
    for stage in report["stages"]:
        if not stage["active"]:
            continue
        table.add_row(stage["stage"], "[dim](all)[/dim]", str(stage["dropped"]),
                      f"{100 * stage['dropped'] / total:.1f}", f"{stage['seconds']:.2f}")
        for reason in reasons_by_stage.get(stage["stage"], []):
            n = report["rejected_by_reason"][reason]
            table.add_row("", reason, str(n), f"{100 * n / total:.1f}", "")
    table.add_row("[bold]kept[/bold]", "", f"[bold]{report['kept']}[/bold]", f"{100 * report['kept'] / total:.1f}",
                  f"{report['seconds']['total']:.2f}")
    notes = []
    special = report["rejected_by_reason"].get("special_token_text", 0)
    if special:
        notes.append(f"{special} rows hold chat-template special tokens as text: --strip-special-tokens removes "
                     f"a trailing one instead of dropping the row")
    sanity = report.get("near_dedup", {}).get("cluster_sanity")
    if sanity and sanity.get("flagged_clusters"):
        notes.append(f"{sanity['flagged_clusters']} near-dup clusters have members whose responses disagree "
                     f"(see filter_report.json near_dedup.cluster_sanity)")
    table.caption = "\n".join(notes) or None
    return table
