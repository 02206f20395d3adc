"""`curate report`: one self-contained HTML page showing what a run kept, dropped and why."""

from __future__ import annotations

import click


@click.command("report", short_help="Write a self-contained HTML report of a run.")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="HTML file to write [default: RUN_DIR/report.html].")
def command(run_dir: str, out: str | None) -> None:
    """Report on RUN_DIR: the funnel, reject reasons with example rows, length and score
    histograms, near-duplicate clusters and compare curves, all inline (opens offline)."""
    from pathlib import Path

    from curate.reporting.page import write_report

    path = write_report(run_dir, out or Path(run_dir) / "report.html")
    click.echo(f"wrote {path}")
