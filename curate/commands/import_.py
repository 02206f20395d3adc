"""`curate import`: bring Alpaca, Self-Instruct, ShareGPT, Dolly, prompt/completion or messages data in."""

from __future__ import annotations

import click

from curate.records.formats import FORMATS


@click.command("import", short_help="Read Alpaca, ShareGPT, Dolly, ... data in as records.")
@click.argument("source", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Records JSONL to write.")
@click.option("--format", "format_name", default="auto", show_default=True,
              type=click.Choice(["auto", *FORMATS]), help="Input format; auto detects it from the first row.")
@click.option("--skip-invalid", is_flag=True,
              help="Set bad rows aside in a quarantine file with the reason instead of stopping.")
@click.option("--quarantine", type=click.Path(dir_okay=False),
              help="Where --skip-invalid puts bad rows [default: OUT's name + .invalid.jsonl].")
def command(source: str, out: str, format_name: str, skip_invalid: bool, quarantine: str | None) -> None:
    """Import SOURCE (JSONL or JSON array, optionally .gz, or a `curate export` folder) as records.

    Ids the source already has are kept in meta.source_id; unknown fields in meta.extra.
    """
    from curate.records.convert import import_file

    summary = import_file(source, out, format_name, skip_invalid, quarantine)
    how = "detected" if summary.detected else "given"
    click.echo(f"format: {summary.format} ({how})", err=True)
    line = f"imported {summary.records} records from {summary.source} into {out}"
    if skip_invalid:
        line += f"; {summary.invalid} invalid rows set aside"
        if summary.quarantine:
            line += f" in {summary.quarantine}"
    click.echo(line)
